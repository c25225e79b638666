"""The sanlock socket is not root either: a hostile member of the socket's group speaks sanlock's binary
protocol (raw bytes, from a forked child that became a real unprivileged user, made here and removed
after) and is refused what the JSON socket refuses it (docs/daemon.md "Who may do what"): administrator
commands, other users' registered processes, requests against leases it does not hold, and every path it
could not open itself — with nothing written to, or read from, those paths. It can still register and
hold its own leases; an administrator passes the same checks; a user outside the group cannot connect.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header, WireDisk, WireHostEvent, WireLockspace, WireOptions, WireResource
from tests.system.authz_world import AuthzWorld, authz_world
from tests.system.test_sanlock_restrict import start_holder
from tests.system.unprivileged import User, as_user

M = 1 << 20
ROOT = User("root", 0, 0)


World = AuthzWorld


@pytest.fixture
def world(loop_device: Any, request: pytest.FixtureRequest) -> Iterator[World]:
    with authz_world(loop_device, request, user_prefix="lks", name="sanlock-authz", root_resources=("R1",),
                     sanlock_socket=True) as w:
        yield w


# --------------------------------------------------------------------------- raw protocol


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _connect(sock: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    return s


def _exchange(s: socket.socket, h: Header, payload: bytes) -> list[Any]:
    s.sendall(h.encode() + payload)
    words = struct.unpack("<8I", _recv_exact(s, 32))
    body = _recv_exact(s, words[4] - 32) if words[4] > 32 else b""
    return [struct.unpack("<i", struct.pack("<I", words[6]))[0], words[7], body.hex()]


def head_of(dev: str, size: int = 4 * M) -> bytes:
    """The device's first ``size`` bytes as on disk (O_DIRECT: the daemon writes past the page cache)."""
    buf = mmap.mmap(-1, size)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buf], 0)
        return bytes(buf)
    finally:
        os.close(fd)
        buf.close()


def raw_call(sock: str, h: Header, payload: bytes = b"", register: bool = False) -> Any:
    """A function for ``as_user``: one request (after REGISTER on the same connection when asked);
    returns [result, data2, payload hex]."""

    def fn() -> list[Any]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect(sock)
            if register:
                s.sendall(Header(cmd=wire.REGISTER).encode())  # no reply
            return _exchange(s, h, payload)
        finally:
            s.close()

    return fn


def result(w: World, user: User, h: Header, payload: bytes = b"", register: bool = False) -> int:
    res = as_user(user, raw_call(w.sanlock_sock, h, payload, register))
    assert res["ok"], res
    code: int = res["value"][0]
    return code


def acquire(disk: str, name: str, offset: int, data2: int = wire.PID_SELF) -> tuple[Header, bytes]:
    payload = WireResource("LS", name, disks=(WireDisk(disk, offset),)).encode() + WireOptions("x").encode()
    return Header(cmd=wire.ACQUIRE, length=32 + len(payload), data=1, data2=data2), payload


def with_len(h: Header, payload: bytes) -> tuple[Header, bytes]:
    return Header(cmd=h.cmd, cmd_flags=h.cmd_flags, length=32 + len(payload), data=h.data, data2=h.data2), payload


# --------------------------------------------------------------------------- the test


def test_unprivileged_member_gets_nothing_it_is_not_entitled_to(world: World) -> None:
    w, d, u = world, world.daemon, world.user
    d.join("LS", 1, w.user_disk)
    ls = WireLockspace("LS", 1, 0, WireDisk(w.user_disk, 0)).encode()

    # Root's registered process (a child, never this test process: a daemon stopping kills holders)
    # holds R1 on the user's disk.
    holder = start_holder(Path(w.sanlock_sock).parent, w.user_disk, 0, Path(w.sanlock_sock).parent / "mark")
    root_pid = holder.pid
    try:
        # What a member may do: look, register, hold its own lease, inquire it.
        assert as_user(u, raw_call(w.sanlock_sock, Header(cmd=wire.VERSION)))["value"][1] == wire.VERSION_CODE
        assert result(w, u, Header(cmd=wire.GET_LOCKSPACES)) == 0
        assert result(w, u, *acquire(w.user_disk, "R2", 2 * M), register=True) == 0
        assert result(w, u, Header(cmd=wire.INQ_LOCKSPACE), ls) == 0

        # Administrator commands: -EPERM (before "not served" for those lockengine does not serve).
        admin_only = [
            with_len(Header(cmd=wire.ADD_LOCKSPACE), WireLockspace("LS2", 1, 0, WireDisk(w.user_disk, 0)).encode()),
            with_len(Header(cmd=wire.REM_LOCKSPACE), ls),
            with_len(Header(cmd=wire.SET_EVENT), ls + WireHostEvent(2, 0, 1, 0).encode()),
            with_len(Header(cmd=wire.EXAMINE_LOCKSPACE), ls),
            with_len(Header(cmd=wire.EXAMINE_RESOURCE), WireResource("LS", "R1").encode()),
            with_len(Header(cmd=wire.SET_CONFIG, data=1), ls),
            (Header(cmd=wire.SHUTDOWN, data=1), b""),
        ]
        for h, payload in admin_only:
            assert result(w, u, h, payload) == -errno.EPERM, h.name
        assert len(d.call("status")["lockspaces"]) == 1  # LS2 was not added, LS not removed

        # Root's process: not acquirable for, releasable, inquirable or convertible by pid.
        r1 = WireResource("LS", "R1").encode()
        for h, payload in [acquire(w.user_disk, "R3", 3 * M, data2=root_pid),
                           (Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ALL, data2=root_pid), b""),
                           with_len(Header(cmd=wire.RELEASE, data=1, data2=root_pid), r1),
                           (Header(cmd=wire.INQUIRE, data2=root_pid), b""),
                           with_len(Header(cmd=wire.CONVERT, data2=root_pid), r1)]:
            assert result(w, u, h, payload) == -errno.EPERM, h.name
        # Nor can a request move root's lease (graceful or force).
        req_r1 = WireResource("LS", "R1", lver=2, disks=(WireDisk(w.user_disk, M),)).encode()
        for mode in (1, 2):
            assert result(w, u, *with_len(Header(cmd=wire.REQUEST, data=mode), req_r1)) == -errno.EPERM
        assert _exchange(_connect(w.sanlock_sock), Header(cmd=wire.INQUIRE, data2=root_pid), b"")[:2] == [0, 1]
        held = {(r["resource"], r["pid"]) for r in d.call("status")["resources"]}
        assert ("R1", root_pid) in held

        # Paths it may not open itself: -EACCES, nothing written, nothing read echoed back.
        before = head_of(w.root_disk)
        shadow = "/etc/shadow"
        root_ls = WireLockspace("LS", 1, 0, WireDisk(w.root_disk, 0)).encode()
        root_r1 = WireResource("LS", "R1", disks=(WireDisk(w.root_disk, M),)).encode()
        shadow_r = WireResource("LS", "R1", disks=(WireDisk(shadow, 0),)).encode()
        for h, payload in [with_len(Header(cmd=wire.WRITE_LOCKSPACE), root_ls),
                           with_len(Header(cmd=wire.WRITE_RESOURCE), root_r1),
                           with_len(Header(cmd=wire.WRITE_RESOURCE, cmd_flags=wire.WRITE_CLEAR), root_r1),
                           with_len(Header(cmd=wire.READ_LOCKSPACE), root_ls),
                           with_len(Header(cmd=wire.READ_RESOURCE), root_r1),
                           with_len(Header(cmd=wire.READ_RESOURCE), shadow_r),
                           with_len(Header(cmd=wire.READ_RESOURCE_OWNERS), root_r1),
                           with_len(Header(cmd=wire.ALIGN), WireDisk(w.root_disk, 0).encode())]:
            res = as_user(u, raw_call(w.sanlock_sock, h, payload))["value"]
            assert res[0] == -errno.EACCES, (h.name, res)
            body = bytes.fromhex(res[2])
            assert body in (b"", payload[: len(body)]), h.name  # only what it sent comes back
        assert result(w, u, *acquire(w.root_disk, "R1", M), register=True) == -errno.EACCES
        assert result(w, u, *acquire(shadow, "R1", 0), register=True) == -errno.EACCES
        req_root = WireResource("LS", "R1", lver=2, disks=(WireDisk(w.root_disk, M),)).encode()
        assert result(w, u, *with_len(Header(cmd=wire.REQUEST, data=2), req_root)) == -errno.EPERM  # not its lease
        assert head_of(w.root_disk) == before
        log = d.log_text()
        assert f"uid {u.uid}" in log and "may not open it" in log

        # An orphan root left (a PERSISTENT lease whose process went): the member may neither adopt nor
        # release it, by name or by lockspace; an administrator may.
        pay = WireResource("LS", "R3", flags=wire.RES_PERSISTENT, disks=(WireDisk(w.user_disk, 3 * M),)).encode()
        pay += WireOptions("x").encode()
        assert result(w, ROOT, Header(cmd=wire.ACQUIRE, length=32 + len(pay), data=1, data2=wire.PID_SELF), pay,
                      register=True) == 0
        for _ in range(300):
            if ("R3", 0) in {(r["resource"], r["pid"]) for r in d.call("status")["resources"]}:
                break
            time.sleep(0.1)
        adopt = acquire(w.user_disk, "R3", 3 * M)
        adopt = (Header(cmd=wire.ACQUIRE, cmd_flags=wire.ACQUIRE_ORPHAN, length=adopt[0].length, data=1,
                        data2=wire.PID_SELF), adopt[1])
        assert result(w, u, *adopt, register=True) == -errno.EPERM
        for name in ("R3", ""):
            rel = with_len(Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ORPHAN, data=1, data2=wire.PID_SELF),
                           WireResource("LS", name).encode())
            assert result(w, u, *rel, register=True) == -errno.EPERM, name
        assert ("R3", 0) in {(r["resource"], r["pid"]) for r in d.call("status")["resources"]}
        rel = with_len(Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ORPHAN, data=1, data2=wire.PID_SELF),
                       WireResource("LS", "R3").encode())
        assert result(w, w.admin, *rel, register=True) == 1  # released: sanlock answers the count

        # An administrator passes the same checks: examine and set_config (USED, then UNUSED again) run.
        assert result(w, w.admin, Header(cmd=wire.EXAMINE_LOCKSPACE), ls) == 0
        assert result(w, w.admin, Header(cmd=wire.SET_CONFIG, data=1), ls) == 0
        assert result(w, w.admin, Header(cmd=wire.SET_CONFIG, data=2), ls) == 0
        assert result(w, ROOT, Header(cmd=wire.INQUIRE, data2=root_pid)) == 0

        # Outside the socket's group: no connection at all.
        res = as_user(w.outsider, raw_call(w.sanlock_sock, Header(cmd=wire.VERSION)))
        assert not res["ok"] and res["error"]["name"] == "PermissionError", res
    finally:
        holder.kill()
        holder.wait()
    assert "Traceback" not in d.log_text()
