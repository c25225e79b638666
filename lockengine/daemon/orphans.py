"""Orphan leases: PERSISTENT leases whose client exited, still held by this host (sanlock 3.8 semantics).

A lease acquired with sanlock's ``SANLK_RES_PERSISTENT`` is not released when its client goes: it
stays ours on disk (the leader still names this host id and generation) and is held in the
resource table by ``ORPHANS``, a holder with no process. A local client adopts it with
``ACQUIRE_ORPHAN`` (or ``ACQUIRE_ORPHAN_ONLY``: adopt or fail, never a fresh ballot); ``REL_ORPHAN``
releases it by name (or every orphan of a lockspace).

An orphan is a lease this host holds, so it counts everywhere a held lease counts: it blocks
``rem_lockspace`` (``-EBUSY`` until released), and it is a holder for recovery. Recovery cannot
signal it (there is no process; ``ORPHANS`` never sends a signal, to pid 0 or any other), so a failed
lockspace with an orphan is never "all pids clear": its watchdog registration stays, the watchdog
stops being petted at 8·io and the host is reset — unless every orphan is released first.
sanlock's SET_CONFIG USED is the same for a whole lockspace (``EXTERNAL``): set, the lockspace counts
as held by something outside lockengine until SET_CONFIG UNUSED. (sanlock counts orphans as blocking
only after SET_CONFIG USED_BY_ORPHANS; lockengine always does, and accepts that flag as a no-op.)
"""

from __future__ import annotations

from .clients import Client
from .proc import SYSTEM_PROCESSES

#: The holder of every orphan lease. ``pid_exited`` makes ``signal`` a no-op that answers False, and
#: it is never ``gone``: recovery keeps counting it as holding until its leases are released.
ORPHANS = Client(pid=0, uid=0, name="orphan", conn_id=-1, pidfd=None, pid_exited=True, processes=SYSTEM_PROCESSES)


#: The holder standing for sanlock's SET_CONFIG USED: the lockspace is in use outside lockengine (by
#: what, lockengine cannot know or stop), so it counts as held, exactly as an orphan does.
EXTERNAL = Client(pid=0, uid=0, name="external", conn_id=-2, pidfd=None, pid_exited=True, processes=SYSTEM_PROCESSES)


def is_orphan_holder(client: Client) -> bool:
    """A holder with no process (an orphan, or SET_CONFIG USED): never signalled, ended only by its user."""
    return client is ORPHANS or client is EXTERNAL

