"""sanlock's lock value block commands over the daemon's held leases (on disk: lockengine/lvb.py):
the read at an acquire with SANLK_ACQUIRE_LVB, SET_LVB and GET_LVB. The write-back happens with the
release (daemon/resources.py) or a conversion to shared (commands.py)."""

from __future__ import annotations

import errno

from ...errors import LockError
from ...lvb import check_fits, read_lvb
from ...states import ResourceState
from ...strings import check_name
from ..commands import resource_areas, storage_errors
from ..engine import Daemon
from ..resources import Held
from . import access, wire
from .common import Caller, Outcome
from .wire import Request, WireError


def load(x: Held) -> None:
    """Read the LVB of a lease just acquired (lockengine/lvb.py: where and when, as sanlock)."""
    lease = x.lease
    assert lease is not None
    check_fits(lease.geometry, x.label)
    with storage_errors(resource_areas([x.spec])):
        x.lvb = read_lvb(lease.storage, x.spec.offset, lease.geometry, lease.io_timeout)
    x.lvb_dirty = False


def _holders(d: Daemon, caller: Caller, res: wire.WireResource) -> list[Held]:
    """This host's holders of ``res`` (any of its local processes, as in sanlock) with an LVB."""
    check_name(res.lockspace, "resource.lockspace_name")
    check_name(res.name, "resource.name")
    held = [x for x in d.resources.all() if x.key == (res.lockspace, res.name) and x.state == ResourceState.HELD]
    if not held:
        raise LockError("ENOENT", f"{res.lockspace}:{res.name} is not held on this host")
    for x in held:
        access.target(d, caller, x.client)  # EPERM: a lease of another uid's process
    if held[0].lvb is None:
        raise LockError("EINVAL", f"{res.lockspace}:{res.name} was acquired without a lock value block "
                                  "(acquire with lvb=True / SANLK_ACQUIRE_LVB)")
    return held


def set_lvb(d: Daemon, caller: Caller, req: Request) -> Outcome:
    """Change the LVB in memory (its first len(data) bytes, as sanlock); written back on release."""
    data = req.raw[wire.RESOURCE_SIZE :]
    holders = _holders(d, caller, req.resources[0])
    for x in holders:
        assert x.lvb is not None
        if len(data) > len(x.lvb):
            raise WireError(-errno.E2BIG, f"set_lvb: {len(data)} bytes; this lease's LVB holds {len(x.lvb)}")
        x.lvb = data + x.lvb[len(data) :]
        x.lvb_dirty = True
    return wire.reply(req.header)


def get_lvb(d: Daemon, caller: Caller, req: Request) -> Outcome:
    """The LVB from memory: data2 bytes of it (0 = the whole sector)."""
    lvb = _holders(d, caller, req.resources[0])[0].lvb
    assert lvb is not None
    want = req.header.data2 or len(lvb)
    if want > len(lvb):
        raise WireError(-errno.E2BIG, f"get_lvb: {want} bytes asked; this lease's LVB holds {len(lvb)}")
    return wire.reply(req.header, 0, 0, lvb[:want])
