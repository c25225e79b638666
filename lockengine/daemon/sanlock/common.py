"""What every sanlock-protocol handler shares: the caller, result codes, argument shapes."""

from __future__ import annotations

import concurrent.futures
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from ...errors import Area, InputError, LockError, storage_error
from ...strings import MAX_HOST_ID, Disk, LockspaceSpec, ResourceSpec, check_name, check_path
from ..clients import Client, PeerCred
from . import wire
from .wire import Request, WireError, WireLockspace, WireResource

EOPNOTSUPP = -errno.EOPNOTSUPP
SANLK_ERROR = -201

Outcome = Union[bytes, "concurrent.futures.Future[bytes]"]


@dataclass(eq=False)
class Caller:
    """One connection of the sanlock socket: who is on it and what it registered or restricted."""

    conn_id: int
    cred: PeerCred
    watch: Callable[[Client], None]
    client: Client | None = None
    restrict: int = 0
    event_lockspace: str | None = None  # set by REG_EVENT: events of this lockspace are pushed here


def areas(req: Request | None) -> list[Area]:
    """The lease areas ``req`` names, so a storage failure inside one is named after its record."""
    if req is None:
        return []
    out = [Area(d.path, d.offset, "resource") for r in req.resources for d in r.disks]
    if req.lockspace is not None and req.lockspace.disk.path:
        out.append(Area(req.lockspace.disk.path, req.lockspace.disk.offset, "lockspace"))
    return out


def reported(exc: BaseException, req: Request | None = None) -> BaseException:
    """The failure as it is answered: an OSError becomes errors.storage_error's LockError (the JSON
    socket's one mapping: LEADER_/DBLOCK_ READ/WRITE inside ``req``'s areas, EROFS, else the errno)."""
    if isinstance(exc, OSError):
        return storage_error(exc, areas(req))
    return exc


def result_code(exc: BaseException, req: Request | None = None) -> int:
    exc = reported(exc, req)
    if isinstance(exc, (WireError, LockError)):
        return exc.code
    if isinstance(exc, InputError):
        return -errno.EINVAL
    return SANLK_ERROR


def unsupported(what: str) -> WireError:
    return WireError(EOPNOTSUPP, f"{what} is not served by lockengine's sanlock socket yet (EOPNOTSUPP)")


# --------------------------------------------------------------------------- argument shapes


def lockspace_spec(ls: WireLockspace) -> LockspaceSpec:
    if not 1 <= ls.host_id <= MAX_HOST_ID:
        raise InputError("lockspace.host_id", ls.host_id, f"give this host's id, 1 to {MAX_HOST_ID}")
    return LockspaceSpec(check_name(ls.name, "lockspace.name"), ls.host_id,
                         check_path(ls.disk.path, "lockspace.host_id_disk.path"), ls.disk.offset)


def resource_spec(res: WireResource, what: str, with_disk: bool = True) -> ResourceSpec:
    check_name(res.lockspace, f"{what}.lockspace_name")
    check_name(res.name, f"{what}.name")
    disks: tuple[Disk, ...] = ()
    if with_disk:
        if len(res.disks) != 1:
            raise unsupported(f"{what}: a resource on {len(res.disks)} disks (only single-disk resources)")
        d = res.disks[0]
        disks = (Disk(check_path(d.path, f"{what}.disks[0].path"), d.offset),)
    lver = res.lver if res.flags & wire.RES_LVER else None
    return ResourceSpec(res.lockspace, res.name, disks, lver, bool(res.flags & wire.RES_SHARED))
