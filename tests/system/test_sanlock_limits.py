"""The sanlock socket is bounded like the JSON socket (lockengine/daemon/connlimits.py): the connection cap,
the output bound, half-close, the listener's rest at the descriptor limit, and malformed input closing
the connection — each shown on a real lockengined, at the byte level, with the daemon still serving after."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header
from tests.support.daemons import DaemonFactory, TestDaemon
from tests.system.test_protocol_fuzz import _soft_nofile
from tests.system.test_sanlock_compat import compat_daemon
from tests.system.test_sanlock_socket import Raw, sock_path

MAX_CONNECTIONS = 4  # the config's floor
MAX_OUTPUT = 65536  # the config's floor
WAIT = 20.0  # seconds a test waits for the daemon's log line before it fails


def result_of(words: tuple[int, ...]) -> int:
    return int(struct.unpack("<i", struct.pack("<I", words[6]))[0])


def version_ok(path: Path) -> None:
    """The socket still serves: VERSION answers 3.8.5."""
    c = Raw(path)
    result, data2, _ = c.call(Header(cmd=wire.VERSION))
    c.close()
    assert (result, data2) == (0, wire.VERSION_CODE)


def wait_log(d: TestDaemon, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + WAIT
    while d.log_text().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{d.log_text()[-3000:]}"
        time.sleep(0.05)


def test_connection_cap(daemons: DaemonFactory, tmp_path: Path) -> None:
    d, sdir = compat_daemon(daemons, tmp_path, max_connections=MAX_CONNECTIONS)
    path = sock_path(sdir)
    idle = [Raw(path) for _ in range(MAX_CONNECTIONS)]
    version_ok_before = Raw(path)  # one more than the cap: a bare header with -EAGAIN, then EOF
    words, _ = version_ok_before.reply()
    assert result_of(words) == -errno.EAGAIN and words[2] == 0
    assert version_ok_before.at_eof()
    version_ok_before.close()
    wait_log(d, f"refused: {MAX_CONNECTIONS} connections open (max_connections)")
    # The JSON socket has its own cap: still served while the sanlock socket is full.
    assert d.call("status")["daemon"]["host_name"] == "h1"
    # A connection that closes frees its place.
    idle.pop().close()
    deadline = time.monotonic() + WAIT
    while True:
        c = Raw(path)
        c.send(Header(cmd=wire.VERSION).encode())
        words, _ = c.reply()
        c.close()
        if result_of(words) == 0:
            break
        assert result_of(words) == -errno.EAGAIN and time.monotonic() < deadline
        time.sleep(0.05)
    assert words[7] == wire.VERSION_CODE
    for c in idle:
        c.close()


def test_output_bound_drops_a_client_that_does_not_read(daemons: DaemonFactory, tmp_path: Path) -> None:
    d, sdir = compat_daemon(daemons, tmp_path, max_output_bytes=MAX_OUTPUT)
    path = sock_path(sdir)
    slow = Raw(path)
    slow.send(Header(cmd=wire.REGISTER).encode())
    # 32-byte replies, never read: past the socket buffers and MAX_OUTPUT the daemon drops us.
    ask = Header(cmd=wire.INQUIRE, data2=wire.PID_SELF).encode() * 20000
    with contextlib.suppress(OSError):  # already dropped: the daemon stopped reading us
        slow.send(ask)
    wait_log(d, "does not read its replies")
    assert f"(max_output_bytes {MAX_OUTPUT}); connection dropped" in d.log_text()
    # The registration went with its connection; the daemon serves the others.
    deadline = time.monotonic() + WAIT
    while d.call("status")["clients"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    version_ok(path)
    slow.close()


def test_half_closed_connection_gets_its_reply(daemons: DaemonFactory, tmp_path: Path) -> None:
    d, sdir = compat_daemon(daemons, tmp_path)
    path = sock_path(sdir)
    for h in (Header(cmd=wire.VERSION), Header(cmd=wire.GET_LOCKSPACES)):
        c = Raw(path)
        c.send(h.encode())
        c.sock.shutdown(socket.SHUT_WR)
        words, _ = c.reply()
        assert result_of(words) == 0 and words[2] == h.cmd
        assert c.at_eof()  # answered, then closed (VERSION too, which otherwise stays open)
        c.close()
    # A request cut short by the EOF: -EINVAL, then the connection is closed.
    c = Raw(path)
    c.send(Header(cmd=wire.INQ_LOCKSPACE, length=32 + wire.LOCKSPACE_SIZE).encode() + b"LS\0")
    c.sock.shutdown(socket.SHUT_WR)
    words, _ = c.reply()
    assert result_of(words) == -errno.EINVAL and words[2] == wire.INQ_LOCKSPACE
    assert c.at_eof()
    c.close()
    # A bare half-close: nothing sent, nothing answered, closed.
    c = Raw(path)
    c.sock.shutdown(socket.SHUT_WR)
    assert c.at_eof()
    c.close()
    assert "Traceback" not in d.log_text()
    version_ok(path)


def test_malformed_input_closes_the_connection_and_the_daemon_serves_on(daemons: DaemonFactory,
                                                                         tmp_path: Path) -> None:
    d, sdir = compat_daemon(daemons, tmp_path)
    path = sock_path(sdir)
    garbage = [
        os.urandom(32),  # not a header
        struct.pack("<8I", wire.MAGIC, 1, 200, 0, 32, 0, 0, 0),  # no such command
        struct.pack("<8I", wire.MAGIC, 0x10001, wire.STATUS, 0, 32, 0, 0, 0),  # version with upper bits
        # ACQUIRE of 9 resources (at most 8), on a connection that did not register
        struct.pack("<8I", wire.MAGIC, 1, wire.ACQUIRE, 0, 32, 0, 9, wire.PID_SELF) + bytes(200),
        # a resource with 0 disks
        Header(cmd=wire.READ_RESOURCE).encode() + bytes(wire.RESOURCE_SIZE),
    ]
    for data in garbage:
        c = Raw(path)
        c.send(data)
        words, _ = c.reply()
        assert result_of(words) < 0, data[:32].hex()
        assert c.at_eof(), data[:32].hex()
        c.close()
    assert "Traceback" not in d.log_text()
    version_ok(path)


def test_listener_rests_at_the_descriptor_limit(daemons: DaemonFactory, tmp_path: Path) -> None:
    d, sdir = compat_daemon(daemons, tmp_path)
    path = sock_path(sdir)
    soft = _soft_nofile(d.pid)
    fds = len(os.listdir(f"/proc/{d.pid}/fd"))
    subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={fds + 8}:"], check=True)  # soft limit only
    flood = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(40)]
    try:
        for s in flood:
            s.setblocking(False)
            with contextlib.suppress(OSError):  # EAGAIN once the backlog is full
                s.connect(str(path))
        wait_log(d, "accept: Too many open files; not accepting for")
    finally:
        for s in flood:
            s.close()
        subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={soft}:"], check=True)
    # Accepting again once descriptors are free (the flood's backlog drains first).
    deadline = time.monotonic() + WAIT
    while True:
        try:
            version_ok(path)
            break
        except (AssertionError, EOFError, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert d.log_text().count("accept: Too many open files") <= 2  # one line per LOG_EVERY, not per loop
