"""The lock value block through the sanlock socket, driven by python3-sanlock on a real loop device:
where it lives on disk (resource offset + 2002 sectors), when it is read (acquire with lvb=True) and
written (the exclusive holder's release, also when the holder dies), sanlock's error codes; and a real
sanlock daemon reading what lockengine wrote and the other way round (lockengine/lvb.py)."""

from __future__ import annotations

import errno
import mmap
import os
import time
from pathlib import Path

from devkit.sanlockd import SanlockDaemon
from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header, WireResource
from tests.conftest import LoopFactory
from tests.support.daemons import DaemonFactory, TestDaemon
from tests.system.test_sanlock_compat import compat_daemon, drive, err, ok
from tests.system.test_sanlock_mixed_compat import sanlock_peer  # noqa: F401 - a fixture of this test
from tests.system.test_sanlock_socket import Raw, acquire_msg, sock_path

M = 1 << 20
LVB_AT = 2002 * 512  # into the area, at 512-byte sectors


def disk_lvb(dev: str, offset: int) -> bytes:
    """The LVB sector as the disk has it (O_DIRECT: not a stale page cache)."""
    buf = mmap.mmap(-1, 4096)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buf], offset + LVB_AT)
        return bytes(buf[:512])
    finally:
        os.close(fd)
        buf.close()


def wait_released(d: TestDaemon) -> None:
    deadline = time.monotonic() + 30
    while d.call("status")["resources"]:
        assert time.monotonic() < deadline, "the dead holder's lease was not released"
        time.sleep(0.05)


def setup(sdir: Path, dev: str) -> None:
    for res in drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", [[dev, M]]]},
        {"op": "write_resource", "args": ["LS", "R2", [[dev, 2 * M]]]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0], "kwargs": {"iotimeout": 1}},
    ]):
        ok(res)


def test_lvb_lifecycle_and_errors(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    setup(sdir, dev)
    r1, r2 = [[dev, M]], [[dev, 2 * M]]
    r = drive(sdir, [
        {"op": "get_lvb", "args": ["LS", "R1", r1, 16]},
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R2", r2], "kwargs": {"slkfd": "$fd"}},
        {"op": "set_lvb", "args": ["LS", "R2", r2, "x"]},
        {"op": "acquire", "args": ["LS", "R1", r1], "kwargs": {"slkfd": "$fd", "lvb": True}},
        {"op": "get_lvb", "args": ["LS", "R1", r1, 16]},
        {"op": "set_lvb", "args": ["LS", "R1", r1, "hello-lvb"]},
        {"op": "get_lvb", "args": ["LS", "R1", r1, 9]},
        {"op": "release", "args": ["LS", "R1", r1], "kwargs": {"slkfd": "$fd"}},
    ])
    assert err(r[0]) == errno.ENOENT  # not held here
    ok(r[1]), ok(r[2])
    assert err(r[3]) == errno.EINVAL  # held without an LVB
    ok(r[4])
    assert ok(r[5]) == "\0" * 16  # a fresh area's LVB sector is zero
    ok(r[6])
    assert ok(r[7]) == "hello-lvb"
    ok(r[8])
    assert disk_lvb(dev, M) == b"hello-lvb".ljust(512, b"\0")  # written back on release, a whole sector

    # Read at the next acquire; set changes only the first bytes (sanlock copies len bytes); a holder that
    # dies has its lease released with the LVB written first.
    r = drive(sdir, [
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", r1], "kwargs": {"slkfd": "$fd", "lvb": True}},
        {"op": "get_lvb", "args": ["LS", "R1", r1, 9]},
        {"op": "set_lvb", "args": ["LS", "R1", r1, "abc"]},
        {"op": "get_lvb", "args": ["LS", "R1", r1, 9]},
    ])
    assert [ok(x) for x in r[2:]] == ["hello-lvb", None, "abclo-lvb"]
    wait_released(d)
    assert disk_lvb(dev, M) == b"abclo-lvb".ljust(512, b"\0")  # the driver exited: released, LVB written

    # Byte level: GET_LVB with length 0 is the whole sector; an LVB larger than the sector is -E2BIG.
    holder = Raw(sock_path(sdir))
    holder.send(Header(cmd=wire.REGISTER).encode())
    assert holder.call(*acquire_msg(dev, "R1", M, cmd_flags=wire.ACQUIRE_LVB))[0] == 0
    res = WireResource("LS", "R1").encode()
    c = Raw(sock_path(sdir))
    result, _, body = c.call(Header(cmd=wire.GET_LVB), res)
    assert (result, body) == (0, b"abclo-lvb".ljust(512, b"\0"))
    c.close()
    c = Raw(sock_path(sdir))
    assert c.call(Header(cmd=wire.SET_LVB, length=32 + 128 + 600), res + bytes(600))[0] == -errno.E2BIG
    c.close()
    holder.close()
    wait_released(d)  # this test process held it: its daemon must not see it as a holder at shutdown
    assert "Traceback" not in d.log_text()


def test_lvb_between_lockengine_and_sanlock(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                            sanlock_peer: SanlockDaemon) -> None:  # noqa: F811
    dev = loop_device(size=8 * M).path
    d, ours = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=60, kill_grace=40)
    theirs = sanlock_peer.run_dir
    setup(ours, dev)
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 2, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    r1 = [[dev, M]]

    def cycle(sdir: Path, text: str) -> list[dict[str, object]]:
        """Acquire R1 with its LVB (retrying while the other host still holds it), read it, set ``text``,
        release; as one python3-sanlock process."""
        return drive(sdir, [
            {"op": "register"},
            {"op": "acquire", "args": ["LS", "R1", r1], "kwargs": {"slkfd": "$fd", "lvb": True}, "until": None},
            {"op": "get_lvb", "args": ["LS", "R1", r1, 20]},
            {"op": "set_lvb", "args": ["LS", "R1", r1, text]},
            {"op": "release", "args": ["LS", "R1", r1], "kwargs": {"slkfd": "$fd"}},
        ])

    r = cycle(ours, "from-lockengine")
    assert ok(r[2]) == "\0" * 20
    ok(r[4])
    r = cycle(theirs, "from-sanlock")  # sanlock reads what lockengine wrote ...
    assert ok(r[2]) == "from-lockengine".ljust(20, "\0")
    ok(r[4])
    assert disk_lvb(dev, M) == b"from-sanlockine".ljust(512, b"\0")  # ... and writes it as lockengine does
    r = cycle(ours, "again")  # lockengine reads what sanlock wrote
    assert ok(r[2]) == "from-sanlockine".ljust(20, "\0")
    ok(r[4])
    assert disk_lvb(dev, M) == b"againsanlockine".ljust(512, b"\0")
    assert "Traceback" not in d.log_text()
