"""CONVERT (shared <-> exclusive) through the sanlock socket (lockengine/convert.py), on a real loop device:
sanlock's answers on one host (EALREADY, ENOENT, the owners on disk after each direction), and a real
sanlock daemon on a second host sharing the lease: a conversion to exclusive is refused (EAGAIN) while
the other host shares it — by lockengine and by sanlock alike — and each host's exclusive lease, won by
a conversion, keeps the other out (-243); the refused side still holds its shared lease."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from devkit.sanlockd import SanlockDaemon
from tests.conftest import LoopFactory
from tests.support.daemons import DaemonFactory
from tests.system.test_sanlock_compat import compat_daemon, drive, err, ok
from tests.system.test_sanlock_lvb import setup
from tests.system.test_sanlock_mixed_compat import Session, sanlock_peer  # noqa: F401 - a fixture of this test

M = 1 << 20
IDLIVE = -243
R1 = ["LS", "R1"]


def owners(sdir: Path, dev: str) -> list[tuple[int, bool]]:
    """(host_id, exclusive owner?) of R1 as read_resource_owners reports it through ``sdir``'s daemon."""
    res = ok(drive(sdir, [{"op": "read_resource_owners", "args": [*R1, [[dev, M]]]}])[0])
    return sorted((o["host_id"], o["timestamp"] != 0) for o in res)


def convert(shared: bool) -> dict[str, Any]:
    return {"op": "convert", "args": [*R1, int(shared)]}


def test_convert_on_one_host(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    setup(sdir, dev)
    disks = [[dev, M]]
    s = Session(sdir, [
        {"op": "register"},
        {"op": "acquire", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}},
        convert(True), {"op": "wait"},
        convert(True), convert(False), {"op": "wait"},
        {"op": "convert", "args": ["LS", "R2", 0]},
    ])
    try:
        ok(s.result()), ok(s.result())
        assert ok(s.result()) == 0
        assert [r["shared"] for r in d.call("status")["resources"]] == [True]
        assert owners(sdir, dev) == [(1, False)]  # a shared holder only: the leader is free
        s.go()
        ok(s.result())
        assert ok(s.result()) == -errno.EALREADY
        assert ok(s.result()) == 0
        assert [r["shared"] for r in d.call("status")["resources"]] == [False]
        assert owners(sdir, dev) == [(1, True)]  # the owner, and our mode block cleared
        s.go()
        ok(s.result())
        assert ok(s.result()) == -errno.ENOENT
    finally:
        s.stop()
    assert "Traceback" not in d.log_text()


def test_convert_against_a_real_sanlock_host(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                             sanlock_peer: SanlockDaemon) -> None:  # noqa: F811
    dev = loop_device(size=8 * M).path
    d, ours = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=60, kill_grace=40)
    theirs = sanlock_peer.run_dir
    setup(ours, dev)
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 2, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    disks = [[dev, M]]
    shared_acquire = {"op": "acquire", "args": [*R1, disks], "kwargs": {"slkfd": "$fd", "shared": True},
                      "until": None}
    sessions = []
    try:
        a = Session(ours, [{"op": "register"}, shared_acquire, {"op": "wait"}, convert(False), {"op": "wait"},
                           convert(False), {"op": "wait"}, convert(True), {"op": "wait"},
                           {"op": "release", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}}])
        sessions.append(a)
        ok(a.result()), ok(a.result())
        b = Session(theirs, [{"op": "register"}, shared_acquire, {"op": "wait"},
                             {"op": "release", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}}])
        sessions.append(b)
        ok(b.result()), ok(b.result())

        # lockengine may not convert while sanlock shares it; both still share it.
        a.go()
        ok(a.result())
        assert ok(a.result()) == -errno.EAGAIN
        assert owners(theirs, dev) == [(1, False), (2, False)]
        b.go()
        ok(b.result()), ok(b.result())  # sanlock's sharer leaves

        # Now it converts; sanlock cannot take it.
        a.go()
        ok(a.result())
        assert ok(a.result()) == 0
        assert owners(theirs, dev) == [(1, True)]
        r = drive(theirs, [{"op": "register"}, {"op": "acquire", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}}])
        assert err(r[1]) == IDLIVE

        # Back to shared: sanlock shares it, and sanlock's own convert is refused while we share it.
        a.go()
        ok(a.result())
        assert ok(a.result()) == 0
        c = Session(theirs, [{"op": "register"}, shared_acquire, {"op": "wait"}, convert(False), {"op": "wait"},
                             convert(False), {"op": "wait"},
                             {"op": "release", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}}])
        sessions.append(c)
        ok(c.result()), ok(c.result())
        assert owners(ours, dev) == [(1, False), (2, False)]
        c.go()
        ok(c.result())
        assert ok(c.result()) == -errno.EAGAIN
        a.go()
        ok(a.result()), ok(a.result())  # lockengine's sharer leaves
        c.go()
        ok(c.result())
        assert ok(c.result()) == 0  # sanlock converts ...
        r = drive(ours, [{"op": "register"}, {"op": "acquire", "args": [*R1, disks], "kwargs": {"slkfd": "$fd"}},
                         {"op": "acquire", "args": [*R1, disks], "kwargs": {"slkfd": "$fd", "shared": True}}])
        assert err(r[1]) == IDLIVE and not r[2]["ok"]  # ... and lockengine is kept out, exclusive or shared
        c.go()
        ok(c.result()), ok(c.result())
    finally:
        for s in sessions:
            s.stop()
    assert "Traceback" not in d.log_text()
