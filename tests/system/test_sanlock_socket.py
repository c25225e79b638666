"""lockengined's sanlock socket at the byte level: error replies, the connection model, and a seeded fuzz
run (>= 5000 malformed messages) after which the daemon still serves and a holder still holds its lease."""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header, WireDisk, WireLockspace, WireOptions, WireResource
from tests.conftest import LoopFactory
from tests.support.daemons import DaemonFactory, Holder, TestDaemon
from tests.system.test_sanlock_compat import SYSTEM_PYTHON, compat_daemon, drive, ok

M = 1 << 20
FUZZ_MESSAGES = 6000
SEED = 20261130


class Raw:
    """One connection to the sanlock socket, speaking bytes."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def reply(self) -> tuple[tuple[int, ...], bytes]:
        words = struct.unpack("<8I", self.recv_exact(32))
        assert words[0] == wire.MAGIC and words[1] == 1
        length = words[4]
        return words, self.recv_exact(length - 32) if length > 32 else b""

    def call(self, h: Header, payload: bytes = b"") -> tuple[int, int, bytes]:
        """(result, data2, payload)."""
        self.send(h.encode() + payload)
        words, body = self.reply()
        result = struct.unpack("<i", struct.pack("<I", words[6]))[0]
        return result, words[7], body

    def at_eof(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def sock_path(sdir: Path) -> Path:
    return sdir / "sanlock.sock"


def setup_lockspace(d: TestDaemon, sdir: Path, dev: str) -> None:
    for res in drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", [[dev, M]]]},
        {"op": "write_resource", "args": ["LS", "R2", [[dev, 2 * M]]]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
    ]):
        ok(res)


def acquire_msg(dev: str, name: str, offset: int, data2: int = wire.PID_SELF, flags: int = 0,
                cmd_flags: int = 0) -> tuple[Header, bytes]:
    payload = WireResource("LS", name, flags=flags, disks=(WireDisk(dev, offset),)).encode() + WireOptions("raw").encode()
    return Header(cmd=wire.ACQUIRE, cmd_flags=cmd_flags, length=32 + len(payload), data=1, data2=data2), payload


def test_error_replies_and_connection_model(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    path = sock_path(sdir)

    # Bad magic and unknown commands: -EINVAL, then the connection is closed.
    bad: list[tuple[int, ...]] = [(0xDEADBEEF, 1, 28, 0, 32, 0, 0, 0), (wire.MAGIC, 1, 99, 0, 32, 0, 0, 0),
                  (wire.MAGIC, 0x00020001, wire.STATUS, 0, 32, 0, 0, 0)]
    for words in bad:
        c = Raw(path)
        c.send(struct.pack("<8I", *words))
        got, _ = c.reply()
        assert struct.unpack("<i", struct.pack("<I", got[6]))[0] == -errno.EINVAL
        assert c.at_eof()
        c.close()

    # Commands not served yet: -EOPNOTSUPP, payload consumed, one command per connection.
    ls = WireLockspace("LS", 1, 0, WireDisk(dev, 0)).encode()
    res = WireResource("LS", "R1").encode()
    c = Raw(path)
    assert c.call(Header(cmd=wire.SET_CONFIG, data=1), ls)[0] == -errno.ENOENT  # served: LS is not joined yet
    c.close()
    for h, payload in [(Header(cmd=wire.SHUTDOWN, data=1), b""),
                       (Header(cmd=wire.FORMAT_RINDEX), bytes(1104))]:
        c = Raw(path)
        result, _, _ = c.call(h, payload)
        assert result == -errno.EOPNOTSUPP, h.name
        assert c.at_eof()
        c.close()
    # The LVB of a lease nobody here holds: -ENOENT, as sanlock.
    for h, payload in [(Header(cmd=wire.SET_LVB, length=32 + 128 + 9), res + b"hello-lvb"),
                       (Header(cmd=wire.GET_LVB), res)]:
        c = Raw(path)
        assert c.call(h, payload)[0] == -errno.ENOENT, h.name
        assert c.at_eof()
        c.close()

    c = Raw(path)  # events are served; this lockspace is not joined (yet)
    assert c.call(Header(cmd=wire.REG_EVENT, length=32 + 1104 + 32), ls + bytes(32))[0] == -errno.ENOENT
    assert c.at_eof()
    c.close()

    # VERSION keeps the connection open and answers 3.8.5; ALIGN answers the device's alignment.
    c = Raw(path)
    for _ in range(2):
        c.send(Header(cmd=wire.VERSION).encode())
        words, _ = c.reply()
        assert (words[2], words[3], words[7]) == (wire.VERSION, 0, 0x03080500)
    c.close()
    c = Raw(path)
    assert c.call(Header(cmd=wire.ALIGN), WireDisk(dev, 0).encode())[0] == M
    c.close()
    c = Raw(path)
    result, count, body = c.call(Header(cmd=wire.GET_LOCKSPACES))
    assert (result, count, body) == (0, 0, b"")
    c.close()

    # Lease commands without a registration.
    setup_lockspace(d, sdir, dev)
    c = Raw(path)
    assert c.call(*acquire_msg(dev, "R1", M))[0] == -errno.EBUSY  # data2 = -1, not registered
    c.close()
    c = Raw(path)
    assert c.call(Header(cmd=wire.INQUIRE, data2=1))[0] == -errno.ESRCH
    c.close()

    # A registered connection: no reply to REGISTER; leases on it; garbage drops the input, not the leases.
    reg = Raw(path)
    reg.send(Header(cmd=wire.REGISTER).encode())
    assert reg.call(*acquire_msg(dev, "R1", M))[0] == 0
    # ORPHAN_ONLY adopts, never acquires: R2 is no orphan here (tests/system/test_sanlock_orphans.py).
    assert reg.call(*acquire_msg(dev, "R2", 2 * M, cmd_flags=wire.ACQUIRE_ORPHAN_ONLY))[0] == -errno.ENOENT
    # num_hosts on acquire is served (tests/system/test_sanlock_num_hosts.py); a bad one is -EINVAL.
    bad = WireResource("LS", "R2", data32=5000, flags=wire.RES_NUM_HOSTS, disks=(WireDisk(dev, 2 * M),)).encode()
    bad += WireOptions("raw").encode()
    assert reg.call(Header(cmd=wire.ACQUIRE, length=32 + len(bad), data=1, data2=wire.PID_SELF), bad)[0] == -errno.EINVAL
    result, _, _ = reg.call(Header(magic=0x12345678, cmd=wire.INQUIRE))
    assert result == -errno.EINVAL
    result, count, body = reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))
    assert (result, count) == (0, 1) and body == f"LS:R1:{dev}:{M}:1\0".encode()
    assert reg.call(Header(cmd=wire.CONVERT, data2=wire.PID_SELF), res)[0] == -errno.EALREADY  # held exclusively
    # Several resources in one call (libsanlock allows 8; the binding sends one): all or nothing.
    r1 = WireResource("LS", "R1", disks=(WireDisk(dev, M),))
    r2 = WireResource("LS", "R2", disks=(WireDisk(dev, 2 * M),))
    two = r2.encode() + r1.encode() + WireOptions("raw").encode()
    acquire_two = Header(cmd=wire.ACQUIRE, length=32 + len(two), data=2, data2=wire.PID_SELF)
    assert reg.call(acquire_two, two)[0] == -errno.EEXIST  # R1 is held already: R2 is not kept either
    assert reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))[1] == 1
    assert reg.call(Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ALL, data2=wire.PID_SELF))[0] == 0
    assert reg.call(acquire_two, two)[0] == 0
    assert reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))[1] == 2
    names = r1.encode(with_disks=False) + r2.encode(with_disks=False)  # RELEASE sends no disks
    assert reg.call(Header(cmd=wire.RELEASE, length=32 + len(names), data=2, data2=wire.PID_SELF), names)[0] == 0
    assert reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))[1] == 0
    assert reg.call(*acquire_msg(dev, "R1", M))[0] == 0
    status = d.call("status")
    assert [(r["resource"], r["pid"]) for r in status["resources"]] == [("R1", status["clients"][0]["pid"])]
    # RESTRICT_ALL: this connection takes no more commands; leases stay until it closes.
    assert reg.call(Header(cmd=wire.RESTRICT, cmd_flags=wire.RESTRICT_ALL, data2=wire.PID_SELF))[0] == 0
    assert reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))[0] == -errno.EPERM
    assert len(d.call("status")["resources"]) == 1
    reg.close()
    deadline = time.monotonic() + 10
    while d.call("status")["resources"]:
        assert time.monotonic() < deadline, "closing the registered connection did not release its lease"
        time.sleep(0.05)


def fuzz_message(rng: random.Random) -> bytes:
    """One malformed (or valid-but-nonsense) request; never one that writes to a disk."""
    kind = rng.randrange(7)
    safe_cmds = [c for c in wire.CMD_NAMES if c not in (wire.WRITE_LOCKSPACE, wire.WRITE_RESOURCE)]
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:
        return struct.pack("<I", wire.MAGIC) + rng.randbytes(28 + rng.randrange(0, 200))
    if kind == 2:  # bad version, command 0 or beyond 40
        return Header(version=rng.choice([0x10001, 0xFFFF0000]), cmd=rng.choice([0, 41, 255, 2**32 - 1])).encode()
    cmd = rng.choice(safe_cmds)
    h = Header(cmd=cmd, cmd_flags=rng.choice([0, 1, 2, 4, 8, rng.getrandbits(32)]),
               length=rng.choice([32, 32 + rng.randrange(4000), rng.getrandbits(32)]),
               data=rng.choice([0, 1, 2, 8, 9, rng.getrandbits(32)]),
               data2=rng.choice([0, wire.PID_SELF, 1, rng.getrandbits(32)]))
    body = bytes(rng.choices([0, 1, 2, 0x2F, 0x41, 0xFF], k=rng.choice([0, 56, 128, 1040, 1104, 1300, 5000])))
    if kind == 3:  # a truncated payload, then EOF
        return h.encode() + body[: rng.randrange(0, 100)]
    if kind == 4:  # nonsense structs of plausible sizes
        return h.encode() + body
    if kind == 5:  # a valid request followed by garbage on the same connection
        return Header(cmd=wire.VERSION).encode() + rng.randbytes(rng.randrange(1, 100))
    return h.encode() + rng.randbytes(rng.randrange(0, 3000))


def send_and_drain(path: Path, data: bytes) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(str(path))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and closed before reading everything: allowed
    finally:
        s.close()


def version_ok(path: Path) -> bool:
    c = Raw(path)
    try:
        c.send(Header(cmd=wire.VERSION).encode())
        return c.reply()[0][7] == wire.VERSION_CODE
    finally:
        c.close()


def test_fuzz_daemon_survives_and_keeps_serving(daemons: DaemonFactory, loop_device: LoopFactory,
                                                tmp_path: Path) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    path = sock_path(sdir)
    setup_lockspace(d, sdir, dev)
    holder = subprocess.Popen(
        [SYSTEM_PYTHON, "-c",
         "import sanlock, sys\n"
         "fd = sanlock.register()\n"
         f"sanlock.acquire(b'LS', b'R1', [({dev!r}, {M})], slkfd=fd)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"
         "print(sanlock.inquire(slkfd=fd), flush=True)\n"],
        env={"SANLOCK_RUN_DIR": str(sdir)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        rng = random.Random(SEED)
        for i in range(FUZZ_MESSAGES):
            send_and_drain(path, fuzz_message(rng))
            if i % 500 == 0:
                assert version_ok(path), f"no VERSION reply after {i} fuzz messages (seed {SEED})"
                assert d.proc.poll() is None
        assert d.proc.poll() is None
        assert version_ok(path)
        # The holder kept its lease and its registered connection still works.
        status = d.call("status")
        assert [(r["resource"], r["pid"]) for r in status["resources"]] == [("R1", holder.pid)]
        for res in drive(sdir, [{"op": "read_resource_owners", "args": ["LS", "R1", [[dev, M]]]}]):
            assert [o["host_id"] for o in ok(res)] == [1]
        assert holder.stdin is not None
        holder.stdin.close()
        line = holder.stdout.readline()
        assert "'R1'" in line or "b'R1'" in line, line
        # Nothing escaped as an exception: every failure was a reply.
        log = d.log_text()
        assert "Traceback" not in log and "failed unexpectedly" not in log and "loop failed" not in log
    finally:
        holder.kill()
        holder.wait()


def result_of(words: tuple[int, ...]) -> int:
    return int(struct.unpack("<i", struct.pack("<I", words[6]))[0])


def test_one_command_in_flight_and_takeover_from_a_dead_host(
    daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path, holders: list[Holder]
) -> None:
    """Host 2 holds R1 and its daemon dies. Through the sanlock socket host 1 gets -243 (IDLIVE) or, with
    OWNER_NOWAIT, -247 (OWNED_RETRY) — never the lease — until host 2 counts as dead; a blocking ACQUIRE
    waits for that, and meanwhile every other command for the same client gets -EBUSY."""
    dev = loop_device(size=8 * M).path
    # The shortest fire timeout both hosts accept: host 2 counts as dead 8·io + 5 s after its last renewal.
    d1, sdir = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=5)
    setup_lockspace(d1, sdir, dev)
    d2 = daemons("h2", watchdog_fire_timeout=5)
    d2.join("LS", 2, dev)
    h2 = d2.holder(f"LS:R1:{dev}:{M}")
    holders.append(h2)
    assert h2.acquired is not None, h2.error
    d2.proc.kill()
    d2.proc.wait()
    path = sock_path(sdir)
    reg = Raw(path)
    reg.sock.settimeout(120)
    reg.send(Header(cmd=wire.REGISTER).encode())
    me = os.getpid()  # the registered client is this test process
    while True:  # until host 1 sees host 2 stop renewing
        result = reg.call(*acquire_msg(dev, "R1", M, cmd_flags=wire.ACQUIRE_OWNER_NOWAIT))[0]
        assert result in (-243, -247), result  # never 0 while host 2 may be alive
        if result == -247:
            break
        time.sleep(0.2)
    h, payload = acquire_msg(dev, "R1", M)
    reg.send(h.encode() + payload)
    # While that ACQUIRE waits for host 2 to count as dead: one command in flight per client.
    for other, body in [(Header(cmd=wire.INQUIRE, data2=me), b""), acquire_msg(dev, "R2", 2 * M, data2=me)]:
        c = Raw(path)
        assert c.call(other, body)[0] == -errno.EBUSY
        c.close()
    words, _ = reg.reply()
    assert result_of(words) == 0
    result, count, body = reg.call(Header(cmd=wire.INQUIRE, data2=wire.PID_SELF))
    assert (result, count) == (0, 1) and body.startswith(f"LS:R1:{dev}:{M}:2".encode())
    reg.close()
