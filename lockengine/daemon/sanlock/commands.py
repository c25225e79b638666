"""sanlock's commands mapped onto the daemon (engine.Daemon's public methods): the dispatch, and the
registration, lease, disk and daemon commands (lockspace and event commands: lockspaces.py).

``Commands.handle`` runs memory-only commands on the listener's thread and the rest (disk I/O or
waits) on the daemon's worker pool; every outcome, including every failure, becomes one reply with
sanlock's result code. Commands aimed at a registered client (ACQUIRE, RELEASE, INQUIRE, KILLPATH,
CONVERT) name it by this connection (data2 = -1) or by pid, and a client has one such command in
flight at a time (a second gets -EBUSY), as in sanlock. Who may do what: access.py (the JSON socket's
rules), checked here before a command starts and, for paths, inside the handlers on the worker pool.

PERSISTENT leases, ACQUIRE_ORPHAN(_ONLY) and REL_ORPHAN are served (lockengine/daemon/orphans.py).
SET_CONFIG is served (lockspaces.py). num_hosts on acquire (SANLK_RES_NUM_HOSTS, data32) is served,
stricter than sanlock (docs/daemon.md, "num_hosts on acquire"): 1..max_hosts and at least our host id
(else -EINVAL, nothing written), never below a shared holder (-EBUSY), written only into a leader
naming us. Refused with -EOPNOTSUPP and a log line naming the feature: multi-disk resources,
set_event flags other than CUR_GENERATION, rindex, shutdown. The lock value block is served (lockengine/lvb.py).
(RENEWAL and LOG_DUMP are served: they only read the daemon's memory.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import replace

from ... import convert
from ...errors import InputError, LockError
from ...lvb import write_lvb
from ...paxos import read_leader
from ...states import LockspaceState, ResourceState
from ...storage import Storage
from ...strings import ResourceSpec, check_name, check_path
from ..clients import Client
from ..commands import resource_areas, storage_errors
from ..engine import CallContext, Daemon
from ..log import get_logger
from . import access, disk, lvbs, views, wire
from .common import SANLK_ERROR, Caller, Outcome, reported, resource_spec, result_code, unsupported
from .lockspaces import LockspaceCommands
from .wire import Request, WireError

log = get_logger("sanlock")

# --------------------------------------------------------------------------- dispatch

Handler = Callable[["Commands", Caller, Request], Outcome]
TargetHandler = Callable[["Commands", Caller, Request, Client], Outcome]


class Commands:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self._busy: set[Client] = set()
        self._busy_lock = threading.Lock()
        self.spaces = LockspaceCommands(daemon)

    def handle(self, caller: Caller, req: Request, done: Callable[[bytes], None]) -> None:
        """Serve ``req``; ``done`` gets the reply bytes (b"" for none), from any thread, exactly once."""
        h = req.header
        if caller.restrict & wire.RESTRICT_ALL:
            self._fail(req, WireError(-errno.EPERM, "this connection was restricted (RESTRICT_ALL)"), done)
            return
        if self.d.stopping and h.cmd not in WHILE_STOPPING:
            self._fail(req, LockError("EAGAIN", "the daemon is shutting down"), done)
            return
        try:
            access.command(self.d, caller, h.cmd)
        except LockError as exc:
            self._fail(req, exc, done)
            return
        entry = TABLE.get(h.cmd)
        target = TARGETED.get(h.cmd)
        if entry is None and target is None:
            self._fail(req, unsupported(h.name), done)
            return
        if target is not None:
            try:
                client = self._target(caller, req)
            except (WireError, LockError) as exc:
                self._fail(req, exc, done)
                return
            fn, inline = target

            def release_busy(data: bytes) -> None:
                with self._busy_lock:
                    self._busy.discard(client)
                done(data)

            def bound(c: Commands, cl: Caller, r: Request) -> Outcome:
                return fn(c, cl, r, client)

            self._start(bound, inline, caller, req, release_busy)
            return
        assert entry is not None
        self._start(entry[0], entry[1], caller, req, done)

    def _target(self, caller: Caller, req: Request) -> Client:
        pid = req.target_pid
        if pid is None:
            if caller.client is None:
                raise WireError(-errno.EBUSY, f"{req.header.name} with data2 = -1 on a connection that did not "
                                              "register: register first, or name a registered pid")
            client = caller.client
            if client.gone:
                raise WireError(-errno.ESTALE, f"pid {client.pid} registered on this connection has exited")
        else:
            client = self.d.clients.get(pid)  # ESRCH
            access.target(self.d, caller, client)  # EPERM: a process of another uid
        with self._busy_lock:
            if client in self._busy:
                raise WireError(-errno.EBUSY, f"pid {client.pid} already has a command in progress")
            self._busy.add(client)
        return client

    def _start(self, fn: Handler, inline: bool, caller: Caller, req: Request, done: Callable[[bytes], None]) -> None:
        if inline:
            self._run(fn, caller, req, done)
        else:
            self.d.pool.submit(self._run, fn, caller, req, done)

    def _run(self, fn: Handler, caller: Caller, req: Request, done: Callable[[bytes], None]) -> None:
        try:
            out = fn(self, caller, req)
        except BaseException as exc:  # every failure is a reply; the listener keeps serving
            self._fail(req, exc, done)
            return
        if isinstance(out, concurrent.futures.Future):
            out.add_done_callback(lambda f: done(f.result()) if f.exception() is None
                                  else self._fail(req, f.exception() or Exception("?"), done))
        else:
            done(out)

    def _fail(self, req: Request, exc: BaseException, done: Callable[[bytes], None]) -> None:
        exc = reported(exc, req)
        code = result_code(exc)
        if code == SANLK_ERROR and not isinstance(exc, LockError):
            log.error("sanlock %s failed unexpectedly", req.header.name, exc_info=exc)
        else:
            log.info("sanlock %s refused (%d): %s", req.header.name, code, exc)
        done(wire.reply(req.header, code))

    # ------------------------------------------------------------------ registration

    def register(self, caller: Caller, req: Request) -> Outcome:
        if caller.client is not None:
            raise LockError("EEXIST", f"this connection already registered pid {caller.client.pid}")
        caller.client = self.d.register(CallContext(caller.conn_id, caller.cred, caller.watch), None, None)
        _apply_restrict(caller)
        return b""  # REGISTER has no reply

    def restrict(self, caller: Caller, req: Request) -> Outcome:
        """The connection's restrictions (sanlock keeps them per connection, registered or not): ALL ends
        its commands; SIGKILL/SIGTERM change the signals the escalation sends its client."""
        caller.restrict |= req.header.cmd_flags
        _apply_restrict(caller)
        return wire.reply(req.header)

    def killpath(self, caller: Caller, req: Request, client: Client) -> Outcome:
        assert req.killpath is not None
        path, args = req.killpath
        if not path:
            client.killpath = None
            return wire.reply(req.header)
        if not os.path.isabs(path):
            raise InputError("killpath path", path, "give an absolute program path")
        argv = [path, *wire.split_args(args)]
        if req.header.cmd_flags & wire.KILLPATH_PID:
            argv.append(str(client.pid))
        client.killpath = argv
        return wire.reply(req.header)

    # ------------------------------------------------------------------ leases

    def acquire(self, caller: Caller, req: Request, client: Client) -> Outcome:
        h = req.header
        orphan = ("only" if h.cmd_flags & wire.ACQUIRE_ORPHAN_ONLY else
                  "allow" if h.cmd_flags & wire.ACQUIRE_ORPHAN else "")
        specs = []
        persistent = frozenset(i for i, res in enumerate(req.resources) if res.flags & wire.RES_PERSISTENT)
        # SANLK_RES_NUM_HOSTS: data32 is the num_hosts the winning ballot writes (0 keeps it, as in sanlock);
        # PaxosLease.acquire checks it (1..max_hosts, >= our host id) before any I/O.
        num_hosts = {i: res.data32 for i, res in enumerate(req.resources) if res.flags & wire.RES_NUM_HOSTS}
        for i, res in enumerate(req.resources):
            spec = resource_spec(res, f"resources[{i}]")
            access.path(self.d, caller, spec.path, f"resources[{i}].disks[0].path")
            if orphan:
                access.orphans(self.d, caller, client, spec.lockspace, spec.name, f"resources[{i}]")
            if spec.lver == 0 and not spec.shared:
                self._require_lver_zero(spec)
            specs.append(spec)
        if req.options is not None and req.options.owner_name:
            client.name = req.options.owner_name
        held = self.d.resources.acquire(client, specs, nowait=bool(h.cmd_flags & wire.ACQUIRE_OWNER_NOWAIT),
                                        persistent=persistent, orphan=orphan, num_hosts=num_hosts)
        if h.cmd_flags & wire.ACQUIRE_LVB:
            try:
                for x in held:
                    lvbs.load(x)
            except BaseException:
                with contextlib.suppress(LockError, OSError):
                    self.d.resources.release(client, specs)  # all or nothing, as the acquire itself
                raise
        return wire.reply(h)

    def _require_lver_zero(self, spec: ResourceSpec) -> None:
        """A required version of 0 (the engine reads lver 0 as "any"): check the leader before the ballot."""
        ls = self.d.lockspace(spec.lockspace) if spec.lockspace in self.d.lockspaces else None
        io = ls.io_timeout if ls is not None else self.d.config.io_timeout
        leader = read_leader(self.d.storages.get(spec.path), spec.offset, spec.lockspace, spec.name, io)
        if leader.lver != 0:
            raise LockError("ACQUIRE_LVER", f"{spec.name}: lver is {leader.lver}, required 0")

    def release(self, caller: Caller, req: Request, client: Client) -> Outcome:
        h = req.header
        if h.cmd_flags & wire.REL_RENAME:
            raise unsupported("release with rename (SANLK_REL_RENAME)")
        if h.cmd_flags & wire.REL_ORPHAN:
            return self._release_orphans(caller, req, client)
        held = resource_areas([held.spec for held in self.d.resources.of_client(client)])
        if h.cmd_flags & wire.REL_ALL:
            with storage_errors(held):
                self.d.resources.release(client, None)
            return wire.reply(h)
        specs = [resource_spec(r, f"resources[{i}]", with_disk=False) for i, r in enumerate(req.resources)]
        try:
            with storage_errors(held):
                self.d.resources.release(client, specs)
        except LockError as exc:
            if exc.name == "ENOENT":  # sanlock answers -1 for a lease the client does not hold
                raise WireError(-1, exc.message) from None
            raise
        return wire.reply(h)

    def _release_orphans(self, caller: Caller, req: Request, client: Client) -> Outcome:
        """REL_ORPHAN: the orphans of the lockspace named by the one RES (all of them when its name is
        empty); as sanlock, the result is how many were released (0 when none matched)."""
        res = req.resources[0]
        check_name(res.lockspace, "resource.lockspace_name")
        if res.name:
            check_name(res.name, "resource.name")
        access.orphans(self.d, caller, client, res.lockspace, res.name, "resource")
        orphans = [o for o in self.d.resources.orphans(res.lockspace) if res.name in ("", o.spec.name)]
        with storage_errors(resource_areas([o.spec for o in orphans])):
            done = self.d.resources.release_orphans(res.lockspace, res.name)
        return wire.reply(req.header, len(done))

    def inquire(self, caller: Caller, req: Request, client: Client) -> Outcome:
        held = [h for h in self.d.resources.of_client(client) if h.state == ResourceState.HELD]
        if not held:
            return wire.reply(req.header, 0, 0)
        text = " ".join(wire.inquire_entry(h.spec.lockspace, h.spec.name, [(d.path, d.offset) for d in h.spec.disks],
                                           h.lver, h.spec.shared) for h in held)
        return wire.reply(req.header, 0, len(held), text.encode("utf-8") + b"\0")

    def convert(self, caller: Caller, req: Request, client: Client) -> Outcome:
        """Shared <-> exclusive for the client's lease (lockengine/convert.py does the disk part)."""
        res = req.resources[0]
        to_shared = bool(res.flags & wire.RES_SHARED)
        mine = [x for x in self.d.resources.of_client(client) if x.key == (res.lockspace, res.name)]
        if not mine or mine[0].state != ResourceState.HELD or mine[0].lease is None:
            raise LockError("ENOENT", f"{res.lockspace}:{res.name} is not held by pid {client.pid}")
        h, lease = mine[0], mine[0].lease
        if h.spec.shared == to_shared:
            raise WireError(-errno.EALREADY, f"{h.label} is already held {'shared' if to_shared else 'exclusively'}")
        if not to_shared and any(x is not h for x in self.d.resources.all() if x.key == h.key):
            raise LockError("EAGAIN", f"{h.label} is shared by other processes on this host too")
        space = self.d.lockspace(h.spec.lockspace)
        if space.state != LockspaceState.JOINED or space.closing or space.acquire_abort.is_set():
            raise LockError("ENOSPC", f"lockspace {space.name} is {space.state} here: no lease writes")
        h.state = ResourceState.ACQUIRING  # a release on the client's exit waits for us (below)
        abort = space.ballot_started()  # rem_lockspace frees the host id only after this
        try:
            if to_shared:
                if h.lvb is not None and h.lvb_dirty:  # as sanlock: the LVB goes to disk before sharing
                    try:
                        write_lvb(lease.storage, h.spec.offset, lease.geometry, h.lvb, lease.io_timeout)
                        h.lvb_dirty = False
                    except (LockError, OSError) as exc:  # as sanlock: logged, the conversion goes on
                        log.error("r %s: writing the lock value block failed: %s", h.label, exc)
                with storage_errors(resource_areas([h.spec])):
                    convert.to_shared(lease)
            else:
                with storage_errors(resource_areas([h.spec])):
                    convert.to_exclusive(lease, nowait=bool(req.header.cmd_flags & wire.CONVERT_OWNER_NOWAIT),
                                         abort=abort)
            h.spec = replace(h.spec, shared=lease.shared)
            assert lease.leader is not None
            h.lver = lease.leader.lver
        finally:
            space.ballot_ended()
            exited = h.state == ResourceState.ORPHAN  # the client went while we converted: its release is ours to do
            h.state = ResourceState.HELD
            if exited:
                with contextlib.suppress(LockError, OSError):
                    self.d.resources.release(client, [h.spec])
        log.info("r %s: converted to %s for pid %d", h.label, "shared" if to_shared else "exclusive", client.pid)
        return wire.reply(req.header)

    def request(self, caller: Caller, req: Request) -> Outcome:
        h = req.header
        spec = resource_spec(req.resources[0], "resource")
        if h.data not in (0, 1, 2):
            raise InputError("force_mode (header data)", h.data_signed, "use 1 (force), 2 (graceful) or 0 (clear)")
        lver = None if h.cmd_flags & wire.REQUEST_NEXT_LVER else req.resources[0].lver
        access.request(self.d, caller, spec.lockspace, spec.name)
        access.path(self.d, caller, spec.path, "resource.disks[0].path")
        self.d.request(spec, lver, h.data)
        return wire.reply(h)

    def examine(self, caller: Caller, req: Request) -> Outcome:
        name = req.lockspace.name if req.lockspace is not None else req.resources[0].lockspace
        self.d.examine(self.d.lockspace(name))
        return wire.reply(req.header)

    # ------------------------------------------------------------------ disks

    def _storage(self, caller: Caller, path: str, field: str) -> Storage:
        """The daemon's handle on ``path``, once the caller has shown it may open the path itself."""
        access.path(self.d, caller, check_path(path, field), field)
        return self.d.storages.get(path)

    def write_lockspace(self, caller: Caller, req: Request) -> Outcome:
        assert req.lockspace is not None
        check_name(req.lockspace.name, "lockspace.name")
        return disk.write_lockspace(self._storage(caller, req.lockspace.disk.path, "lockspace.path"), req)

    def write_resource(self, caller: Caller, req: Request) -> Outcome:
        spec = resource_spec(req.resources[0], "resource")
        return disk.write_resource(self._storage(caller, spec.path, "resource.disks[0].path"), req)

    def read_lockspace(self, caller: Caller, req: Request) -> Outcome:
        assert req.lockspace is not None
        try:
            ls, io = disk.read_lockspace(self._storage(caller, req.lockspace.disk.path, "lockspace.path"), req)
        except BaseException as exc:
            self._fail(req, exc, lambda _b: None)  # logs it
            return wire.reply(req.header, result_code(exc, req), 0, req.lockspace.encode())
        return wire.reply(req.header, 0, io, ls.encode())

    def read_resource(self, caller: Caller, req: Request) -> Outcome:
        res = req.resources[0]
        try:
            out = disk.read_resource(self._storage(caller, res.disks[0].path, "resource.path"), res)
        except BaseException as exc:  # the RES goes back even on error: libsanlock reads it first
            self._fail(req, exc, lambda _b: None)
            return wire.reply(req.header, result_code(exc, req), 0, res.encode(with_disks=False))
        return wire.reply(req.header, 0, 0, out.encode(with_disks=False))

    def read_resource_owners(self, caller: Caller, req: Request) -> Outcome:
        res = req.resources[0]
        try:
            out, hosts = disk.read_resource_owners(self._storage(caller, res.disks[0].path, "resource.path"), res)
        except BaseException as exc:
            self._fail(req, exc, lambda _b: None)
            return wire.reply(req.header, result_code(exc, req), 0, res.encode(with_disks=False))
        payload = out.encode(with_disks=False) + b"".join(host.encode() for host in hosts)
        return wire.reply(req.header, 0, len(hosts), payload)

    def align(self, caller: Caller, req: Request) -> Outcome:
        assert req.disk is not None
        access.path(self.d, caller, check_path(req.disk.path, "disk.path"), "disk.path")
        return wire.reply(req.header, disk.alignment(req.disk.path))

    # ------------------------------------------------------------------ daemon

    def version(self, caller: Caller, req: Request) -> Outcome:
        h = wire.Header(cmd=wire.VERSION, seq=req.header.seq, data2=wire.VERSION_CODE)
        return h.encode()

    def log_dump(self, caller: Caller, req: Request) -> Outcome:
        """A header with the byte count in data, then the log text (within half the output bound); then EOF."""
        text = views.log_text(self.d.ring.dump() if self.d.ring is not None else [],
                              min(1 << 20, self.d.config.max_output_bytes // 2))
        return wire.reply(req.header, len(text), 0, text, length=wire.HEADER_SIZE)

    def status(self, caller: Caller, req: Request) -> Outcome:
        """A header, then the daemon's records (views.status_records); the connection then closes."""
        records = views.status_records(self.d.status(False), req.header.data)
        return wire.reply(req.header, 0, 0, records, length=wire.HEADER_SIZE)


def _apply_restrict(caller: Caller) -> None:
    if caller.client is not None:
        caller.client.no_sigkill = bool(caller.restrict & wire.RESTRICT_SIGKILL)
        caller.client.no_sigterm = bool(caller.restrict & wire.RESTRICT_SIGTERM)


TABLE: dict[int, tuple[Handler, bool]] = {
    wire.REGISTER: (Commands.register, True),
    wire.RESTRICT: (Commands.restrict, True),
    wire.ADD_LOCKSPACE: (lambda c, cl, r: c.spaces.add_lockspace(cl, r), False),
    wire.INQ_LOCKSPACE: (lambda c, cl, r: c.spaces.inq_lockspace(cl, r), True),
    wire.REM_LOCKSPACE: (lambda c, cl, r: c.spaces.rem_lockspace(cl, r), False),
    wire.REQUEST: (Commands.request, False),
    wire.EXAMINE_LOCKSPACE: (Commands.examine, False),
    wire.EXAMINE_RESOURCE: (Commands.examine, False),
    wire.GET_LOCKSPACES: (lambda c, cl, r: c.spaces.get_lockspaces(cl, r), True),
    wire.GET_HOSTS: (lambda c, cl, r: c.spaces.get_hosts(cl, r), True),
    wire.HOST_STATUS: (lambda c, cl, r: c.spaces.host_status(cl, r), True),
    wire.WRITE_LOCKSPACE: (Commands.write_lockspace, False),
    wire.WRITE_RESOURCE: (Commands.write_resource, False),
    wire.READ_LOCKSPACE: (Commands.read_lockspace, False),
    wire.READ_RESOURCE: (Commands.read_resource, False),
    wire.READ_RESOURCE_OWNERS: (Commands.read_resource_owners, False),
    wire.ALIGN: (Commands.align, False),
    wire.VERSION: (Commands.version, True),
    wire.STATUS: (Commands.status, True),
    wire.RENEWAL: (lambda c, cl, r: c.spaces.renewal(cl, r), True),
    wire.LOG_DUMP: (Commands.log_dump, True),
    wire.REG_EVENT: (lambda c, cl, r: c.spaces.reg_event(cl, r), True),
    wire.END_EVENT: (lambda c, cl, r: c.spaces.end_event(cl, r), True),
    wire.SET_EVENT: (lambda c, cl, r: c.spaces.set_event(cl, r), True),
    wire.SET_CONFIG: (lambda c, cl, r: c.spaces.set_config(cl, r), True),
    wire.SET_LVB: (lambda c, cl, r: lvbs.set_lvb(c.d, cl, r), True),
    wire.GET_LVB: (lambda c, cl, r: lvbs.get_lvb(c.d, cl, r), True),
}

# Commands on a registered client: (handler, inline).
TARGETED: dict[int, tuple[TargetHandler, bool]] = {
    wire.ACQUIRE: (Commands.acquire, False),
    wire.RELEASE: (Commands.release, False),
    wire.INQUIRE: (Commands.inquire, True),
    wire.KILLPATH: (Commands.killpath, True),
    wire.CONVERT: (Commands.convert, False),
}

# What a stopping daemon still answers.
WHILE_STOPPING = frozenset({wire.INQUIRE, wire.RELEASE, wire.STATUS, wire.VERSION, wire.GET_LOCKSPACES,
                            wire.INQ_LOCKSPACE, wire.GET_HOSTS, wire.HOST_STATUS})

# Connections that stay open after their reply even when not registered (as in sanlock); a
# registered connection always stays open.
KEEP_OPEN = frozenset({wire.RESTRICT, wire.VERSION})
