"""The sanlock-protocol listener: its own thread, one selector, non-blocking sockets.

Connection model (sanlock 3.8): one command per connection, closed after the reply — except a
registered connection (REGISTER has no reply and makes the connection the client: closing it releases
the client's leases), the connections that RESTRICT or VERSION leave open, and REG_EVENT's listeners,
to which the lockspace's events are pushed (any input from a listener ends it). The stream is
reassembled here (libsanlock sends a request in several writes); ``wire`` says how many bytes each
request carries, so a request is never cut or merged with the next.

Malformed input: a reply with the error code, then the connection is closed — except on a registered
connection, whose buffered bytes are dropped while the connection (and its leases) stay.

What a client can cost is bounded as on the JSON socket, by the same rules (connlimits.py): at most
``max_connections`` connections (one more gets a header with -EAGAIN and is closed), the listener rests
after EMFILE/ENFILE, a connection with more than ``max_output_bytes`` unsent is dropped, and at most
MAX_BUFFERED bytes of unread requests are taken in. Half-close: an unregistered connection shut for
writing still gets the reply to the request it sent (a request cut short by the EOF gets -EINVAL); on a
registered connection EOF is the client's end, as in sanlock: its leases are released.

Who may connect: the socket is bound like the JSON socket (mode 0660, group ``socket_group``, else
0600). Each caller's credentials (SO_PEERCRED, SO_PEERGROUPS, administrator or not: authz.caller_cred)
are taken at accept; ``Commands.handle`` applies the JSON socket's rules (authz.py) to every command.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import selectors
import socket
import threading
from dataclasses import dataclass, field

from ...errors import InputError, LockError
from .. import authz
from ..clients import Client, peer_cred
from ..connlimits import Gate, done_after_eof, who
from ..engine import Daemon
from ..log import get_logger
from ..server import bind_socket
from . import wire
from .commands import KEEP_OPEN, Commands
from .common import Caller

log = get_logger("sanlock")

RECV_SIZE = 65536
CONN_ID_BASE = 1 << 40  # registrations share the daemon's client registry with the JSON socket's ids
MAX_BUFFERED = 1 << 20  # bytes of requests a connection may have buffered before it is read no further
EVENT_POLL = 0.25  # seconds between looks for new lockspace events while anyone listens


@dataclass(eq=False)
class Conn:
    id: int
    sock: socket.socket
    caller: Caller
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    header: wire.Header | None = None
    busy: bool = False
    closing: bool = False
    closed: bool = False
    eof: bool = False  # the peer shut its side for writing: answer what it sent, then close
    events: int = 0

    @property
    def who(self) -> str:
        return who(self.caller.cred.pid, self.caller.cred.uid)


class _Marker:
    pass


class SanlockServer:
    def __init__(self, daemon: Daemon, listener: socket.socket, path: str) -> None:
        self.daemon = daemon
        self.commands = Commands(daemon)
        self.listener = listener
        self.path = path
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self._next_id = CONN_ID_BASE
        self._posted: collections.deque[tuple[Conn, int, bytes]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = False
        self._loop_ident: int | None = None
        self._listen_key = _Marker()
        self._wake_key = _Marker()
        self._thread = threading.Thread(target=self.serve_forever, name="sanlock-socket", daemon=True)
        self.event_conns: dict[str, list[Conn]] = {}  # REG_EVENT connections per lockspace
        self._event_seen: dict[str, list[dict[str, object]]] = {}  # the lockspace's events already pushed
        self.commands.spaces.event_count = lambda name: len(self.event_conns.get(name, ()))
        self.sel.register(listener, selectors.EVENT_READ, self._listen_key)
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._wake_key)
        self.gate = Gate(self.sel, listener, self._listen_key, daemon.config.max_connections,
                         daemon.config.max_output_bytes, log)
        self.admin_gid = authz.admin_gid(daemon.config)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def serve_forever(self) -> None:
        self._loop_ident = threading.get_ident()
        try:
            while not self._stop:
                # Events arrive in the lockspaces' memory; while anyone listens, look 4 times a second.
                timeout = self.gate.timeout(EVENT_POLL if self.event_conns else None)
                for key, mask in self.sel.select(timeout):
                    data = key.data
                    if data is self._listen_key:
                        self._accept()
                    elif data is self._wake_key:
                        self._drain_posted()
                    elif isinstance(data, Conn):
                        self._serve(data, mask)
                    elif isinstance(data, Client):
                        self._pidfd_ready(data)
                if self.event_conns:
                    self._push_events()
        except Exception:  # a bug in the loop: log it; the JSON socket and the leases carry on
            log.exception("sanlock socket loop failed; the sanlock socket stops serving")
        finally:
            self._close_all()

    # ------------------------------------------------------------------ connections

    def _serve(self, conn: Conn, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(conn)
            if mask & selectors.EVENT_READ and not conn.closed:
                self._read(conn)
            self._process(conn)
        except Exception:  # a bug: this connection goes, the socket keeps serving the others
            log.exception("sanlock socket: connection of %s failed; closing it", conn.who)
            self._close(conn)

    def _accept(self) -> None:
        while (sock := self.gate.accept()) is not None:
            try:
                cred = authz.caller_cred(sock, peer_cred(sock), self.admin_gid)
            except OSError:
                sock.close()
                continue
            # No request has been read yet: the refusal is a bare reply header with -EAGAIN.
            if not self.gate.admit(sock, len(self.conns), who(cred.pid, cred.uid),
                                   wire.reply(wire.Header(), -errno.EAGAIN)):
                continue
            conn = Conn(self._next_id, sock, Caller(self._next_id, cred, self._watch))
            self._next_id += 1
            self.conns[conn.id] = conn
            self._set_events(conn)

    def _set_events(self, conn: Conn) -> None:
        if conn.closed:
            return
        want = 0
        if not conn.closing and not conn.eof and len(conn.inbuf) < MAX_BUFFERED:
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
            if conn.caller.client is not None or conn.caller.event_lockspace is not None:
                self._close(conn)  # a registration's (or listener's) end: its leases go, as in sanlock
            else:
                conn.eof = True  # half-closed: the request it sent still gets its reply
            return
        conn.inbuf += data

    def _process(self, conn: Conn) -> None:
        """Frame and start every complete request while none is in flight on this connection."""
        if conn.caller.event_lockspace is not None and conn.inbuf and not conn.busy:
            self._close(conn)  # the end marker (END_EVENT) or anything else: the listener is done
            return
        while not conn.busy and not conn.closing and not conn.closed:
            req = self._next_request(conn)
            if req is None:
                break
            conn.busy = True
            self.commands.handle(conn.caller, req, functools.partial(self._post, conn, req.cmd))
        if conn.closed:
            return
        if conn.eof and not conn.busy and not conn.closing and conn.inbuf:
            self._malformed(conn, wire.WireError(-errno.EINVAL, f"a request cut short by EOF ({len(conn.inbuf)} "
                                                                "bytes): send it whole"))
            return
        if done_after_eof(conn.eof, conn.busy, len(conn.outbuf), bool(conn.inbuf)):
            self._close(conn)
            return
        self._set_events(conn)

    def _next_request(self, conn: Conn) -> wire.Request | None:
        try:
            if conn.header is None:
                if len(conn.inbuf) < wire.HEADER_SIZE:
                    return None
                conn.header = wire.decode_header(conn.inbuf)
            h = conn.header
            with memoryview(conn.inbuf) as whole, whole[wire.HEADER_SIZE :] as body:
                need = wire.payload_needed(h, body)  # the views are released before inbuf changes
            if len(conn.inbuf) - wire.HEADER_SIZE < need:
                return None
            payload = bytes(conn.inbuf[wire.HEADER_SIZE : wire.HEADER_SIZE + need])
            del conn.inbuf[: wire.HEADER_SIZE + need]
            conn.header = None
            return wire.decode_request(h, payload)
        except wire.WireError as exc:
            self._malformed(conn, exc)
            return None

    def _malformed(self, conn: Conn, exc: wire.WireError) -> None:
        h = conn.header
        if h is None and len(conn.inbuf) >= wire.HEADER_SIZE:
            # Echo what was sent, so the client can match the reply; the magic is always ours.
            h = wire.Header(*wire.decode_raw_header(conn.inbuf))
        conn.header = None
        conn.inbuf.clear()
        registered = conn.caller.client is not None
        log.info("sanlock socket: %s sent a malformed request (%s); %s", conn.who, exc.message,
                 "dropped its buffered input" if registered else "closing the connection")
        self._deliver(conn, wire.reply(h or wire.Header(), exc.code), keep=registered)

    def _post(self, conn: Conn, cmd: int, data: bytes) -> None:
        if threading.get_ident() == self._loop_ident:
            self._finish(conn, cmd, data)
        else:
            self._posted.append((conn, cmd, data))
            self._wake()

    def _drain_posted(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        while self._posted:
            conn, cmd, data = self._posted.popleft()
            self._finish(conn, cmd, data)
            self._process(conn)

    def _finish(self, conn: Conn, cmd: int, data: bytes) -> None:
        conn.busy = False
        name = conn.caller.event_lockspace
        if name is not None and not conn.closed and conn not in self.event_conns.get(name, []):
            self._listen(conn, name)
        keep = conn.caller.client is not None or cmd in KEEP_OPEN or name is not None
        self._deliver(conn, data, keep)

    def _deliver(self, conn: Conn, data: bytes, keep: bool) -> None:
        if conn.closed:
            return
        if not keep:
            conn.closing = True  # one command per connection: close once the reply is out
        conn.outbuf += data
        self._flush(conn)
        if not conn.closed and self.gate.output_over(len(conn.outbuf), conn.who):
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
        if not conn.outbuf and (conn.closing or done_after_eof(conn.eof, conn.busy, 0, bool(conn.inbuf))):
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
        name = conn.caller.event_lockspace
        if name is not None and conn in self.event_conns.get(name, []):
            self.event_conns[name].remove(conn)
            if not self.event_conns[name]:
                del self.event_conns[name]
                self._event_seen.pop(name, None)
        if conn.caller.client is not None:
            self.daemon.connection_closed(conn.id)  # a registration is a connection: its leases go

    # ------------------------------------------------------------------ events

    def _listen(self, conn: Conn, name: str) -> None:
        """REG_EVENT succeeded: push this lockspace's events from now on to ``conn``."""
        if name not in self._event_seen:
            try:
                self._event_seen[name] = list(self.daemon.lockspace(name).events)
            except LockError:
                self._event_seen[name] = []
        self.event_conns.setdefault(name, []).append(conn)

    def _push_events(self) -> None:
        for name, conns in list(self.event_conns.items()):
            try:
                space = self.daemon.lockspace(name)
            except LockError:  # the lockspace is gone: so are its listeners
                for conn in list(conns):
                    self._close(conn)
                continue
            snapshot = list(space.events)
            # The previous snapshot keeps its events alive, so identity tells new from old.
            seen = {id(e) for e in self._event_seen.get(name, [])}
            self._event_seen[name] = snapshot
            for ev in snapshot:
                if id(ev) in seen:
                    continue
                sender = _num(ev["host_id"])
                info = space.table.info(sender) if space.table is not None else None
                he = wire.WireHostEvent(space.host_id, _num(ev["generation"]), _num(ev["event"]), _num(ev["data"]))
                msg = wire.encode_event(he, sender, info.generation if info is not None else 0)
                for conn in list(conns):
                    if not conn.closed:  # a listener that does not read is dropped (output bound)
                        self._deliver(conn, msg, keep=True)

    # ------------------------------------------------------------------ registered processes

    def _watch(self, client: Client) -> None:
        """Called on the loop thread by REGISTER: see the process exit even if a child holds the socket."""
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
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _num(value: object) -> int:
    return value if isinstance(value, int) else 0


def refuse_if_served(path: str, own_socket: str) -> None:
    """Never take over a live socket: sanlock's own daemon (or another lockengined) may serve ``path``.
    A socket file nobody listens on is a leftover and may be replaced."""
    if os.path.abspath(path) == os.path.abspath(own_socket):
        raise InputError("sanlock_socket", path, "give a path other than the daemon's own socket "
                                                 "(e.g. /run/sanlock/sanlock.sock)")
    if not os.path.lexists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except OSError:
        return  # nobody listens: a leftover
    finally:
        probe.close()
    raise LockError("EBUSY", f"sanlock_socket {path}: another daemon serves it (sanlock itself?); stop it or "
                             "choose another path")


def start_sanlock_server(daemon: Daemon, path: str, group: str) -> SanlockServer:
    """Bind ``path`` like the JSON socket (0660 group ``group``, else 0600) and serve it on a thread."""
    refuse_if_served(path, daemon.config.socket_path)
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    listener, note, restricted = bind_socket(path, group)
    (log.warning if restricted else log.info)("sanlock protocol: %s", note)
    server = SanlockServer(daemon, listener, path)
    server.start()
    return server
