"""Registered client processes: who they are (SO_PEERCRED), how to signal them, how we see them exit.

A process registers on its own connection; the daemon learns its pid from the kernel, never from the
message. Its exit is seen two ways: the connection closes (EOF), or its pidfd becomes readable (the
process ended even though a child inherited the socket). Signals go through the pidfd, so a recycled
pid number can never receive a signal meant for a process that is gone.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from ..errors import LockError
from .proc import SYSTEM_PROCESSES, ProcessControl

_PEERCRED = struct.Struct("3i")


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()  # supplementary groups (SO_PEERGROUPS), see authz.py
    admin: bool = False  # root or the admin group (authz.py decides)


def peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def process_name(pid: int) -> str:
    return SYSTEM_PROCESSES.name(pid)


def open_pidfd(pid: int) -> int | None:
    return SYSTEM_PROCESSES.open(pid)


@dataclass(eq=False)
class Client:
    """One registered process and its escalation bookkeeping."""

    pid: int
    uid: int
    name: str
    conn_id: int
    pidfd: int | None
    registered: float = field(default_factory=time.monotonic)
    killpath: list[str] | None = None
    gone: bool = False
    kill_count: int = 0
    last_kill: float = 0.0
    killpath_sent: bool = False
    # sanlock's RESTRICT_SIGKILL / RESTRICT_SIGTERM: the other signal is sent instead (escalation.restricted).
    no_sigkill: bool = False
    no_sigterm: bool = False
    # The registered pid exited but its connection is open: a child that inherited the connection
    # may still use the leases, so they are kept (and the holder still counts) until it closes.
    pid_exited: bool = False
    processes: ProcessControl = field(default=SYSTEM_PROCESSES, repr=False)
    gid: int = -1  # with groups: the credentials its killpath runs with
    groups: tuple[int, ...] = ()
    # Guards pidfd: it is closed on exit while another thread may be signalling through it.
    _fd_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def signal(self, sig: int) -> bool:
        """Send ``sig`` (0 = probe); False when the process is already gone."""
        with self._fd_lock:
            if self.gone:
                return False
            if self.pid_exited:
                return False
            return self.processes.send_signal(self.pid, self.pidfd, sig)

    def alive(self) -> bool:
        return self.signal(0)

    def holding(self) -> bool:
        """Its leases may still be in use: it is registered (connection open), whether or not the
        registered pid itself still runs (a child may have inherited the connection, as in sanlock)."""
        return not self.gone

    def close_pidfd(self) -> None:
        with self._fd_lock:
            if self.pidfd is not None:
                self.processes.close(self.pidfd)
                self.pidfd = None

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "uid": self.uid,
                "killpath": self.killpath[0] if self.killpath else None}


class ClientRegistry:
    """All registered clients, by pid and by connection."""

    def __init__(self, processes: ProcessControl = SYSTEM_PROCESSES) -> None:
        self.processes = processes
        self._by_pid: dict[int, Client] = {}
        self._by_conn: dict[int, Client] = {}
        self._lock = threading.Lock()

    def register(self, cred: PeerCred, conn_id: int, name: str | None) -> Client:
        with self._lock:
            if conn_id in self._by_conn:
                raise LockError("EEXIST", f"this connection already registered pid {self._by_conn[conn_id].pid}")
            old = self._by_pid.get(cred.pid)
            if old is not None and not old.gone:
                raise LockError("EEXIST", f"pid {cred.pid} is already registered on another connection")
            pc = self.processes
            client = Client(cred.pid, cred.uid, name or pc.name(cred.pid), conn_id, pc.open(cred.pid), processes=pc,
                            gid=cred.gid, groups=cred.groups)
            self._by_pid[cred.pid] = client
            self._by_conn[conn_id] = client
            return client

    def get(self, pid: int) -> Client:
        with self._lock:
            client = self._by_pid.get(pid)
        if client is None or client.gone:
            raise LockError("ESRCH", f"pid {pid} is not registered with this daemon (it must register first)")
        return client

    def by_conn(self, conn_id: int) -> Client | None:
        with self._lock:
            return self._by_conn.get(conn_id)

    def remove(self, client: Client) -> bool:
        """Mark gone and forget; False when it was already removed (EOF and pidfd both fire)."""
        with self._lock:
            if client.gone:
                return False
            with client._fd_lock:
                client.gone = True
            if self._by_pid.get(client.pid) is client:
                del self._by_pid[client.pid]
            if self._by_conn.get(client.conn_id) is client:
                del self._by_conn[client.conn_id]
        return True

    def all(self) -> list[Client]:
        with self._lock:
            return list(self._by_pid.values())
