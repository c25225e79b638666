"""Resource leases held through this daemon, each on behalf of one registered client process.

A lease is reserved in the table before its ballot runs, so two clients of this daemon never race
for the same resource (the second gets EEXIST, as with sanlock). A shared lease this host already
holds is shared by further local processes without another ballot (as sanlock allows); the host's
mode block is cleared on disk only when the last of them releases it. A client's leases are released on
disk when it exits — unless their lockspace has failed: then nothing is written, and other hosts
take the leases once our host counts as dead (facts §10).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import InputError, LockError, error_document
from ..lvb import write_lvb
from ..ondisk import REQ_DISK_MAGIC, REQ_FORCE, REQ_GRACEFUL, Geometry
from ..paxos import PaxosLease, read_request
from ..states import LockspaceState, ResourceState
from ..storage import DirectStorage, Storage
from ..strings import ResourceSpec, format_resource
from .clients import Client
from .counters import ACQUIRES, CAUSE_CALL, CAUSE_EXIT, RELEASES, RESULT_OK, Counters
from .lockspace import Lockspace
from .log import get_logger
from .orphans import ORPHANS
from .proc import SYSTEM_RUNTIME, Runtime

log = get_logger("resource")

MAX_PER_CALL = 8  # sanlock's limit per acquire/release call


def _may_have_written(exc: BaseException) -> bool:
    """Could a ballot that failed with ``exc`` have left our proposal on disk? I/O errors and aborts
    can; refusals (ACQUIRE_IDLIVE, EAGAIN, ...) come before or instead of our proposal."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, LockError):
        return exc.name in ("AIO_TIMEOUT", "ERROR", "EIO") or exc.name.endswith(("_WRITE", "_READ"))
    return False


class StoragePool:
    """One O_DIRECT handle per path, shared by lease operations (renewals have their own)."""

    def __init__(self, opener: Callable[[str], Storage] = DirectStorage) -> None:
        self._opener = opener
        self._by_path: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Storage:
        with self._lock:
            st = self._by_path.get(path)
            if st is None:
                st = self._by_path[path] = self._opener(path)
            return st

    def close(self) -> None:
        with self._lock:
            for st in self._by_path.values():
                st.close()
            self._by_path.clear()


@dataclass(eq=False)
class Held:
    spec: ResourceSpec
    client: Client
    state: ResourceState = ResourceState.ACQUIRING
    lease: PaxosLease | None = None
    lver: int = 0
    acted_on: tuple[int, int] = (0, 0)  # the request (lver, force_mode) we already acted on
    lvb: bytes | None = None  # the lock value block, when acquired with one (lockengine/lvb.py)
    lvb_dirty: bool = False  # set since the acquire: written back before an exclusive release
    persistent: bool = False  # sanlock's RES_PERSISTENT: becomes an orphan (orphans.py) when its client goes
    adopted: bool = False  # this acquire adopted an orphan: a failed acquire gives it back to ORPHANS
    orphan_uid: int = -1  # an orphan: the uid of the process that left it (who may adopt or release it)

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.lockspace, self.spec.name)

    @property
    def label(self) -> str:
        """``LS:RES:PATH:OFF:LVER`` (or ``:SH``), as ``sanlock client inquire`` prints it."""
        return format_resource(replace(self.spec, lver=self.lver))

    def as_dict(self) -> dict[str, object]:
        return {"lockspace": self.spec.lockspace, "resource": self.spec.name, "path": self.spec.path,
                "offset": self.spec.offset, "lver": self.lver, "shared": self.spec.shared,
                "pid": self.client.pid, "state": self.state}


@dataclass(frozen=True)
class RequestAction:
    held: Held
    force_mode: int
    req_lver: int


class ResourceManager:
    def __init__(
        self, storages: StoragePool, lockspace: Callable[[str], Lockspace | None], runtime: Runtime = SYSTEM_RUNTIME,
        counters: Counters | None = None,
    ) -> None:
        self.storages = storages
        self.runtime = runtime
        self.counters = counters if counters is not None else Counters()
        self._lockspace = lockspace
        self._held: dict[tuple[str, str], Held] = {}  # the holder that won the lease on disk
        self._sharers: dict[tuple[str, str], list[Held]] = {}  # more local holders of a shared one
        self._sweeping: set[tuple[str, str]] = set()  # failed acquires whose ballot may still commit us
        self._lock = threading.Lock()
        self._geometry: dict[tuple[str, int], Geometry] = {}

    # ------------------------------------------------------------------ queries

    def _every(self) -> list[Held]:
        return [*self._held.values(), *(h for hs in self._sharers.values() for h in hs)]

    def all(self) -> list[Held]:
        with self._lock:
            return self._every()

    def of_client(self, client: Client) -> list[Held]:
        with self._lock:
            return [h for h in self._every() if h.client is client]

    def in_lockspace(self, name: str) -> list[Held]:
        with self._lock:
            return [h for h in self._every() if h.spec.lockspace == name]

    def _joined(self, name: str) -> Lockspace:
        ls = self._lockspace(name)
        if ls is None:
            raise LockError("ENOSPC", f"lockspace {name!r} is not joined on this host (add_lockspace first)")
        if ls.state != LockspaceState.JOINED:
            raise LockError("ENOSPC", f"lockspace {name!r} is {ls.state} on this host, not joined")
        if ls.closing:
            raise LockError("EAGAIN", f"lockspace {name!r} is being removed on this host")
        return ls

    def _count(self, kind: str, names: list[str], start: float, exc: BaseException | None, **labels: str) -> None:
        """One call in the counters (counters.py), under each lockspace it named that this host has (a name
        it does not have counts as "": a client cannot grow the label set without bound)."""
        try:
            result = RESULT_OK if exc is None else str(error_document(exc)["name"])
            spaces = [n if self._lockspace(n) is not None else "" for n in names]
            self.counters.call(kind, spaces, result, self.runtime.clock() - start, **labels)
        except Exception:  # counting must never change what the call did or answers
            log.exception("counting a %s call failed", kind)

    # ------------------------------------------------------------------ acquire

    def acquire(self, client: Client, specs: list[ResourceSpec], *, nowait: bool = False,
                persistent: frozenset[int] = frozenset(), orphan: str = "",
                num_hosts: dict[int, int] | None = None) -> list[Held]:
        """All or nothing: on any failure the leases won so far are released again (an adopted orphan
        goes back to the orphans). ``persistent``: indexes of specs acquired PERSISTENT; ``orphan``:
        "" (an orphan here is -EUCLEAN), "allow" (adopt it, else acquire) or "only" (adopt, else -ENOENT);
        ``num_hosts``: spec index -> the new num_hosts its ballot commits (PaxosLease.acquire)."""
        start, failure = self.runtime.clock(), None
        try:
            held = self._acquire(client, specs, nowait, orphan, num_hosts or {})
            for i, h in enumerate(held):
                h.persistent = i in persistent
            return held
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._count(ACQUIRES, [s.lockspace for s in specs], start, failure)

    def _acquire(self, client: Client, specs: list[ResourceSpec], nowait: bool, orphan: str = "",
                 num_hosts: dict[int, int] | None = None) -> list[Held]:
        if not 1 <= len(specs) <= MAX_PER_CALL:
            raise InputError("resources", len(specs), f"give 1 to {MAX_PER_CALL} resources per call")
        spaces: dict[str, Lockspace] = {}
        for spec in specs:
            if len(spec.disks) != 1:
                raise InputError("RESOURCE", format_resource(spec), "give exactly one path:offset per resource")
            spaces[spec.lockspace] = self._joined(spec.lockspace)
        reserved = self._reserve(client, specs, orphan)
        # Counted from here to the last undo write: rem_lockspace frees the host id only once no ballot
        # of ours can write any more; the Event aborts the ballots when the lockspace fails or goes.
        aborts = {name: ls.ballot_started() for name, ls in spaces.items()}
        try:
            try:
                for i, h in enumerate(reserved):
                    self._acquire_one(h, nowait, aborts[h.spec.lockspace], (num_hosts or {}).get(i, 0))
            except BaseException as exc:
                for h in reserved:
                    self._undo(h, _may_have_written(exc))
                raise
        finally:
            for ls in spaces.values():
                ls.ballot_ended()
        orphans = []
        with self._lock:
            for h in reserved:
                if h.state == ResourceState.ORPHAN:
                    orphans.append(h)
                else:
                    h.state = ResourceState.HELD
                    h.adopted = False
        if orphans:  # the client exited while we balloted: give everything back
            for h in reserved:
                self._undo(h)
            raise LockError("ESRCH", f"pid {client.pid} exited while acquiring; leases released")
        for h in reserved:
            log.debug("r %s: acquired for pid %d", h.label, client.pid)
        return reserved

    def _can_share(self, spec: ResourceSpec, other: Held, client: Client) -> bool:
        """A shared request joins a shared lease this host holds (same disk), once per process."""
        return (spec.shared and other.spec.shared and other.state == ResourceState.HELD and other.lease is not None
                and other.spec.disks == spec.disks
                and all(h.client is not client for h in [other, *self._sharers.get(other.key, [])]))

    def _reserve(self, client: Client, specs: list[ResourceSpec], orphan: str = "") -> list[Held]:
        with self._lock:
            if client.gone:
                # Its connection closed while this request waited for a worker: client_exited has run
                # (or will find nothing), so a lease won now would be held for nobody, forever.
                raise LockError("ESRCH", f"pid {client.pid} is gone (its connection closed); not acquiring")
            keys = set()
            out = []
            for spec in specs:
                key = (spec.lockspace, spec.name)
                if key in self._sweeping:
                    raise LockError("EAGAIN", f"{spec.lockspace}:{spec.name}: a failed acquire is being cleaned "
                                              "up on this host; retry in a few seconds")
                other = self._held.get(key)
                if other is not None and other.client is ORPHANS and key not in keys:
                    out.append(self._adoptable(spec, other, orphan))
                    keys.add(key)
                    continue
                if orphan == "only":
                    raise LockError("ENOENT", f"{spec.lockspace}:{spec.name} is not an orphan lease on this host "
                                              "(ACQUIRE_ORPHAN_ONLY adopts, never acquires)")
                if key in keys or other is not None and not self._can_share(spec, other, client):
                    who = f"pid {other.client.pid}" if other is not None else "this same request"
                    raise LockError("EEXIST", f"{spec.lockspace}:{spec.name} is already held or being acquired "
                                              f"on this host by {who}")
                keys.add(key)
                if other is not None:  # a sharer: the lease is already ours on disk
                    out.append(Held(spec, client, lease=other.lease, lver=other.lver))
                else:
                    out.append(Held(spec, client))
            for h in out:
                if h.adopted:
                    h.client, h.state = client, ResourceState.ACQUIRING
                    log.info("r %s: orphan adopted by pid %d", h.label, client.pid)
                elif h.lease is not None:
                    self._sharers.setdefault(h.key, []).append(h)
                else:
                    self._held[h.key] = h
            return out

    @staticmethod
    def _adoptable(spec: ResourceSpec, orphan: Held, how: str) -> Held:
        """Under the lock: ``orphan`` when this acquire may adopt it (sanlock's rules), else the error."""
        label = f"{spec.lockspace}:{spec.name}"
        if not how:
            raise LockError("EUCLEAN", f"{label} is an orphan lease on this host: adopt it with ACQUIRE_ORPHAN or "
                                       "release it with REL_ORPHAN", errno=errno.EUCLEAN)
        if orphan.spec.shared != spec.shared:
            mode = "shared" if orphan.spec.shared else "exclusive"
            raise LockError("EUCLEAN", f"{label}: the orphan is {mode}; adopt it in that mode",
                            errno=errno.EUCLEAN)
        if orphan.spec.disks != spec.disks:
            raise LockError("EINVAL", f"{label}: the orphan is at {orphan.spec.path}:{orphan.spec.offset}, "
                                      f"not {spec.path}:{spec.offset}")
        orphan.adopted = True
        return orphan

    def _acquire_one(self, h: Held, nowait: bool, abort: threading.Event, num_hosts: int = 0) -> None:
        ls = self._joined(h.spec.lockspace)
        if h.lease is not None:  # sharing a lease this host holds: no ballot
            return
        storage = self.storages.get(h.spec.path)
        gkey = (h.spec.path, h.spec.offset)
        lease = PaxosLease(
            storage, ls.name, h.spec.name, h.spec.offset, host_id=ls.host_id, generation=ls.generation,
            geometry=self._geometry.get(gkey), io_timeout=ls.io_timeout, liveness=ls.liveness,
            clock=self.runtime.clock, sleep=self.runtime.sleep, rng=self.runtime.new_rng(),
        )
        self._geometry[gkey] = lease.geometry
        h.lease = lease
        leader = lease.acquire(shared=h.spec.shared, lver=h.spec.lver or 0, nowait=nowait, abort=abort,
                               num_hosts=num_hosts)
        h.lver = leader.lver
        if abort.is_set():  # failed or being removed while the ballot ran: it must not count
            raise LockError("ENOSPC", f"lockspace {ls.name!r} failed or is being removed on this host")

    def _last_holder(self, h: Held) -> bool:
        """Under the lock: True when ``h`` is the only local holder left (its release goes to disk).

        A sharer is forgotten here; a winner with sharers hands the lease to the first of them."""
        sharers = self._sharers.get(h.key, [])
        if h in sharers:
            sharers.remove(h)
        elif self._held.get(h.key) is h and sharers:
            self._held[h.key] = sharers.pop(0)
        else:
            return self._held.get(h.key) is h
        if not sharers:
            self._sharers.pop(h.key, None)
        return False

    def _undo(self, h: Held, may_have_written: bool = False) -> None:
        with self._lock:
            if h.adopted:  # still ours on disk, as before this acquire: an orphan again
                h.client, h.state, h.adopted = ORPHANS, ResourceState.HELD, False
                return
            last = self._last_holder(h)
        ls = self._lockspace(h.spec.lockspace)
        if not last:
            pass  # another local process still shares this lease
        elif ls is None or ls.state != LockspaceState.JOINED:
            # Our host id lease is lost: a write now could land after another host took over.
            log.warning("r %s: not released on disk after a failed acquire (lockspace %s)", h.label,
                        "gone" if ls is None else ls.state)
        elif h.lease is not None and h.lease.leader is not None:
            try:
                h.lease.release()
            except (LockError, OSError) as exc:
                log.error("r %s: release after a failed multi-acquire failed: %s", h.label, exc)
        elif h.lease is not None and may_have_written:
            # The ballot failed (an I/O error, an abort) after it may have written our proposal: another
            # host's ballot may still commit us as the owner, and nobody here would ever release it.
            lease = h.lease
            self.runtime.spawn(f"orphan-sweep:{h.spec.name}", lambda: self._sweep_orphan(h.key, lease))
        with self._lock:
            if self._held.get(h.key) is h:
                del self._held[h.key]

    def _sweep_orphan(self, key: tuple[str, str], lease: PaxosLease) -> None:
        """Release the lease if the disk says we (this host id and generation) own or share it although
        no client here holds it; looked at a few times, as long as another ballot might still finish."""
        ls = self._lockspace(key[0])
        delays = ls.timeouts.orphan_sweep_seconds if ls is not None else ()
        for delay in delays:
            self.runtime.sleep(delay, None, "orphan sweep")
            ls = self._lockspace(key[0])
            if ls is None or ls.state != LockspaceState.JOINED or ls.generation != lease.generation:
                return
            with self._lock:
                if key in self._held:
                    continue  # a client here holds it now: its lease is the one on disk
                self._sweeping.add(key)  # local acquires get EAGAIN for these few I/Os
            ls.ballot_started()  # counted: the host id is not freed while this may still write
            try:
                lease.adopt()  # RELEASE_OWNER: not ours (yet); look again later
                lease.release()
            except (LockError, OSError) as exc:
                if not (isinstance(exc, LockError) and exc.name == "RELEASE_OWNER"):
                    log.warning("r %s:%s: cleaning up after a failed acquire: %s", key[0], key[1], exc)
                continue
            finally:
                ls.ballot_ended()
                with self._lock:
                    self._sweeping.discard(key)
            log.warning("r %s:%s: released a lease the disk said we held after a failed acquire (another "
                        "host's ballot finished ours)", key[0], key[1])
            return

    # ------------------------------------------------------------------ release

    def release(self, client: Client, specs: list[ResourceSpec] | None) -> list[Held]:
        """Release the named leases of ``client`` (all of them when ``specs`` is None)."""
        start, failure = self.runtime.clock(), None
        names = [s.lockspace for s in specs] if specs is not None else [h.spec.lockspace for h in self.of_client(client)]
        try:
            return self._release(client, specs)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._count(RELEASES, names, start, failure, cause=CAUSE_CALL)

    def _release(self, client: Client, specs: list[ResourceSpec] | None) -> list[Held]:
        with self._lock:
            if specs is None:
                todo = [h for h in self._every() if h.client is client and h.state == ResourceState.HELD]
            else:
                todo = []
                for spec in specs:
                    key = (spec.lockspace, spec.name)
                    mine = [x for x in [self._held.get(key), *self._sharers.get(key, [])]
                            if x is not None and x.client is client]
                    h = mine[0] if mine else None
                    if h is None or h.state != ResourceState.HELD:
                        raise LockError("ENOENT", f"{spec.lockspace}:{spec.name} is not held by pid {client.pid}")
                    todo.append(h)
            for h in todo:
                h.state = ResourceState.ORPHAN  # nobody else touches it now
        errors = []
        for h in todo:
            try:
                self._release_on_disk(h)
                log.debug("r %s: released by pid %d", h.label, client.pid)
            except (LockError, OSError) as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return todo

    def client_exited(self, client: Client) -> list[Held]:
        """Release on disk everything ``client`` held; in-flight acquires give theirs back themselves.

        Returns the leases released on disk (not those dropped because their lockspace failed)."""
        with self._lock:
            todo = []
            for h in self._every():
                if h.client is client:
                    if h.state == ResourceState.HELD and h.persistent and self._last_local(h):
                        h.client, h.orphan_uid = ORPHANS, client.uid  # still ours on disk; no process
                        log.warning("r %s: pid %d exited; kept as an orphan (PERSISTENT)", h.label, client.pid)
                        continue
                    if h.state == ResourceState.HELD:
                        todo.append(h)
                    h.state = ResourceState.ORPHAN
        released = []
        start, failure = self.runtime.clock(), None
        for h in todo:
            # A failure is logged by _release_on_disk; the record is gone either way.
            try:
                if self._release_on_disk(h):
                    released.append(h)
            except (LockError, OSError) as exc:
                failure = failure or exc
        if todo:
            self._count(RELEASES, [h.spec.lockspace for h in todo], start, failure, cause=CAUSE_EXIT)
        return released

    def _last_local(self, h: Held) -> bool:
        """Under the lock: no other local process holds ``h``'s lease (a sharer leaving others keeps nothing)."""
        return all(x is h for x in [self._held.get(h.key), *self._sharers.get(h.key, [])] if x is not None)

    def orphans(self, lockspace: str | None = None) -> list[Held]:
        with self._lock:
            return [h for h in self._every() if h.client is ORPHANS and lockspace in (None, h.spec.lockspace)]

    def release_orphans(self, lockspace: str, name: str) -> list[Held]:
        """REL_ORPHAN: release the orphans of ``lockspace`` named ``name`` (all of them for ""), on disk
        while the lockspace is joined (else dropped unwritten, as any release of a lost lockspace)."""
        with self._lock:
            todo = [h for h in self._every() if h.client is ORPHANS and h.state == ResourceState.HELD
                    and h.spec.lockspace == lockspace and name in ("", h.spec.name)]
            for h in todo:
                h.state = ResourceState.ORPHAN
        errors = []
        for h in todo:
            try:
                self._release_on_disk(h)
                log.info("r %s: orphan released", h.label)
            except (LockError, OSError) as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return todo

    def _release_on_disk(self, h: Held) -> bool:
        """Release ``h`` and forget it; False when its lockspace is lost and nothing was written.

        Another local process still sharing the lease keeps it: nothing is written then. A release
        write that fails (EIO, a timeout) leaves the lease ours on disk: forgetting it would keep it
        held for as long as this host lives, with nobody to release it. It stays in the table
        (RELEASING: no local acquire takes it) and is retried every io_timeout while the lockspace is
        joined; the error still goes to the caller."""
        with self._lock:
            last = self._last_holder(h)
        if not last:
            log.debug("r %s: pid %d stops sharing it; other local holders keep it", h.label, h.client.pid)
            return True
        try:
            done = self._release_once(h)
        except (LockError, OSError) as exc:
            log.error("r %s: release failed (retrying every %d s): %s", h.label, h.lease.io_timeout if h.lease
                      else 0, exc)
            h.state = ResourceState.RELEASING
            self.runtime.spawn(f"release-retry:{h.spec.name}", lambda: self._retry_release(h))
            raise
        self._forget(h)
        return done

    def _release_once(self, h: Held) -> bool:
        ls = self._lockspace(h.spec.lockspace)
        if ls is None or ls.state != LockspaceState.JOINED:
            # Our host id lease is lost or gone: writing now could race a host that took over.
            log.warning("r %s: dropped without a disk write (lockspace %s)", h.label,
                        "gone" if ls is None else ls.state)
            return False
        assert h.lease is not None
        if h.lvb is not None and h.lvb_dirty and not h.lease.shared:
            try:  # as sanlock: written while still held; a failed write is logged, the release goes on
                write_lvb(h.lease.storage, h.spec.offset, h.lease.geometry, h.lvb, h.lease.io_timeout)
                h.lvb_dirty = False
            except (LockError, OSError) as exc:
                log.error("r %s: writing the lock value block failed: %s", h.label, exc)
        h.lease.release()
        return True

    def _retry_release(self, h: Held) -> None:
        assert h.lease is not None
        while self._held.get(h.key) is h:
            self.runtime.sleep(h.lease.io_timeout, None, "release retry")
            try:
                self._release_once(h)
            except LockError as exc:
                if exc.name in ("RELEASE_OWNER", "RELEASE_LVER"):
                    log.warning("r %s: no longer ours on disk; forgotten: %s", h.label, exc)
                    break
                continue
            except OSError:
                continue
            log.info("r %s: released on disk after an earlier failure", h.label)
            break
        self._forget(h)

    def _forget(self, h: Held) -> None:
        with self._lock:
            if self._held.get(h.key) is h:
                del self._held[h.key]

    def drop_lockspace(self, name: str) -> None:
        """Forget every lease of a lockspace that is gone (no disk writes)."""
        with self._lock:
            for key in [k for k, h in self._held.items() if h.spec.lockspace == name]:
                self._held[key].state = ResourceState.ORPHAN
                del self._held[key]
            for key in [k for k in self._sharers if k[0] == name]:
                for h in self._sharers.pop(key):
                    h.state = ResourceState.ORPHAN

    # ------------------------------------------------------------------ requests

    def examine(self, lockspace: str) -> list[RequestAction]:
        """Read the request record of each lease we hold in ``lockspace``; return those to act on."""
        actions = []
        for h in self.in_lockspace(lockspace):
            if h.state != ResourceState.HELD or h.spec.shared or h.lease is None:
                continue
            try:
                req = read_request(self.storages.get(h.spec.path), h.spec.offset, h.lease.geometry,
                                   h.lease.io_timeout)
            except (LockError, OSError) as exc:
                log.warning("r %s: reading the request record failed: %s", h.label, exc)
                continue
            if req.magic != REQ_DISK_MAGIC or req.force_mode not in (REQ_FORCE, REQ_GRACEFUL):
                continue
            # Act once per request; a graceful request upgraded to force at the same lver acts again.
            if req.lver <= h.lver or req.lver < h.acted_on[0] or (req.lver, req.force_mode) == h.acted_on:
                continue
            h.acted_on = (req.lver, req.force_mode)
            actions.append(RequestAction(h, req.force_mode, req.lver))
        return actions
