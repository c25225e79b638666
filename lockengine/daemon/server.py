"""The unix-socket server: one thread, one selector, non-blocking sockets.

Per connection, requests are answered strictly in order: while one is being handled the next lines
wait in the input buffer. Replies from worker threads are queued and the loop is woken through a
socketpair. A line longer than MAX_REQUEST gets an error reply and the connection is closed (there
is no way to find the next request boundary cheaply); bad JSON on a line gets an error reply and the
connection stays usable. Registered clients' pidfds are watched by the same selector, so a client's
exit is seen at once even when a child inherited its socket.

What one client can cost is bounded: at most ``max_connections`` connections (one more gets an
EAGAIN line and is closed), at most MAX_REQUEST + RECV_SIZE bytes of unread requests, and a
connection whose unsent replies pass ``max_output_bytes`` is dropped (one log line): a client that
does not read its replies cannot make the daemon hold more than that for it. When
accept fails for lack of descriptors (EMFILE/ENFILE) the listener is taken out of the selector for
ACCEPT_PAUSE seconds (or until a connection closes) instead of spinning on it. A connection shut
for writing (SHUT_WR) still gets the replies to the requests it sent. These bounds are connlimits.py's,
shared with the sanlock-protocol socket.
"""

from __future__ import annotations

import collections
import contextlib
import grp
import os
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import authz
from .authz import Refused
from .clients import Client, PeerCred, peer_cred
from .connlimits import Gate, done_after_eof, who
from .engine import CallContext, Daemon
from .log import get_logger
from .protocol import (
    MAX_REQUEST,
    ProtocolError,
    decode_request,
    encode_error,
    encode_reply,
    error_dict,
)

log = get_logger("server")

RECV_SIZE = 65536
TURN = 32  # requests of one connection handled before the others get their turn


@dataclass(eq=False)
class Conn:
    id: int
    sock: socket.socket
    cred: PeerCred
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    busy: bool = False
    closing: bool = False
    closed: bool = False
    eof: bool = False  # the peer shut its side for writing: answer what it sent, then close
    events: int = 0
    request_id: Any = None


class _Listener:
    pass


class _Waker:
    pass


def bind_socket(path: str, group: str) -> tuple[socket.socket, str, bool]:
    """Bind the listening socket: 0660 group ``group`` when it exists, else 0600 (root only).

    Returns the socket, a line for the log, and whether it fell back to root only."""
    if os.path.lexists(path):
        os.unlink(path)  # the run-dir lock proves no other daemon owns it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    old = os.umask(0o177)  # never visible with wider permissions, even for an instant
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        os.chmod(path, 0o600)
        note = f"socket {path}: group {group!r} does not exist; mode 0600 (root only)"
        restricted = True
    else:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
        note = f"socket {path}: mode 0660 group {group}"
        restricted = False
    sock.listen(128)
    return sock, note, restricted


class Server:
    def __init__(self, daemon: Daemon, listener: socket.socket) -> None:
        self.daemon = daemon
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self._next_id = 1
        self._posted: collections.deque[tuple[Conn, bytes]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = False
        self._loop_ident: int | None = None
        self._waker = _Waker()
        self._listen_key = _Listener()
        self.sel.register(listener, selectors.EVENT_READ, self._listen_key)
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._waker)
        self.max_connections = daemon.config.max_connections
        self.gate = Gate(self.sel, listener, self._listen_key, self.max_connections, daemon.config.max_output_bytes, log)
        self.admin_gid = authz.admin_gid(daemon.config)
        self._more: collections.deque[Conn] = collections.deque()  # connections whose turn ended with lines left

    # ------------------------------------------------------------------ thread-safe entry points

    def stop(self) -> None:
        self._stop = True
        self._wake()

    def _wake(self) -> None:
        # A full socketpair means a wake-up is already pending.
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")

    def _post(self, conn: Conn, data: bytes) -> None:
        if threading.get_ident() == self._loop_ident:
            self._deliver(conn, data)
        else:
            self._posted.append((conn, data))
            self._wake()

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        self._loop_ident = threading.get_ident()
        try:
            while not self._stop:
                timeout = self.gate.timeout(None)
                if self._more:
                    timeout = 0.0
                    for conn in [self._more.popleft() for _ in range(len(self._more))]:
                        self._process(conn)
                for key, mask in self.sel.select(timeout):
                    data = key.data
                    if data is self._listen_key:
                        self._accept()
                    elif data is self._waker:
                        self._drain_wake()
                    elif isinstance(data, Conn):
                        if mask & selectors.EVENT_WRITE:
                            self._flush(data)
                        if mask & selectors.EVENT_READ and not data.closed:
                            self._read(data)
                        self._process(data)
                    elif isinstance(data, Client):
                        self._pidfd_ready(data)
        finally:
            self._close_all()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._posted:
            conn, data = self._posted.popleft()
            self._deliver(conn, data)
            self._process(conn)

    def _accept(self) -> None:
        while (sock := self.gate.accept()) is not None:
            try:
                cred = authz.caller_cred(sock, peer_cred(sock), self.admin_gid)
            except OSError:
                sock.close()
                continue
            if not self.gate.admit(sock, len(self.conns), who(cred.pid, cred.uid), encode_error(None, {
                    "name": "EAGAIN", "code": -11, "message": (
                        f"the daemon serves at most {self.max_connections} connections at once; try again")})):
                continue
            conn = Conn(self._next_id, sock, cred)
            self._next_id += 1
            self.conns[conn.id] = conn
            self._set_events(conn)

    def _set_events(self, conn: Conn) -> None:
        if conn.closed:
            return
        want = 0
        # Stop reading while a full request is already buffered: it waits for the one in flight or
        # for its connection's next turn.
        if not conn.closing and not conn.eof and len(conn.inbuf) <= MAX_REQUEST:
            want |= selectors.EVENT_READ
        if conn.outbuf:
            want |= selectors.EVENT_WRITE
        if want == conn.events:
            return
        if conn.events == 0:
            self.sel.register(conn.sock, want, conn)
        elif want == 0:
            self.sel.unregister(conn.sock)
        else:
            self.sel.modify(conn.sock, want, conn)
        conn.events = want

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            # Half-closed (SHUT_WR) or gone: either way no more requests; answer those received.
            conn.eof = True
            if conn.inbuf.strip() and not conn.inbuf.endswith(b"\n"):
                conn.inbuf += b"\n"
            return
        conn.inbuf += data

    def _process(self, conn: Conn) -> None:
        # Inline commands reply from inside this loop (_post -> _deliver), so it just goes on with
        # the next line: no recursion however many requests a client pipelines.
        turn = 0
        while not conn.busy and not conn.closing and not conn.closed:
            turn += 1
            if turn > TURN:  # a client pipelining thousands of requests must not starve the others
                if b"\n" in conn.inbuf and conn not in self._more:
                    self._more.append(conn)
                break
            nl = conn.inbuf.find(b"\n")
            if nl < 0 or nl > MAX_REQUEST:
                if len(conn.inbuf) > MAX_REQUEST:
                    log.warning("pid %d sent a request over %d bytes; closing its connection", conn.cred.pid,
                                MAX_REQUEST)
                    conn.closing = True
                    conn.inbuf.clear()
                    self._deliver(conn, encode_error(None, ProtocolError(
                        f"request longer than {MAX_REQUEST} bytes; the connection is closed").as_dict()))
                break
            line = bytes(conn.inbuf[:nl]).strip()
            del conn.inbuf[: nl + 1]
            if not line:
                continue
            try:
                req = decode_request(line)
            except ProtocolError as exc:
                self._deliver(conn, encode_error(exc.request_id, exc.as_dict()))
                continue
            try:
                authz.check_command(conn.cred, req.cmd, self.daemon.config)
            except Refused as exc:
                self._deliver(conn, encode_error(req.id, exc.as_dict()))
                continue
            conn.busy = True
            conn.request_id = req.id
            ctx = CallContext(conn.id, conn.cred, self._watch)
            self.daemon.dispatch(ctx, req, self._replier(conn, req.id))
        if conn.closed:
            return
        if done_after_eof(conn.eof, conn.busy, len(conn.outbuf), b"\n" in conn.inbuf):
            self._close(conn)
            return
        self._set_events(conn)

    def _replier(self, conn: Conn, request_id: Any) -> Callable[[dict[str, Any] | BaseException], None]:
        def reply(result: dict[str, Any] | BaseException) -> None:
            if isinstance(result, BaseException):
                data = encode_error(request_id, error_dict(result))
            else:
                data = encode_reply(request_id, result)
            self._post(conn, data)

        return reply

    def _deliver(self, conn: Conn, data: bytes) -> None:
        """Queue a reply (loop thread only); the caller resumes reading that connection's requests."""
        if conn.closed:
            return
        conn.busy = False
        conn.outbuf += data
        self._flush(conn)
        if not conn.closed and self.gate.output_over(len(conn.outbuf), who(conn.cred.pid, conn.cred.uid)):
            self._close(conn)

    def _flush(self, conn: Conn) -> None:
        while conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self._close(conn)
                return
            del conn.outbuf[:sent]
        if not conn.outbuf and (conn.closing or done_after_eof(conn.eof, conn.busy, 0, b"\n" in conn.inbuf)):
            self._close(conn)
            return
        self._set_events(conn)

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.events:
            self.sel.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()
        self.conns.pop(conn.id, None)
        self.gate.resume()  # a descriptor is free again
        self.daemon.connection_closed(conn.id)

    # ------------------------------------------------------------------ pidfds

    def _watch(self, client: Client) -> None:
        """Called on the loop thread by register: watch the process, not only its socket."""
        if client.pidfd is not None:
            self.sel.register(client.pidfd, selectors.EVENT_READ, client)

    def _pidfd_ready(self, client: Client) -> None:
        if client.pidfd is not None:
            self.sel.unregister(client.pidfd)
        client.close_pidfd()
        self.daemon.client_gone(client, "process exited")

    def _close_all(self) -> None:
        self.gate.close()
        for conn in list(self.conns.values()):
            self._close(conn)
        for key in list(self.sel.get_map().values()):
            if isinstance(key.data, Client):
                key.data.close_pidfd()
        self.sel.close()
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
