"""The armed marker and the checks a daemon makes at start (issue 9), on the production classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockengine.config import Config, WatchdogConfig
from lockengine.daemon.armed import ArmedMarker
from lockengine.daemon.engine import Daemon
from lockengine.errors import LockError
from lockengine.strings import LockspaceSpec
from lockengine.watchdog.multiplexer import WatchdogMultiplexer


class RecordingDevice:
    name = "recording"
    device: str | None = "/dev/null-watchdog"
    protects = True
    identity = "recording"
    warnings: list[str] = []

    def __init__(self, timeout: int) -> None:
        self._timeout = timeout
        self.events: list[str] = []

    @property
    def timeout(self) -> int:
        return self._timeout

    def open(self) -> None:
        self.events.append("open")

    def pet(self) -> None:
        self.events.append("pet")

    def magic_close(self) -> None:
        self.events.append("magic_close")

    def close_unclean(self) -> None:
        self.events.append("close_unclean")


def config(run_dir: Path) -> Config:
    return Config(host_name="h1", host_name_source="config", io_timeout=1, watchdog_fire_timeout=10, kill_grace=0,
                  watchdog=WatchdogConfig("none"), run_dir=str(run_dir), syslog=False)


def test_marker_lives_while_a_lockspace_is_registered_and_counts_only_in_its_boot(tmp_path: Path) -> None:
    m = ArmedMarker(str(tmp_path), boot_id="boot-a")
    assert m.previous() is None
    m.set(123, ["lockengine_LS:1"])
    assert m.previous() == {"pid": 123, "boot_id": "boot-a", "lockspaces": ["lockengine_LS:1"]}
    assert ArmedMarker(str(tmp_path), boot_id="boot-b").previous() is None  # rebooted since
    (tmp_path / "armed").write_text("{torn")
    assert m.previous() is not None  # unreadable: armed, safety first
    m.clear()
    assert m.previous() is None


def test_registrations_write_and_clear_the_marker(tmp_path: Path) -> None:
    dev = RecordingDevice(10)
    mux = WatchdogMultiplexer(dev, 10)  # type: ignore[arg-type]
    d = Daemon(config(tmp_path), mux)
    d.start()
    try:
        mux.register("lockengine_LS:1", 1e12)
        doc = json.loads((tmp_path / "armed").read_text())
        assert doc["lockspaces"] == ["lockengine_LS:1"]
        mux.unregister("lockengine_LS:1")
        assert not (tmp_path / "armed").exists()
    finally:
        d.supervisor.stop()
        mux.shutdown(clean=True)


def test_a_daemon_after_an_unclean_exit_neither_opens_the_watchdog_nor_joins(tmp_path: Path) -> None:
    ArmedMarker(str(tmp_path)).set(4242, ["lockengine_LS:1"])
    dev = RecordingDevice(10)
    mux = WatchdogMultiplexer(dev, 10)  # type: ignore[arg-type]
    d = Daemon(config(tmp_path), mux)
    d.start()
    assert dev.events == []  # never opened, so never petted: the predecessor's device runs out
    assert d.refusing is not None and "pid 4242" in d.refusing and "reboots" in d.refusing
    assert d.status(False)["daemon"]["refusing"] == d.refusing
    with pytest.raises(LockError) as exc:
        d.add_lockspace(LockspaceSpec("LS", 1, str(tmp_path), 0), None)
    assert exc.value.name == "WD_ERROR" and "reboots" in exc.value.message


def test_a_device_that_fires_later_than_the_fire_timeout_is_refused() -> None:
    dev = RecordingDevice(90)
    mux = WatchdogMultiplexer(dev, 60)  # type: ignore[arg-type]
    with pytest.raises(LockError) as exc:
        mux.start(thread=False)
    assert exc.value.name == "WD_ERROR" and "90 s" in exc.value.message and "60 s" in exc.value.message
    assert dev.events == ["open", "magic_close"]  # nothing registered yet: disarmed, never petted


class FailingSupervisor(Exception):
    pass


def test_a_start_that_fails_after_the_watchdog_opened_disarms_it(tmp_path: Path) -> None:
    """Nothing registered yet: the device is magic-closed, not left armed to reset the host."""
    dev = RecordingDevice(10)
    mux = WatchdogMultiplexer(dev, 10)  # type: ignore[arg-type]
    d = Daemon(config(tmp_path), mux)

    def boom() -> None:
        raise FailingSupervisor("thread start failed")

    d.supervisor.start = boom  # type: ignore[method-assign]
    with pytest.raises(FailingSupervisor):
        d.start()
    assert "open" in dev.events and dev.events[-1] == "magic_close"
    assert "close_unclean" not in dev.events


def test_a_start_that_fails_with_a_lockspace_registered_leaves_the_watchdog_armed(tmp_path: Path) -> None:
    dev = RecordingDevice(10)
    mux = WatchdogMultiplexer(dev, 10)  # type: ignore[arg-type]
    d = Daemon(config(tmp_path), mux)
    started = d.supervisor.start

    def register_then_fail() -> None:
        started()
        mux.register("lockengine_LS:1", 1e12)
        raise FailingSupervisor("failed after a join")

    d.supervisor.start = register_then_fail  # type: ignore[method-assign]
    try:
        with pytest.raises(FailingSupervisor):
            d.start()
        assert "magic_close" not in dev.events and dev.events[-1] == "close_unclean"
    finally:
        d.supervisor.stop()
