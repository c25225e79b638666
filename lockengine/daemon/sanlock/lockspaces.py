"""sanlock's lockspace and event commands over the daemon: add, inquire (and wait), remove, list, hosts,
host status, renewal history; event listeners and set_event."""

from __future__ import annotations

import concurrent.futures
import errno
import threading
import time
from collections.abc import Callable

from ...errors import InputError, LockError
from ...states import LockspaceState
from ...strings import MAX_HOST_ID
from ..engine import Daemon
from ..lockspace import Lockspace
from ..log import get_logger
from . import access, views, wire
from .common import Caller, Outcome, lockspace_spec, result_code, unsupported
from .wire import Request, WireError, WireLockspace

log = get_logger("sanlock")

INQ_WAIT_POLL = 1.0  # seconds between looks while INQ_LOCKSPACE waits, as sanlock does


class LockspaceCommands:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self._waiters: list[tuple[Request, concurrent.futures.Future[bytes]]] = []
        self._waiters_lock = threading.Lock()
        self._waiter_thread: threading.Thread | None = None
        self.event_count: Callable[[str], int] = lambda name: 0  # the listener's event connections

    def add_lockspace(self, caller: Caller, req: Request) -> Outcome:
        assert req.lockspace is not None
        h = req.header
        spec = lockspace_spec(req.lockspace)
        if h.data > 255:
            raise InputError("io_timeout (header data)", h.data_signed, "use 0 (the daemon's) or 1 to 255 seconds")
        access.path(self.d, caller, spec.path, "lockspace.host_id_disk.path")
        space = self.d.add_lockspace(spec, h.data or None)
        if h.cmd_flags & wire.ADD_ASYNC:
            return wire.reply(h)
        out: concurrent.futures.Future[bytes] = concurrent.futures.Future()

        def joined(f: concurrent.futures.Future[dict[str, object]]) -> None:
            exc = f.exception()
            if exc is not None:
                log.info("sanlock add_lockspace %s failed: %s", space.label, exc)
            out.set_result(wire.reply(h, 0 if exc is None else result_code(exc, req)))

        space.joined.add_done_callback(joined)
        return out

    def _inq(self, ls: WireLockspace) -> int:
        try:
            space = self.d.lockspace(ls.name)
        except LockError:
            return -errno.ENOENT
        if ls.host_id and ls.host_id != space.host_id:
            return -errno.ENOENT
        if space.state == LockspaceState.JOINED and not space.closing:
            return 0
        return -errno.EINPROGRESS

    def inq_lockspace(self, caller: Caller, req: Request) -> Outcome:
        """With INQ_WAIT the answer waits while the lockspace is being added or removed, re-checked once
        a second by one shared thread: waiting callers hold no worker."""
        assert req.lockspace is not None
        code = self._inq(req.lockspace)
        if code != -errno.EINPROGRESS or not req.header.cmd_flags & wire.INQ_WAIT:
            return wire.reply(req.header, code)
        out: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        with self._waiters_lock:
            self._waiters.append((req, out))
            if self._waiter_thread is None:
                self._waiter_thread = threading.Thread(target=self._poll_waiters, name="sanlock-inq-wait", daemon=True)
                self._waiter_thread.start()
        return out

    def _poll_waiters(self) -> None:
        while True:
            time.sleep(INQ_WAIT_POLL)
            with self._waiters_lock:
                waiting, self._waiters = self._waiters, []
            still = []
            for req, out in waiting:
                assert req.lockspace is not None
                code = self._inq(req.lockspace)
                if code == -errno.EINPROGRESS and not self.d.stopping:
                    still.append((req, out))
                else:
                    out.set_result(wire.reply(req.header, code))
            with self._waiters_lock:
                self._waiters.extend(still)

    def rem_lockspace(self, caller: Caller, req: Request) -> Outcome:
        assert req.lockspace is not None
        h = req.header
        space = self.d.lockspace(req.lockspace.name)
        if req.lockspace.host_id and req.lockspace.host_id != space.host_id:
            raise LockError("ENOENT", f"lockspace {space.name} is joined with host id {space.host_id}, "
                                      f"not {req.lockspace.host_id}")
        unused = bool(h.cmd_flags & wire.REM_UNUSED)
        if h.cmd_flags & wire.REM_ASYNC:
            if unused and self.d.holders(space):
                raise LockError("EBUSY", f"lockspace {space.label} has lease holders; not removing it")
            blocked = self.d.unstoppable(space)
            if blocked:
                raise LockError("EBUSY", f"lockspace {space.label} {blocked}")
            self.d.pool.submit(self._rem_logged, space, unused)
            return wire.reply(h)
        self.d.rem_lockspace(space, unused)
        return wire.reply(h)

    def set_config(self, caller: Caller, req: Request) -> Outcome:
        """SET_CONFIG (data): USED/UNUSED mark the lockspace in use outside lockengine (it then counts as
        held: rem_lockspace -EBUSY, and a failed lockspace's watchdog fires unless UNUSED comes first);
        USED_BY_ORPHANS/UNUSED_BY_ORPHANS are accepted with no effect: lockengine always counts orphans."""
        assert req.lockspace is not None
        cmd = req.header.data
        if cmd not in (wire.CONFIG_USED, wire.CONFIG_UNUSED, wire.CONFIG_USED_BY_ORPHANS,
                       wire.CONFIG_UNUSED_BY_ORPHANS):
            raise InputError("config command (header data)", req.header.data_signed,
                             "use 1 (USED), 2 (UNUSED), 4 (USED_BY_ORPHANS) or 8 (UNUSED_BY_ORPHANS)")
        space = self.d.lockspace(req.lockspace.name)  # ENOENT
        if cmd in (wire.CONFIG_USED, wire.CONFIG_UNUSED):
            self.d.set_used(space, cmd == wire.CONFIG_USED)
        elif cmd == wire.CONFIG_USED_BY_ORPHANS and space.state != LockspaceState.JOINED:
            raise LockError("ENOSPC", f"lockspace {space.label} is {space.state} on this host, not joined")
        return wire.reply(req.header)

    def _rem_logged(self, space: Lockspace, unused: bool) -> None:
        try:
            self.d.rem_lockspace(space, unused)
        except (LockError, OSError) as exc:
            log.error("sanlock rem_lockspace (async) failed: %s", exc)

    def get_lockspaces(self, caller: Caller, req: Request) -> Outcome:
        spaces = views.lockspace_list(self.d.status(False)["lockspaces"])
        return wire.reply(req.header, 0, len(spaces), b"".join(spaces))

    def get_hosts(self, caller: Caller, req: Request) -> Outcome:
        assert req.lockspace is not None
        hosts = views.host_list(self.d.lockspace(req.lockspace.name).hosts(), req.lockspace.host_id)
        return wire.reply(req.header, 0, len(hosts), b"".join(hosts))

    def host_status(self, caller: Caller, req: Request) -> Outcome:
        """A header, then one record per host seen; the connection then closes."""
        assert req.lockspace is not None
        try:
            space = self.d.lockspace(req.lockspace.name)
        except LockError:
            return wire.reply(req.header, -errno.ENOSPC)  # what sanlock answers for an unknown lockspace
        records = views.host_records(space.hosts() if space.table is not None else [])
        return wire.reply(req.header, 0, 0, records, length=wire.HEADER_SIZE)

    # ------------------------------------------------------------------ events

    def reg_event(self, caller: Caller, req: Request) -> Outcome:
        """The connection stays open and gets the lockspace's events pushed (the listener does that)."""
        assert req.lockspace is not None
        name = req.lockspace.name
        if not name:
            raise InputError("lockspace.name", name, "give the lockspace to listen on")
        space = self.d.lockspace(name)  # ENOENT
        if self.event_count(space.name) >= wire.MAX_EVENT_FDS:
            raise WireError(-errno.ENOCSI, f"lockspace {name} has {wire.MAX_EVENT_FDS} event listeners already")
        caller.event_lockspace = space.name
        return wire.reply(req.header)

    def end_event(self, caller: Caller, req: Request) -> Outcome:
        """The client closed its event connection itself (after writing the end marker)."""
        assert req.lockspace is not None
        self.d.lockspace(req.lockspace.name)  # ENOENT
        return wire.reply(req.header)

    def set_event(self, caller: Caller, req: Request) -> Outcome:
        """Put an event in our delta record and set the target's bit; it goes out at once (renew_now)."""
        assert req.lockspace is not None and req.host_event is not None
        h, he = req.header, req.host_event
        if h.cmd_flags & ~wire.SETEV_CUR_GENERATION:
            raise unsupported(f"set_event flags 0x{h.cmd_flags:x} (only SETEV_CUR_GENERATION)")
        if not 1 <= he.host_id <= MAX_HOST_ID:
            raise InputError("host_event.host_id", he.host_id, f"give the target host id, 1 to {MAX_HOST_ID}")
        if he.event == 0:
            raise InputError("host_event.event", 0, "give a non-zero event number")
        space = self.d.lockspace(req.lockspace.name)
        if space.delta is None or space.state != LockspaceState.JOINED:
            raise LockError("EAGAIN", f"lockspace {space.name} is {space.state}, not joined")
        generation = he.generation
        if h.cmd_flags & wire.SETEV_CUR_GENERATION and space.table is not None:
            info = space.table.info(he.host_id)
            generation = info.generation if info is not None else 0
        space.delta.set_event(he.host_id, generation, he.event, he.data)
        space.renew_now()
        return wire.reply(h)

    def renewal(self, caller: Caller, req: Request) -> Outcome:
        """A header (data2 = io_timeout), then one record per remembered renewal; then EOF."""
        assert req.lockspace is not None
        try:
            space = self.d.lockspace(req.lockspace.name)
        except LockError:
            return wire.reply(req.header, -errno.ENOSPC)
        records = views.renewal_records(space.renewals())
        return wire.reply(req.header, 0, space.io_timeout, records, length=wire.HEADER_SIZE)
