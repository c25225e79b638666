"""Who may do what on the daemon's socket: every rule in one place (docs/daemon.md, "Who may do what").

The socket's group decides who may connect; this module decides what a connected peer may do, from
its kernel credentials (SO_PEERCRED and SO_PEERGROUPS, taken when it connected), never from the
message:

* an administrator — uid 0, or a member of the configured ``admin_group`` — may do everything;
* any other client acts only on its own registration and on registered processes of its own uid,
  names only paths it could open itself for reading and writing (paths.py), and only under
  ``path_prefixes`` when they are configured.

Refusals are ``EPERM`` (the operation) or ``EACCES`` (a path) with the field they concern.
"""

from __future__ import annotations

import grp
import socket
import struct
from collections.abc import Iterable

from ..config import Config
from ..errors import LockError
from .clients import Client, PeerCred
from .log import get_logger

log = get_logger("authz")

# Commands that change the host as a whole, or act on what other users hold.
ADMIN_COMMANDS = frozenset({"add_lockspace", "rem_lockspace", "shutdown", "set_event", "examine", "set_config"})

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux ≥ 4.13; 59 on every common architecture
_GID = struct.Struct("I")
MAX_GROUPS = 65536


class Refused(LockError):
    """An operation or argument this caller may not use; names the field when there is one."""

    def __init__(self, name: str, message: str, field: str | None = None) -> None:
        super().__init__(name, message)
        self.field = field

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        if self.field:
            out["field"] = self.field
        return out


def _proc_groups(pid: int) -> tuple[int, ...]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return ()


def peer_groups(sock: socket.socket, pid: int) -> tuple[int, ...]:
    """The peer's supplementary groups when it connected (SO_PEERGROUPS; /proc as a fallback)."""
    size = 64 * _GID.size
    while size <= MAX_GROUPS * _GID.size:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, size)
        except OSError as exc:
            if exc.errno == 34:  # ERANGE: more groups than the buffer holds
                size *= 4
                continue
            return _proc_groups(pid)
        n = len(raw) // _GID.size
        return tuple(_GID.unpack_from(raw, i * _GID.size)[0] for i in range(n))
    return _proc_groups(pid)


def admin_gid(config: Config) -> int | None:
    """The admin group's gid, resolved once at start; None when none is configured or it is missing."""
    if not config.admin_group:
        return None
    try:
        return grp.getgrnam(config.admin_group).gr_gid
    except KeyError:
        log.warning("admin_group %r does not exist: only root is an administrator", config.admin_group)
        return None


def is_admin(uid: int, gid: int, groups: Iterable[int], admin: int | None) -> bool:
    return uid == 0 or (admin is not None and (gid == admin or admin in groups))


def caller_cred(sock: socket.socket, cred: PeerCred, admin: int | None) -> PeerCred:
    """``cred`` completed with the peer's groups and whether it is an administrator."""
    groups = peer_groups(sock, cred.pid)
    return PeerCred(cred.pid, cred.uid, cred.gid, groups, is_admin(cred.uid, cred.gid, groups, admin))


def _admins(config: Config) -> str:
    return f"root or members of group {config.admin_group}" if config.admin_group else "root"


def check_command(cred: PeerCred, cmd: str, config: Config) -> None:
    if cmd in ADMIN_COMMANDS and not cred.admin:
        raise Refused("EPERM", f"{cmd} is for administrators ({_admins(config)}); you are uid {cred.uid}")


def check_target(cred: PeerCred, client: Client, config: Config, field: str = "pid") -> None:
    """A command naming another registered process: only one of the caller's own uid."""
    if cred.admin or client.uid == cred.uid:
        return
    raise Refused("EPERM", f"pid {client.pid} belongs to uid {client.uid}; you (uid {cred.uid}) may act only on "
                           f"processes of your own uid (administrators: {_admins(config)})", field)


def check_request(cred: PeerCred, label: str, local_holders: list[Client], config: Config) -> None:
    """A release request (graceful or force) stops whoever holds the lease.

    An administrator may ask any holder. Anyone else only a holder on this host of their own uid:
    a lease held on another host belongs to a user this daemon cannot know."""
    if cred.admin:
        return
    if not local_holders:
        raise Refused("EPERM", f"{label} is not held on this host by a process of your uid {cred.uid}: a request "
                               f"against a lease held elsewhere is for administrators ({_admins(config)})",
                      "resource")
    for holder in local_holders:
        check_target(cred, holder, config, "resource")
