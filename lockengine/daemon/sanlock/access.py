"""Who may do what on the sanlock socket: the JSON socket's rules (daemon/authz.py, docs/daemon.md "Who may
do what") applied to sanlock's commands, from the caller's kernel credentials taken at accept.

* administrators only: ADD_LOCKSPACE, REM_LOCKSPACE, SET_EVENT, EXAMINE_*, SET_CONFIG, SHUTDOWN(_WAIT);
* a command naming another registered process by pid (ACQUIRE, RELEASE, INQUIRE, CONVERT, KILLPATH,
  SET_LVB/GET_LVB of a held lease): only a process of the caller's own uid, unless an administrator;
* ACQUIRE_ORPHAN(_ONLY), REL_ORPHAN: only an orphan left by a process of the acting client's uid, unless
  an administrator;
* REQUEST: only a lease held on this host by a process of the caller's uid, unless an administrator;
* every path the daemon would open for the caller (ADD_LOCKSPACE, ACQUIRE, REQUEST, and the disk
  commands: WRITE_/READ_LOCKSPACE, WRITE_/READ_RESOURCE, READ_RESOURCE_OWNERS, ALIGN) only if the caller
  itself may open it for reading and writing (paths.py; ``path_prefixes`` for non-administrators).

Path checks fork a child, so they run where the command runs on the worker pool, never on the listener.
"""

from __future__ import annotations

from ..authz import Refused, check_command, check_request, check_target
from ..clients import Client
from ..commands import authorize_path
from ..engine import CallContext, Daemon
from . import wire
from .common import Caller

# sanlock's commands that are the JSON socket's administrator commands (authz.ADMIN_COMMANDS).
ADMIN: dict[int, str] = {
    wire.ADD_LOCKSPACE: "add_lockspace", wire.REM_LOCKSPACE: "rem_lockspace", wire.SET_EVENT: "set_event",
    wire.EXAMINE_LOCKSPACE: "examine", wire.EXAMINE_RESOURCE: "examine", wire.SET_CONFIG: "set_config",
    wire.SHUTDOWN: "shutdown", wire.SHUTDOWN_WAIT: "shutdown",
}


def command(d: Daemon, caller: Caller, cmd: int) -> None:
    """EPERM for an administrator's command from anyone else."""
    name = ADMIN.get(cmd)
    if name is not None:
        check_command(caller.cred, name, d.config)


def target(d: Daemon, caller: Caller, client: Client) -> None:
    """EPERM when the caller names a registered process of another uid (administrators may)."""
    check_target(caller.cred, client, d.config)


def path(d: Daemon, caller: Caller, disk_path: str, field: str) -> None:
    """EACCES/EINVAL unless the caller may open ``disk_path`` for reading and writing itself."""
    authorize_path(d, CallContext(caller.conn_id, caller.cred, caller.watch), disk_path, field)


def request(d: Daemon, caller: Caller, lockspace: str, name: str) -> None:
    """EPERM unless the lease is held here by a process of the caller's uid (administrators: any lease)."""
    holders = [h.client for h in d.resources.all() if h.key == (lockspace, name)]
    check_request(caller.cred, f"{lockspace}:{name}", holders, d.config)


def orphans(d: Daemon, caller: Caller, client: Client, lockspace: str, name: str, field: str) -> None:
    """EPERM when an orphan of ``lockspace`` named ``name`` ("" = any) was left by a process of another uid
    than ``client``'s (the process that adopts or releases it); administrators may act on any."""
    if caller.cred.admin:
        return
    for h in d.resources.orphans(lockspace):
        if name in ("", h.spec.name) and h.orphan_uid != client.uid:
            raise Refused("EPERM", f"{h.label} is an orphan left by uid {h.orphan_uid}; only a process of that uid "
                                   "or an administrator may adopt or release it", field)
