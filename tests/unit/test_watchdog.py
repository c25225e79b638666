"""The watchdog multiplexer, the linux backend over a FIFO (as the test hosts' virtual watchdog), the
`none` backend and device discovery from a fake sysfs tree.

Never open a real /dev/watchdog* here: opening arms it and a missed pet resets this machine. The
linux backend is exercised on a FIFO we create, read by a thread we start (a byte is a pet, "V" then
close disarms), on /dev/null (a character device that refuses the ioctls), and with a fake ioctl.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from lockengine.errors import InputError, LockError
from lockengine.timeouts import Timeouts
from lockengine.watchdog import (
    NOT_PROTECTED,
    LinuxWatchdog,
    NoneWatchdog,
    WatchdogMultiplexer,
    create_multiplexer,
    list_watchdogs,
    make_backend,
    sysfs_entry_for,
)
from lockengine.watchdog import linux as linux_mod

# --------------------------------------------------------------------------- seams


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """Records what the multiplexer did, with the fake clock's time."""

    name = "fake"
    device: str | None = "fake0"
    protects = True

    def __init__(self, clock: FakeClock, timeout: int = 60) -> None:
        self.clock = clock
        self._timeout = timeout
        self.events: list[tuple[str, float]] = []
        self.fail_pet = False

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def identity(self) -> str:
        return "fake watchdog"

    @property
    def warnings(self) -> list[str]:
        return []

    def open(self) -> None:
        self.events.append(("open", self.clock()))

    def pet(self) -> None:
        if self.fail_pet:
            raise LockError("WD_ERROR", "pet of watchdog fake0 failed: injected")
        self.events.append(("pet", self.clock()))

    def magic_close(self) -> None:
        self.events.append(("magic_close", self.clock()))

    def close_unclean(self) -> None:
        self.events.append(("close_unclean", self.clock()))

    def pets(self) -> list[float]:
        return [t for e, t in self.events if e == "pet"]

    def kinds(self) -> list[str]:
        return [e for e, _ in self.events]


class FifoWatchdog:
    """The test hosts' virtual watchdog in miniature: a FIFO and a reader thread we own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.eof = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="fifo-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # Before any writer, poll reports nothing; after the writer's close it reports HUP and read
        # returns b"" — that is how the reader sees the close.
        while not self._stop.is_set() and self.fd is not None:
            ready, _, _ = select.select([self.fd], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                self.eof.set()
                return
            with self._lock:
                self.data += chunk

    def received(self) -> bytes:
        with self._lock:
            return bytes(self.data)

    def vanish(self) -> None:
        """The reader goes away: later writes get EPIPE."""
        self._stop.set()
        self.thread.join()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self.vanish()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[FifoWatchdog]:
    wd = FifoWatchdog(tmp_path / "watchdog0")
    yield wd
    wd.close()


def wait_until(pred: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.005)


def registrations(mux: WatchdogMultiplexer) -> list[dict[str, object]]:
    return cast("list[dict[str, object]]", mux.status()["registrations"])


def pet_count(mux: WatchdogMultiplexer) -> int:
    return cast(int, mux.status()["pets"])


def fake_mux(fire: int = 60, timeout: int | None = None) -> tuple[WatchdogMultiplexer, FakeBackend, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock, fire if timeout is None else timeout)
    mux = WatchdogMultiplexer(backend, fire, clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    mux.start(thread=False)
    return mux, backend, clock


# --------------------------------------------------------------------------- multiplexer logic


def test_start_opens_and_pets_with_no_registrations() -> None:
    mux, backend, clock = fake_mux()
    assert backend.kinds() == ["open", "pet"]
    for _ in range(5):
        clock.now += 10
        assert mux.check()
    assert len(backend.pets()) == 6
    st = mux.status()
    assert st["armed"] is True and st["petting"] is True and st["pets"] == 6
    assert st["last_pet_monotonic"] == clock.now and st["last_pet_time"] == 1.7e9 + clock.now
    assert st["test_interval"] == 10 and st["timeout"] == 60 and st["identity"] == "fake watchdog"
    assert st["registrations"] == [] and st["stopped_reason"] is None


def test_pets_while_every_expiry_is_in_the_future() -> None:
    mux, backend, clock = fake_mux()
    mux.register("LS1", clock.now + 80)
    mux.register("LS2", clock.now + 40)
    pets = len(backend.pets())
    clock.now += 29.9  # LS2 is 10.1 s from expiry: still more than one interval
    assert mux.check()
    assert len(backend.pets()) == pets + 1
    assert [r["name"] for r in registrations(mux)] == ["LS1", "LS2"]


def test_stops_once_an_expiry_is_within_one_interval(caplog: pytest.LogCaptureFixture) -> None:
    mux, backend, clock = fake_mux()
    mux.register("LS1", clock.now + 80)
    mux.register("LS2", clock.now + 40)
    clock.now += 30  # exactly expiry - interval: a failure, as wdmd counts it
    pets = len(backend.pets())
    with caplog.at_level(logging.INFO, logger="lockengine.watchdog"):
        assert not mux.check()
    assert len(backend.pets()) == pets
    st = mux.status()
    assert st["petting"] is False
    assert "LS2" in str(st["stopped_reason"]) and "LS1" not in str(st["stopped_reason"])
    assert any("petting stopped" in r.message and "LS2" in r.message for r in caplog.records)


def test_update_moves_expiry_and_petting_resumes() -> None:
    mux, backend, clock = fake_mux()
    mux.register("LS", clock.now + 80)
    clock.now += 75  # within the interval, not yet expired
    assert not mux.check()
    mux.update("LS", clock.now + 80)  # a good renewal just before expiry
    assert mux.check()
    assert mux.status()["stopped_reason"] is None


def test_expired_registration_stays_expired_until_unregistered() -> None:
    mux, backend, clock = fake_mux()
    mux.register("LS", clock.now + 80)
    clock.now += 80
    assert not mux.check()
    with pytest.raises(LockError) as exc:
        mux.update("LS", clock.now + 80)  # a renewal after expiry may not re-arm
    assert exc.value.name == "WD_ERROR"
    clock.now += 1
    assert not mux.check()
    assert registrations(mux)[0]["expired"] is True
    mux.unregister("LS")  # lockspace removed, all its users gone
    assert mux.check()
    assert mux.status()["registrations"] == []


def test_register_twice_and_unknown_names_are_errors() -> None:
    mux, _, clock = fake_mux()
    mux.register("LS", clock.now + 80)
    with pytest.raises(LockError) as exc:
        mux.register("LS", clock.now + 80)
    assert exc.value.name == "EEXIST"
    with pytest.raises(LockError) as exc:
        mux.update("nope", 1.0)
    assert exc.value.name == "ENOENT"
    with pytest.raises(LockError) as exc:
        mux.unregister("nope")
    assert exc.value.name == "ENOENT"


@pytest.mark.parametrize(("io", "fire"), [(5, 60), (10, 60), (20, 60), (10, 30), (5, 20), (1, 8)])
@pytest.mark.parametrize("phase", [0.0, 0.001, 3.7, 9.999])
def test_last_pet_leaves_the_device_time_to_fire_before_others_take_over(io: int, fire: int, phase: float) -> None:
    """Renewals stop at L. The device must fire before L + host_dead (8·io + fire), by a margin of one
    test interval, and petting must not stop more than two intervals early (no needless resets)."""
    t = Timeouts(io, fire)
    mux, backend, clock = fake_mux(fire)
    interval = t.watchdog_test_interval
    last_renewal = clock.now + phase
    clock.now = last_renewal - phase  # the pass schedule is offset from the renewal by `phase`
    mux.register("LS", t.expiry(last_renewal))
    while clock.now < last_renewal + t.host_dead_seconds:
        clock.now += interval
        mux.check()
    last_pet = max(backend.pets())
    expiry = t.expiry(last_renewal)
    assert last_pet < expiry - interval
    assert last_pet >= expiry - 2 * interval
    fires_at = last_pet + backend.timeout
    margin = interval
    assert fires_at <= last_renewal + t.host_dead_seconds - margin
    # and SIGKILL of the lease holders comes no later than the device's earliest fire
    assert last_renewal + t.sigkill_seconds <= fires_at


def test_pet_failure_is_reported_and_retried() -> None:
    mux, backend, clock = fake_mux()
    backend.fail_pet = True
    clock.now += 10
    assert not mux.check()
    assert "injected" in str(mux.status()["stopped_reason"])
    backend.fail_pet = False
    clock.now += 1
    assert mux.check()


def test_magic_close_only_on_clean_shutdown() -> None:
    mux, backend, _ = fake_mux()
    assert mux.shutdown(clean=True) is True
    assert backend.kinds()[-1] == "magic_close"
    assert mux.status()["armed"] is False
    assert not mux.check()  # no pets after shutdown
    assert mux.shutdown(clean=True) is False  # idempotent
    assert backend.kinds().count("magic_close") == 1


def test_unclean_shutdown_leaves_device_armed() -> None:
    mux, backend, _ = fake_mux()
    assert mux.shutdown(clean=False) is False
    assert "magic_close" not in backend.kinds() and backend.kinds()[-1] == "close_unclean"
    assert mux.status()["armed"] is True


def test_clean_shutdown_with_registrations_leaves_device_armed(caplog: pytest.LogCaptureFixture) -> None:
    mux, backend, clock = fake_mux()
    mux.register("LS", clock.now + 80)
    with caplog.at_level(logging.ERROR, logger="lockengine.watchdog"):
        assert mux.shutdown(clean=True) is False
    assert "magic_close" not in backend.kinds()
    assert any("LS" in r.message and "armed" in r.message for r in caplog.records)


def test_start_after_shutdown_is_refused() -> None:
    mux, _, _ = fake_mux()
    mux.shutdown()
    with pytest.raises(LockError):
        mux.start(thread=False)


def test_short_device_timeout_shortens_the_test_interval() -> None:
    mux, backend, _ = fake_mux(fire=60, timeout=20)
    assert mux.test_interval == 2


# --------------------------------------------------------------------------- none backend


def test_none_backend_warns_at_start_and_in_status(caplog: pytest.LogCaptureFixture) -> None:
    mux = create_multiplexer("none", "/dev/watchdog0", 60, test_interval=0.01)
    with caplog.at_level(logging.WARNING, logger="lockengine.watchdog"):
        mux.start(thread=False)
        assert sum(NOT_PROTECTED in r.message for r in caplog.records) == 1
        st = mux.status()
        # Said in every status reply, logged once: status is polled and must not flood the journal.
        assert sum(NOT_PROTECTED in r.message for r in caplog.records) == 1
    assert st["backend"] == "none" and st["protected"] is False and st["armed"] is False
    assert st["warnings"] == [NOT_PROTECTED] and "NOT protected" in NOT_PROTECTED
    assert mux.shutdown() is True


def test_make_backend() -> None:
    assert isinstance(make_backend("none", "", 60), NoneWatchdog)
    lw = make_backend("linux", "/dev/watchdog1", 30)
    assert isinstance(lw, LinuxWatchdog) and lw.device == "/dev/watchdog1" and lw.fire_timeout == 30
    with pytest.raises(InputError) as exc:
        make_backend("softdog", "/dev/watchdog0", 60)
    assert exc.value.field == "watchdog.backend"


# --------------------------------------------------------------------------- linux backend


def test_linux_backend_on_a_fifo_pets_by_writes_and_magic_closes(
    fifo: FifoWatchdog, caplog: pytest.LogCaptureFixture
) -> None:
    mux = create_multiplexer("linux", str(fifo.path), 60, test_interval=0.02)
    with caplog.at_level(logging.WARNING, logger="lockengine.watchdog"):
        mux.start()
    try:
        assert any("refuses watchdog ioctls" in r.message for r in caplog.records)
        mux.register("LS", time.monotonic() + 3600)
        wait_until(lambda: len(fifo.received()) >= 3, "three pets on the FIFO")
        assert set(fifo.received()) == {0}  # pets are NUL bytes, never "V"
        st = mux.status()
        assert st["backend"] == "linux" and st["device"] == str(fifo.path)
        assert st["timeout"] == 60 and str(st["identity"]).startswith("unknown")
        assert st["armed"] is True and st["petting"] is True
        assert any("ioctls" in w for w in cast("list[str]", st["warnings"]))

        # The lease nears expiry: petting stops, and no further pet reaches the device.
        mux.update("LS", time.monotonic() + 0.01)
        wait_until(lambda: mux.status()["petting"] is False, "petting to stop")
        pets = pet_count(mux)
        wait_until(lambda: len(fifo.received()) == pets, "the FIFO to drain")
        time.sleep(0.2)  # ten test intervals
        assert pet_count(mux) == pets and len(fifo.received()) == pets
        assert not fifo.eof.is_set()  # still open and armed

        mux.unregister("LS")
        wait_until(lambda: pet_count(mux) > pets, "petting to resume after unregister")
    finally:
        assert mux.shutdown(clean=True) is True
    wait_until(fifo.eof.is_set, "the close")
    assert fifo.received().endswith(b"V")


def test_linux_backend_unclean_close_leaves_it_armed(fifo: FifoWatchdog) -> None:
    backend = LinuxWatchdog(str(fifo.path), 60)
    backend.open()
    backend.pet()
    backend.close_unclean()
    wait_until(fifo.eof.is_set, "the close")
    assert fifo.received() == b"\0"  # no "V": the device stays armed


def test_fifo_opened_nonblocking_char_device_opened_normally(fifo: FifoWatchdog) -> None:
    on_fifo = LinuxWatchdog(str(fifo.path), 60)
    on_fifo.open()
    assert on_fifo.fd is not None and fcntl.fcntl(on_fifo.fd, fcntl.F_GETFL) & os.O_NONBLOCK
    on_fifo.magic_close()
    # /dev/null: a character device (not a watchdog) that refuses the ioctls like the FIFO does.
    on_chr = LinuxWatchdog("/dev/null", 30)
    on_chr.open()
    try:
        assert on_chr.fd is not None and not fcntl.fcntl(on_chr.fd, fcntl.F_GETFL) & os.O_NONBLOCK
        assert not on_chr.ioctls and on_chr.timeout == 30
        on_chr.pet()
    finally:
        on_chr.magic_close()
    assert on_chr.fd is None


def test_fifo_without_reader_is_reported_clearly(tmp_path: Path) -> None:
    path = tmp_path / "watchdog0"
    os.mkfifo(path)
    with pytest.raises(LockError) as exc:
        LinuxWatchdog(str(path), 60).open()  # must not block
    assert exc.value.name == "WD_ERROR" and "no reader on the watchdog FIFO" in exc.value.message


def test_missing_device_and_non_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="does not exist; load a watchdog driver"):
        LinuxWatchdog(str(tmp_path / "watchdog7"), 60).open()
    regular = tmp_path / "file"
    regular.write_bytes(b"")
    with pytest.raises(LockError, match="neither a watchdog character device nor a FIFO"):
        LinuxWatchdog(str(regular), 60).open()
    assert regular.read_bytes() == b""


def test_vanished_reader_makes_pets_fail(fifo: FifoWatchdog) -> None:
    backend = LinuxWatchdog(str(fifo.path), 60)
    backend.open()
    try:
        fifo.vanish()
        with pytest.raises(LockError, match="went away"):
            backend.pet()
    finally:
        backend.close_unclean()


class FakeIoctl:
    """A watchdog driver's ioctls on top of the FIFO's fd: a seam for the ioctl path."""

    def __init__(self, options: int, identity: bytes, device_timeout: int) -> None:
        self.options = options
        self.identity = identity
        self.device_timeout = device_timeout
        self.calls: list[int] = []

    def __call__(self, fd: int, request: int, arg: bytes = b"") -> bytes:
        self.calls.append(request)
        if request == linux_mod.WDIOC_GETSUPPORT:
            return struct.pack("<II32s", self.options, 1, self.identity)
        if request == linux_mod.WDIOC_SETTIMEOUT:
            self.device_timeout = struct.unpack("i", arg)[0]
            return arg
        if request == linux_mod.WDIOC_GETTIMEOUT:
            return struct.pack("i", self.device_timeout)
        if request == linux_mod.WDIOC_KEEPALIVE:
            return arg
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))


FULL = linux_mod.WDIOF_SETTIMEOUT | linux_mod.WDIOF_MAGICCLOSE | linux_mod.WDIOF_KEEPALIVEPING


def test_ioctl_path_sets_timeout_and_pets_by_keepalive(fifo: FifoWatchdog, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIoctl(FULL, b"Software Watchdog", 10)
    monkeypatch.setattr(fcntl, "ioctl", fake)
    backend = LinuxWatchdog(str(fifo.path), 60, sysfs_root=str(fifo.path.parent / "nosys"))
    backend.open()
    assert backend.ioctls and backend.identity == "Software Watchdog" and backend.timeout == 60
    assert backend.warnings == []
    backend.pet()
    assert fake.calls.count(linux_mod.WDIOC_KEEPALIVE) == 1
    backend.magic_close()
    wait_until(fifo.eof.is_set, "the close")
    assert fifo.received() == b"V"  # the pet went through the ioctl, the magic close by write


def test_device_timeout_longer_than_fire_timeout_is_refused_and_disarmed(
    fifo: FifoWatchdog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIoctl(linux_mod.WDIOF_MAGICCLOSE, b"fixed", 120)  # cannot set its timeout
    monkeypatch.setattr(fcntl, "ioctl", fake)
    backend = LinuxWatchdog(str(fifo.path), 60)
    with pytest.raises(LockError, match="timeout is 120 s and cannot be set to the fire timeout 60 s"):
        backend.open()
    wait_until(fifo.eof.is_set, "the close")
    assert fifo.received() == b"V"  # nothing relied on it yet: disarmed, not left to fire
    assert backend.fd is None


def test_driver_without_magic_close_or_with_nowayout_is_warned(
    fifo: FifoWatchdog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfs = tmp_path / "sys"
    entry = sysfs / "class" / "watchdog" / "watchdog0"
    entry.mkdir(parents=True)
    (entry / "nowayout").write_text("1\n")
    monkeypatch.setattr(fcntl, "ioctl", FakeIoctl(linux_mod.WDIOF_SETTIMEOUT, b"odd", 60))
    backend = LinuxWatchdog(str(fifo.path), 60, sysfs_root=str(sysfs))
    backend.open()
    try:
        text = " ".join(backend.warnings)
        assert "does not support magic close" in text and "nowayout" in text
    finally:
        backend.magic_close()


# --------------------------------------------------------------------------- discovery


def _entry(root: Path, name: str, files: dict[str, str]) -> Path:
    d = root / "class" / "watchdog" / name
    d.mkdir(parents=True)
    for k, v in files.items():
        (d / k).write_text(v + "\n")
    return d


def test_list_watchdogs_from_fake_sysfs(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    (dev / "watchdog0").write_text("")  # only its existence is checked, never opened
    d0 = _entry(sysfs, "watchdog0", {"identity": "Software Watchdog", "timeout": "60", "state": "inactive",
                                     "status": "0x8000", "nowayout": "0", "dev": "248:0", "timeleft": "junk"})
    drivers = tmp_path / "bus" / "softdog"
    drivers.mkdir(parents=True)
    (d0 / "device").mkdir()
    (d0 / "device" / "driver").symlink_to(drivers)
    _entry(sysfs, "watchdog10", {"identity": "iTCO_wdt", "timeout": "30", "state": "active"})
    _entry(sysfs, "watchdog2", {"identity": "i6300ESB timer"})

    found = list_watchdogs(str(sysfs), str(dev))
    assert [w["name"] for w in found] == ["watchdog0", "watchdog2", "watchdog10"]
    w0 = found[0]
    assert w0 == {
        "name": "watchdog0",
        "device": str(dev / "watchdog0"),
        "device_exists": True,
        "identity": "Software Watchdog",
        "state": "inactive",
        "timeout": 60,
        "nowayout": 0,
        "status": 0x8000,
        "dev": "248:0",
        "driver": "softdog",
    }  # "timeleft" was unreadable as a number and is left out
    assert found[2]["state"] == "active" and found[2]["device_exists"] is False
    assert sysfs_entry_for(str(dev / "watchdog"), str(sysfs)) == w0  # the legacy name aliases watchdog0
    assert sysfs_entry_for(str(dev / "watchdog2"), str(sysfs)) == found[1]
    assert sysfs_entry_for(str(dev / "watchdog3"), str(sysfs)) is None


def test_list_watchdogs_without_any(tmp_path: Path) -> None:
    assert list_watchdogs(str(tmp_path)) == []
    (tmp_path / "class" / "watchdog").mkdir(parents=True)
    assert list_watchdogs(str(tmp_path)) == []
