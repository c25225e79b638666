"""A real ``sanlock daemon`` (host 2) and lockengined's sanlock socket (host 1) on one lockspace, both
driven only by python3-sanlock: each refuses a lease the other holds (-243) and takes it once released.
Both use io_timeout 1 and sanlock 3.8.5's 60 s watchdog fire timeout."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.sanlockd import SanlockDaemon
from tests.conftest import LoopFactory
from tests.support.daemons import DaemonFactory
from tests.system.test_sanlock_compat import DRIVER, SYSTEM_PYTHON, compat_daemon, drive, err, ok

M = 1 << 20
IDLIVE = -243


@pytest.fixture
def sanlock_peer(tmp_path: Path) -> Iterator[SanlockDaemon]:
    d = SanlockDaemon(tmp_path / "sanlock-peer", "sanlock-peer")
    d.start()
    try:
        yield d
    finally:
        d.stop()


class Session:
    """A python3-sanlock process that runs steps, then waits for the test before running the rest."""

    def __init__(self, sanlock_dir: Path, steps: list[dict[str, Any]]) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(DRIVER), json.dumps(steps)],
                                     env={"SANLOCK_RUN_DIR": str(sanlock_dir)}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the driver exited with {self.proc.wait()}"
        out: dict[str, Any] = json.loads(line)
        return out

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def acquire_until_free(sanlock_dir: Path, dev: str) -> Session:
    """Register and acquire R1, retrying while the other host still holds it; then hold until 'go'."""
    s = Session(sanlock_dir, [
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}, "until": None},
        {"op": "wait"},
        {"op": "release", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}},
    ])
    ok(s.result())
    ok(s.result())
    return s


def test_lockengine_and_sanlock_exclude_each_other(daemons: DaemonFactory, loop_device: LoopFactory,
                                                   tmp_path: Path, sanlock_peer: SanlockDaemon) -> None:
    dev = loop_device(size=8 * M).path
    d, ours = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=60, kill_grace=40)
    theirs = sanlock_peer.run_dir
    for res in drive(ours, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", [[dev, M]]]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0], "kwargs": {"iotimeout": 1}},
    ]):
        ok(res)
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 2, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    sessions = []
    try:
        # lockengine holds: sanlock refuses, and names host 1 as the owner.
        le = acquire_until_free(ours, dev)
        sessions.append(le)
        r = drive(theirs, [
            {"op": "register"},
            {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}},
            {"op": "read_resource_owners", "args": ["LS", "R1", [[dev, M]]]},
            {"op": "get_hosts", "args": ["LS"]},
        ])
        assert err(r[1]) == IDLIVE
        assert [o["host_id"] for o in ok(r[2])] == [1]
        assert sorted(h["host_id"] for h in ok(r[3])) == [1, 2]
        le.go()
        ok(le.result())  # released through the sanlock socket
        # sanlock takes it; lockengine refuses it now.
        sl = acquire_until_free(theirs, dev)
        sessions.append(sl)
        r = drive(ours, [
            {"op": "register"},
            {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}},
            {"op": "read_resource_owners", "args": ["LS", "R1", [[dev, M]]]},
        ])
        assert err(r[1]) == IDLIVE
        assert [o["host_id"] for o in ok(r[2])] == [2]
        sl.go()
        ok(sl.result())
        # And back: lockengine gets it once sanlock released.
        again = acquire_until_free(ours, dev)
        sessions.append(again)
        again.go()
        ok(again.result())
    finally:
        for s in sessions:
            s.stop()
    ok(drive(theirs, [{"op": "rem_lockspace", "args": ["LS", 2, dev, 0]}])[0])


def test_never_takes_over_a_live_sanlock_socket(daemons: DaemonFactory, tmp_path: Path,
                                                 sanlock_peer: SanlockDaemon) -> None:
    """Configured with the socket a running sanlock daemon serves, lockengined refuses to start (before it
    arms its watchdog) and sanlock keeps its socket; a leftover socket file nobody serves is replaced."""
    live = sanlock_peer.run_dir / "sanlock.sock"
    with pytest.raises(AssertionError) as exc:
        daemons("intruder", sanlock_socket=str(live))
    assert "another daemon serves it" in str(exc.value)
    assert "watchdog multiplexer started" not in str(exc.value)  # refused before the device was armed
    assert sanlock_peer.client("status", check=False).returncode == 0
    stale = tmp_path / "stale" / "sanlock.sock"
    stale.parent.mkdir()
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()  # bound, never listening: what a crashed daemon leaves
    d = daemons("heir", sanlock_socket=str(stale))
    assert drive(stale.parent, [{"op": "get_lockspaces"}])[0]["value"] == []
    assert d.proc.poll() is None


def test_events_between_sanlock_and_lockengine(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                               sanlock_peer: SanlockDaemon) -> None:
    """set_event / reg_event / get_event / end_event through both daemons: an event set on one host reaches
    the other's listener (pushed 80-byte messages read by python3-sanlock's get_event)."""
    dev = loop_device(size=8 * M).path
    d, ours = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=60, kill_grace=40)
    theirs = sanlock_peer.run_dir
    for res in drive(ours, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0], "kwargs": {"iotimeout": 1}},
    ]):
        ok(res)
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 2, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    cur = 1  # SETEV_CUR_GENERATION
    a = Session(ours, [
        {"op": "reg_event", "args": ["LS"]},
        {"op": "get_event", "args": ["$evfd"], "until_nonempty": True},
        {"op": "set_event", "args": ["LS", 2, 0, 0x5566], "kwargs": {"data": 0x7788, "flags": cur}},
        {"op": "end_event", "args": ["$evfd", "LS"]},
        {"op": "reg_event", "args": ["NOPE"]},
        {"op": "set_event", "args": ["LS", 0, 0, 1]},
    ])
    b = Session(theirs, [
        {"op": "reg_event", "args": ["LS"]},
        {"op": "wait"},
        {"op": "set_event", "args": ["LS", 1, 0, 0x1122], "kwargs": {"data": 0x3344, "flags": cur}},
        {"op": "get_event", "args": ["$evfd"], "until_nonempty": True},
        {"op": "end_event", "args": ["$evfd", "LS"]},
    ])
    try:
        ok(a.result())
        ok(b.result())
        b.go()  # sanlock sets its event only once our listener is registered
        ok(b.result())
        ok(b.result())
        got = ok(a.result())
        assert [(e["event"], e["data"], e["from_host_id"], e["host_id"]) for e in got] == [(0x1122, 0x3344, 2, 1)]
        assert got[0]["from_generation"] >= 1
        ok(a.result())  # our set_event to host 2
        theirs_got = ok(b.result())
        assert [(e["event"], e["data"], e["from_host_id"], e["host_id"]) for e in theirs_got] == [(0x5566, 0x7788, 1, 2)]
        ok(b.result())
        ok(a.result())  # end_event
        assert err(a.result()) == 2  # ENOENT: no such lockspace
        assert err(a.result()) == 22  # EINVAL: host id 0
    finally:
        a.stop()
        b.stop()
    ok(drive(theirs, [{"op": "rem_lockspace", "args": ["LS", 2, dev, 0]}])[0])
