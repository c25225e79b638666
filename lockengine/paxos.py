"""Disk Paxos resource leases, on-disk compatible with sanlock 3.8 (sanlock-facts §3, §8).

One lease version (lver) is one Paxos instance. A host proposes with ballot numbers that are
congruent to its host_id modulo max_hosts, so two hosts never use the same ballot. Phase 1 writes
our dblock with a fresh mbal and reads every dblock; phase 2 adopts the value with the highest bal
(or proposes ourselves) and writes it with bal = mbal; any higher mbal seen aborts. Only the
winner of phase 2 commits the leader record; it may commit another host (ACQUIRE_OTHER).

Every path that touches the disk is a generator (a step machine) that yields ``Read``/``Write``
requests and is handed each read's bytes (or the I/O's exception) back; the synchronous API
(``acquire``, ``release``, ``adopt``, ``read_leader``, ``request``) runs the same generators
against a ``Storage`` through ``drive``. The exhaustive check (tests/exhaustive) steps the same
generators itself, one I/O at a time: one copy of the algorithm, two drivers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import TypeVar

from .clock import Clock, abortable_sleep, monotime
from .errors import CODES, InputError, LockError
from .liveness import ALIVE, RUN, OwnerLiveness
from .ondisk import (
    DBLOCK_FL_RELEASED,
    LFL_SHORT_HOLD,
    MBLOCK_SHARED,
    REQ_DISK_MAGIC,
    REQ_DISK_VERSION,
    AreaSlots,
    DBlock,
    Geometry,
    HostSlot,
    Leader,
    ModeBlock,
    RequestRecord,
    SlotField,
    SlotFields,
    decode_request,
    encode_name,
    geometry_from_flags,
    host_sector,
    paxos_read_span,
    scan_paxos_sectors,
    slot_checksum_ok,
    slot_dblock,
    verify_paxos_leader,
)
from .storage import Storage, read_reusing

EAGAIN_SHARED = CODES["EAGAIN"]
SH_RETRIES = 8
LVER_RESTARTS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class Read:
    """A step machine asks for ``length`` bytes at ``offset``; it is sent the bytes read.

    ``reuse``: the bytes may come in a buffer the storage hands out again once the step machine has
    dropped it (storage.read_reusing), for the large area reads of a ballot."""

    offset: int
    length: int
    timeout: float
    reuse: bool = False


@dataclass(frozen=True)
class Write:
    """A step machine asks for ``data`` to be written at ``offset``; it is sent None."""

    offset: int
    data: bytes
    timeout: float


# A step machine: yields I/O requests, is sent each result (or has the I/O's exception thrown in at
# the yield), returns its result.
IO = Generator[Read | Write, bytes | bytearray | None, T]


def drive(storage: Storage, steps: IO[T]) -> T:
    """Run a step machine against real storage, one I/O after the other (the synchronous API)."""
    try:
        req = next(steps)
        while True:
            failure: BaseException | None = None
            out: bytes | bytearray | None = None
            try:
                if isinstance(req, Read):
                    if req.reuse:
                        out = read_reusing(storage, req.offset, req.length, req.timeout)
                    else:
                        out = storage.read(req.offset, req.length, req.timeout)
                else:
                    storage.write(req.offset, req.data, req.timeout)
            except BaseException as exc:  # raised inside the step machine, where the I/O was asked for
                failure = exc
            req = steps.send(out) if failure is None else steps.throw(failure)
            del failure
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def read_io(offset: int, length: int, timeout: float) -> IO[bytes]:
    out = yield Read(offset, length, timeout)
    assert isinstance(out, bytes)
    return out


def read_reused_io(offset: int, length: int, timeout: float) -> IO[bytes | bytearray]:
    """A large read whose buffer the storage may reuse once it is dropped: parse it, keep no view."""
    out = yield Read(offset, length, timeout, reuse=True)
    assert out is not None
    return out


def write_io(offset: int, data: bytes, timeout: float) -> IO[None]:
    yield Write(offset, data, timeout)


class PaxosLease:
    """One resource lease as seen by one host (host_id, generation of its delta lease)."""

    def __init__(
        self,
        storage: Storage,
        space_name: str,
        resource_name: str,
        offset: int,
        *,
        host_id: int,
        generation: int,
        geometry: Geometry | None = None,
        io_timeout: int = 10,
        liveness: OwnerLiveness | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float, threading.Event | None, str], None] = abortable_sleep,
        rng: random.Random | None = None,
    ) -> None:
        encode_name(space_name, "lockspace name")
        encode_name(resource_name, "resource name")
        if host_id < 1:
            raise InputError("host_id", host_id, "give the host id this host holds in the lockspace (>= 1)")
        if generation < 1:
            raise InputError("generation", generation, "give the generation of this host's delta lease (>= 1)")
        self.storage = storage
        self.space_name = space_name
        self.resource_name = resource_name
        self.offset = offset
        self.host_id = host_id
        self.generation = generation
        self.io_timeout = io_timeout
        self.liveness = liveness
        self.clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.geometry = geometry or self._probe_geometry()
        if offset % self.geometry.align_size:
            raise InputError("offset", offset, f"resource offsets are multiples of {self.geometry.align_size}")
        self.geometry.check_host_id(host_id)
        self.leader: Leader | None = None  # what we committed (exclusive) while held
        self.shared = False
        self._dblock = DBlock()
        self._abort: threading.Event | None = None  # the running acquire's abort: no write once set
        self._proposed: set[int] = set()  # inp3 of every value naming us that this acquire's phase 2 wrote
        self.keep_mode: ModeBlock | None = None  # kept by every write of our sector that names none (convert.py)
        self._num_hosts = 0  # the running acquire's new num_hosts (0: keep the leader's)

    # ------------------------------------------------------------------ reads

    def _probe_geometry(self) -> Geometry:
        s = max(self.storage.sector_size, 512)
        buf = drive(self.storage, read_io(self.offset, s, self.io_timeout))
        ld = verify_paxos_leader(buf, self.space_name, self.resource_name)
        return geometry_from_flags(ld.sector_size, ld.flags)

    def _verify(self, buf: bytes) -> Leader:
        ld = verify_paxos_leader(buf, self.space_name, self.resource_name, self.host_id)
        if ld.sector_size != self.geometry.sector_size:
            raise LockError(
                "LEADER_SECTORSIZE", f"resource leader says {ld.sector_size}-byte sectors, we use {self.geometry.sector_size}"
            )
        return ld

    def read_leader(self) -> Leader:
        return drive(self.storage, self.read_leader_io())

    def read_leader_io(self) -> IO[Leader]:
        buf = yield from read_io(self.offset, self.geometry.sector_size, self.io_timeout)
        return self._verify(buf)

    def _read_area(self) -> IO[tuple[Leader, AreaSlots]]:
        buf = yield from read_reused_io(self.offset, self.geometry.align_size, self.io_timeout)
        ld = self._verify(bytes(buf[: self.geometry.sector_size]))
        return ld, AreaSlots(buf, self.geometry.sector_size, self._judged(ld))

    def _judged(self, ld: Leader) -> int:
        return judged_hosts(ld)

    def _check_abort(self) -> None:
        """Every write of an acquire first honours its abort event (the lockspace failed or is being
        removed: a ballot must not write once its host id may be freed)."""
        if self._abort is not None and self._abort.is_set():
            raise LockError("ERROR", f"{self.resource_name}: acquire aborted")

    def _write_own(self, dblock: DBlock, mblock: ModeBlock | None = None) -> IO[None]:
        self._check_abort()
        mblock = mblock or self.keep_mode or ModeBlock()
        off = self.offset + self.geometry.dblock_offset(self.host_id)
        yield from write_io(off, host_sector(dblock, mblock, self.geometry.sector_size), self.io_timeout)
        self._dblock = dblock

    def _write_leader(self, ld: Leader) -> IO[None]:
        self._check_abort()
        sector = bytearray(self.geometry.sector_size)
        enc = ld.encode()
        sector[: len(enc)] = enc
        yield from write_io(self.offset, bytes(sector), self.io_timeout)

    # ------------------------------------------------------------------ acquire

    def acquire(
        self,
        *,
        shared: bool = False,
        lver: int = 0,
        nowait: bool = False,
        abort: threading.Event | None = None,
        num_hosts: int = 0,
    ) -> Leader:
        """Win the lease (exclusive, or shared with ``shared``). Raises LockError with sanlock's names.

        ``num_hosts`` (sanlock's SANLK_RES_NUM_HOSTS; 0 keeps it) goes into the leader we commit
        when we win (``_commit``, guarded by ``_guard_num_hosts``). A failure after our phase 2 wrote (our value may be
        chosen) retracts: see ``_retract``."""
        return drive(
            self.storage, self.acquire_io(shared=shared, lver=lver, nowait=nowait, abort=abort, num_hosts=num_hosts)
        )

    def acquire_io(
        self,
        *,
        shared: bool = False,
        lver: int = 0,
        nowait: bool = False,
        abort: threading.Event | None = None,
        num_hosts: int = 0,
    ) -> IO[Leader]:
        """``acquire`` as a step machine."""
        self._check_num_hosts(num_hosts)  # before any I/O: a bad value writes nothing
        self._abort, self._proposed, self._num_hosts = abort, set(), num_hosts
        try:
            return (yield from self._acquire(shared, lver, nowait, abort))
        except (LockError, OSError):
            yield from self._retract()
            raise
        finally:
            self._abort, self._num_hosts = None, 0

    def _check_num_hosts(self, num_hosts: int) -> None:
        if not num_hosts:
            return
        top = self.geometry.max_hosts
        if not 1 <= num_hosts <= top:
            raise InputError("num_hosts", num_hosts, f"use 1..{top} for {self.geometry.describe()} (0 keeps it)")
        if num_hosts < self.host_id:
            raise InputError(
                "num_hosts", num_hosts,
                f"use at least {self.host_id}, this host's id: a lower value would leave our own leader "
                "unreadable here (LEADER_NUMHOSTS, -228)",
            )

    def _acquire(self, shared: bool, lver: int, nowait: bool, abort: threading.Event | None) -> IO[Leader]:
        if not shared:
            return (yield from self._acquire_exclusive(lver=lver, nowait=nowait, abort=abort))
        for _ in range(SH_RETRIES):
            try:
                ld = yield from self._acquire_exclusive(lver=lver, nowait=nowait, abort=abort, short_hold=True)
            except LockError as exc:
                if exc.name != "ACQUIRE_IDLIVE" or not (yield from self._owner_short_hold()):
                    raise
                self._sleep(self._rng.random(), abort, "shared acquire")
                continue
            # Hold shared: our sector says SHARED, then the leader is freed for other sharers.
            try:
                yield from self._write_own(
                    replace(self._dblock, flags=DBLOCK_FL_RELEASED), ModeBlock(MBLOCK_SHARED, self.generation)
                )
                yield from self._release_leader(ld)
            except (LockError, OSError):
                self.leader = None  # not held: the caller's retract clears our mode block and the leader
                raise
            self.leader, self.shared = ld, True
            return ld
        raise LockError("ACQUIRE_SHRETRY", f"{self.resource_name}: held briefly by another host, retried {SH_RETRIES} times")

    def _retract(self) -> IO[None]:
        """After a failed acquire whose phase 2 wrote (or may have written) a value, make sure the
        lease is not left owned on disk by this live host (sanlock: retract / undo shared).

        Our dblock keeps its mbal/bal/inp (Paxos must not lose an accepted value) and gains the
        RELEASED flag, so a leader another host commits for us later may be taken at once by the
        next acquirer (``_owner_released``); a leader we committed ourselves is freed (timestamp 0).
        Best effort: an I/O failure here leaves the lease to the owner-liveness wait. Nothing is
        written once the acquire's abort is set."""
        if not self._proposed or self.leader is not None:
            return
        try:
            yield from self._write_own(replace(self._dblock, flags=self._dblock.flags | DBLOCK_FL_RELEASED))
            cur = yield from self.read_leader_io()
            if (
                cur.timestamp
                and (cur.owner_id, cur.owner_generation, cur.write_id) == (self.host_id, self.generation, self.host_id)
                and cur.timestamp in self._proposed
            ):
                yield from self._release_leader(cur)
        except (LockError, OSError):
            pass
        finally:
            self._proposed = set()

    def _owner_short_hold(self) -> IO[bool]:
        try:
            return bool((yield from self.read_leader_io()).flags & LFL_SHORT_HOLD)
        except LockError:
            return False

    def _acquire_exclusive(
        self, *, lver: int, nowait: bool, abort: threading.Event | None, short_hold: bool = False
    ) -> IO[Leader]:
        lver_restarts = 0
        while True:
            cur, slots = yield from self._read_area()
            if lver and cur.lver != lver:
                raise LockError("ACQUIRE_LVER", f"{self.resource_name}: lver is {cur.lver}, required {lver}")
            self._guard_num_hosts(cur, slots.sharers(self.host_id))  # before any write of ours
            if not (yield from self._may_run(cur, slots, nowait, abort)):
                continue  # the leader changed while we waited: start over
            try:
                result = yield from self._run(cur, slots, short_hold, abort)
            except LockError as exc:
                # A dblock already at a later version: the leader we read is stale (a commit landed
                # late, or one is landing now). Start over from a fresh read, as sanlock does; a
                # bounded number of times, because a dblock can be stuck there.
                if exc.name != "DBLOCK_LVER" or lver_restarts >= LVER_RESTARTS:
                    raise
                lver_restarts += 1
                self._sleep(self._rng.random(), abort, "ballot restart")
                continue
            if result is not None:
                return result

    def _may_run(self, cur: Leader, slots: AreaSlots, nowait: bool, abort: threading.Event | None) -> IO[bool]:
        """True to run a ballot; False to restart; raises when the owner is alive."""
        if cur.timestamp == 0:
            return True
        if cur.owner_id == self.host_id and cur.owner_generation <= self.generation:
            return True  # ours now ("already local") or from our previous generation ("was old local")
        if self._owner_released(cur, slots):
            return True
        held = LockError(
            "ACQUIRE_IDLIVE",
            f"{self.resource_name} is held by host {cur.owner_id} generation {cur.owner_generation} (lver {cur.lver})",
        )
        if self.liveness is None:
            raise held
        watch = self.liveness.begin(cur)
        while True:
            verdict, remaining = self.liveness.check(cur, watch)
            if verdict == RUN:
                return True
            if verdict == ALIVE:
                raise held
            if nowait:
                raise LockError(
                    "ACQUIRE_OWNED_RETRY",
                    f"{self.resource_name}: owner host {cur.owner_id} not seen renewing; dead in {remaining:.0f} s",
                )
            self._sleep(1.0, abort, "acquire")
            if (yield from self.read_leader_io()) != cur:
                return False

    def _owner_released(self, cur: Leader, slots: AreaSlots) -> bool:
        """May the owner's RELEASED dblock end the owner-liveness wait at once?

        Only when another host wrote this leader for the owner (the owner frees a leader it wrote
        itself) and the owner has released since its ballot for this version or a later one (a
        delayed commit of an older version must not wedge the lease; the ballot adopts what that
        version decided). A RELEASED dblock of an *older* version proves nothing: an abandoned write
        of it may land after the owner won this one.

        Neither the leader's write_id (bytes 176+) nor the dblock flags (byte 52) are covered by a
        checksum, so both are cross-checked against checksummed fields first: a RELEASED dblock of
        this version must be the owner's own accepted value naming itself (inp, inp2, inp3 = the
        leader's owner, generation and timestamp), and the writer named by write_id must have a valid
        dblock that accepted that same value (or moved on to a later version).
        """
        if cur.write_id == cur.owner_id or not 1 <= cur.write_id <= cur.num_hosts:
            return False
        owner = slots.get(cur.owner_id)
        if owner is None or not owner.checksum_ok or not owner.dblock.released:
            return False
        db = owner.dblock
        if db.lver > cur.lver:
            return True
        value = (cur.owner_id, cur.owner_generation, cur.timestamp)
        if db.lver != cur.lver or not db.bal or (db.inp, db.inp2, db.inp3) != value:
            return False
        writer = slots.get(cur.write_id)
        if writer is None or not writer.checksum_ok:
            return False
        w = writer.dblock
        return w.lver > cur.lver or (w.lver == cur.lver and w.bal != 0 and (w.inp, w.inp2, w.inp3) == value)

    def _our_first_mbal(self, slots: AreaSlots, max_hosts: int) -> int:
        max_mbal = slots.max_valid_mbal()
        if not max_mbal:
            return self.host_id
        return max_mbal - (max_mbal % max_hosts) + max_hosts + self.host_id

    def _run(
        self, cur: Leader, slots: AreaSlots, short_hold: bool, abort: threading.Event | None
    ) -> IO[Leader | None]:
        """Ballots for cur.lver + 1 until one completes; None means restart from a fresh read."""
        next_lver = cur.lver + 1
        our_mbal = self._our_first_mbal(slots, cur.max_hosts)
        first = True
        while True:
            now_leader = cur if first else (yield from self.read_leader_io())
            first = False
            if now_leader.lver == next_lver:
                if (
                    now_leader.owner_id, now_leader.owner_generation) == (self.host_id, self.generation
                ) and now_leader.timestamp in self._proposed:
                    # Another host committed our proposal for us: the shared holders still count.
                    self.leader, self.shared = now_leader, False
                    if not short_hold:
                        _, slots_now = yield from self._read_area()
                        yield from self._clear_sharers(slots_now.sharers(self.host_id))
                    return now_leader
                if now_leader.owner_id == self.host_id:
                    return None  # names us, but with no value this acquire proposed: judge it afresh
                raise LockError(
                    "ACQUIRE_OWNED", f"{self.resource_name}: lver {next_lver} went to host {now_leader.owner_id}"
                )
            if now_leader.lver > next_lver or now_leader != cur:
                return None
            try:
                chosen, sharers = yield from self._ballot(self._judged(cur), next_lver, our_mbal, slots.get(self.host_id))
            except LockError as exc:
                if exc.name != "DBLOCK_MBAL":
                    raise
                self._sleep(self._rng.random(), abort, "ballot retry")
                our_mbal += cur.max_hosts
                continue
            return (yield from self._commit(cur, chosen, sharers, short_hold))

    def _accepted(self, lver: int, on_disk: HostSlot | None) -> DBlock | None:
        """The value this host last accepted for ``lver`` (bal, inp), from what it wrote in this
        process or from its own dblock on disk (a restart, or a write that failed but landed)."""
        found = [self._dblock]
        if on_disk is not None and on_disk.checksum_ok:
            found.append(on_disk.dblock)
        found = [d for d in found if d.lver == lver and d.bal and d.inp]
        return max(found, key=lambda d: d.bal) if found else None

    def _ballot(
        self, num_hosts: int, next_lver: int, our_mbal: int, on_disk: HostSlot | None = None
    ) -> IO[tuple[DBlock, set[tuple[int, int]]]]:
        span = min(paxos_read_span(num_hosts, self.geometry.sector_size), self.geometry.align_size)
        # Phase 1 changes only mbal (Disk Paxos StartBallot, after its Phase 0 restore): our accepted
        # bal/inp stay on disk. sanlock zeroes them here, which can erase the last copy of a chosen
        # value (docs/ondisk.md); its readers adopt the highest bal with inp != 0, so they read ours.
        acc = self._accepted(next_lver, on_disk)
        if acc is not None:
            mine = DBlock(mbal=our_mbal, bal=acc.bal, inp=acc.inp, inp2=acc.inp2, inp3=acc.inp3, lver=next_lver)
        else:
            mine = DBlock(mbal=our_mbal, lver=next_lver)
        yield from self._write_own(mine)
        best, sharers = yield from self._phase_read(span, num_hosts, mine)
        if best is not None:
            mine = DBlock(mbal=our_mbal, bal=our_mbal, inp=best.inp, inp2=best.inp2, inp3=best.inp3, lver=next_lver)
        else:
            mine = DBlock(
                mbal=our_mbal, bal=our_mbal, inp=self.host_id, inp2=self.generation,
                inp3=monotime(self.clock), lver=next_lver,
            )
        if (mine.inp, mine.inp2) == (self.host_id, self.generation):
            self._proposed.add(mine.inp3)  # from here on our value may be chosen: a failure retracts
        yield from self._write_own(mine)
        _, more = yield from self._phase_read(span, num_hosts, mine)
        return mine, sharers | more

    def _phase_read(
        self, span: int, num_hosts: int, mine: DBlock
    ) -> IO[tuple[DBlock | None, set[tuple[int, int]]]]:
        buf = yield from read_reused_io(self.offset, span, self.io_timeout)
        return judge_phase(buf, self.geometry.sector_size, num_hosts, self.host_id, mine)

    def _commit(self, cur: Leader, chosen: DBlock, sharers: set[tuple[int, int]], short_hold: bool) -> IO[Leader]:
        new = replace(
            cur, lver=chosen.lver, owner_id=chosen.inp, owner_generation=chosen.inp2, timestamp=chosen.inp3,
            write_id=self.host_id, write_generation=self.generation, write_timestamp=monotime(self.clock),
        )
        if new.owner_id == self.host_id:
            new = replace(new, flags=(new.flags | LFL_SHORT_HOLD) if short_hold else (new.flags & ~LFL_SHORT_HOLD))
        if self._num_hosts and (new.owner_id, new.owner_generation) == (self.host_id, self.generation):
            self._guard_num_hosts(cur, sharers)  # the ballot's reads: a sharer may have come since
            new = replace(new, num_hosts=self._num_hosts)
        new = new.with_checksum()
        yield from self._write_leader(new)
        if (new.owner_id, new.owner_generation) != (self.host_id, self.generation):
            raise LockError("ACQUIRE_OTHER", f"{self.resource_name}: ballot committed host {new.owner_id}")
        self.leader, self.shared = new, False
        if not short_hold and sharers:
            yield from self._clear_sharers(sharers)
        return new

    def _guard_num_hosts(self, cur: Leader, sharers: set[tuple[int, int]]) -> None:
        """Refuse to lower num_hosts below a host that holds the lease shared: a sanlock host reads
        (and clears dead sharers among) dblocks 1..num_hosts only, so it would no longer see that
        holder (docs/ondisk.md, "num_hosts"). Stricter than sanlock, which does not look."""
        if not self._num_hosts:
            return
        above = sorted(h for h, _ in sharers if h > self._num_hosts)
        if above:
            raise LockError(
                "EBUSY",
                f"{self.resource_name}: num_hosts {self._num_hosts} would hide shared holders {above} "
                f"(now {cur.num_hosts}); release those first or use num_hosts >= {above[-1]}",
                field="num_hosts",
            )

    def _clear_sharers(self, sharers: set[tuple[int, int]]) -> IO[None]:
        """An exclusive winner may keep the lease only if no shared holder is alive."""
        live = []
        for host_id, gen in sorted(sharers):
            if self.liveness is not None and self.liveness.holder_dead(host_id, gen):
                off = self.offset + self.geometry.dblock_offset(host_id)
                yield from write_io(off, bytes(self.geometry.sector_size), self.io_timeout)
            else:
                live.append(host_id)
        if live:
            yield from self.release_io()
            raise LockError("EAGAIN", f"{self.resource_name}: shared by live hosts {live}")

    def adopt(self) -> Leader:
        """Take over a lease this host (id and generation) holds on disk, exclusive or shared."""
        return drive(self.storage, self.adopt_io())

    def adopt_io(self) -> IO[Leader]:
        """``adopt`` as a step machine."""
        cur, slots = yield from self._read_area()
        mine = slots.get(self.host_id)
        if cur.timestamp and (cur.owner_id, cur.owner_generation) == (self.host_id, self.generation):
            self.leader, self.shared = cur, False
        elif mine is not None and mine.mblock.shared and mine.mblock.generation == self.generation:
            self.leader, self.shared = cur, True
        else:
            raise LockError(
                "RELEASE_OWNER",
                f"{self.resource_name} is not held by host {self.host_id} generation {self.generation} "
                f"(owner {cur.owner_id} generation {cur.owner_generation}, timestamp {cur.timestamp})",
            )
        if mine is not None:
            self._dblock = mine.dblock
        return cur

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Give the lease back: our dblock flagged RELEASED, then the leader's timestamp to 0."""
        drive(self.storage, self.release_io())

    def release_io(self) -> IO[None]:
        """``release`` as a step machine."""
        held = self.leader
        if held is None:
            raise LockError("RELEASE_OWNER", f"{self.resource_name} is not held by this host")
        self._proposed = set()
        if self.shared:
            yield from self._write_own(replace(self._dblock, flags=DBLOCK_FL_RELEASED), ModeBlock())
            self.leader, self.shared = None, False
            return
        yield from self._write_own(replace(self._dblock, flags=DBLOCK_FL_RELEASED))
        try:
            yield from self._release_leader(held)
        except (LockError, OSError) as exc:
            if isinstance(exc, LockError) and exc.name in ("RELEASE_LVER", "RELEASE_OWNER"):
                raise
            # One retry from a fresh read (sanlock retries a failed release asynchronously): a leader
            # left naming this live host would keep every other host waiting. If it fails again the
            # lease stays held here (self.leader), so the caller may release again.
            yield from self._release_leader(held)
        self.leader = None

    def _release_leader(self, held: Leader) -> IO[None]:
        cur = yield from self.read_leader_io()
        if cur.write_id != self.host_id:
            return  # another host committed us; our RELEASED dblock tells the next acquirer
        if cur.lver != held.lver:
            raise LockError("RELEASE_LVER", f"{self.resource_name}: lver is {cur.lver}, we held {held.lver}")
        if (cur.owner_id, cur.owner_generation) != (self.host_id, self.generation):
            raise LockError("RELEASE_OWNER", f"{self.resource_name}: owned by host {cur.owner_id}, not us")
        yield from self._write_leader(
            replace(
                cur, timestamp=0, write_id=self.host_id, write_generation=self.generation,
                write_timestamp=monotime(self.clock), flags=cur.flags & ~LFL_SHORT_HOLD,
            )
        )


def judged_hosts(ld: Leader) -> int:
    """How many dblocks our reads judge: every one of the area (max_hosts), whatever the leader's
    num_hosts says. num_hosts can change at each lease version (SANLK_RES_NUM_HOSTS) and a late
    commit of an older view can bring the old value back, so two hosts in one ballot could trust
    different values; Disk Paxos is safe only if each reads every dblock another may write. Empty
    dblocks cost one comparison per 32 (scan_paxos_sectors); num_hosts still bounds who may run
    (LEADER_NUMHOSTS) and what sanlock hosts read."""
    return max(ld.num_hosts, ld.max_hosts)


def judge_phase(
    buf: bytes | bytearray, sector_size: int, num_hosts: int, host_id: int, mine: DBlock
) -> tuple[DBlock | None, set[tuple[int, int]]]:
    """What a ballot phase concludes from the dblocks it read: the accepted value with the highest
    bal (None: propose ourselves) and the shared holders seen; raises DBLOCK_LVER / DBLOCK_MBAL to abort.
    Pure, and the CPU hot path of every acquire (python -m devkit.bench.decode measures it)."""
    F = SlotField
    best: SlotFields | None = None
    sharers: set[tuple[int, int]] = set()
    for hid, f in scan_paxos_sectors(buf, sector_size, num_hosts):
        if f[F.MODE_FLAGS] & MBLOCK_SHARED and hid != host_id:
            sharers.add((hid, f[F.GENERATION]))
        # A dblock of an older lver is ignored whatever its checksum, so test that first.
        if f[F.LVER] < mine.lver or not slot_checksum_ok(buf, sector_size, hid, f):
            continue
        if f[F.LVER] > mine.lver:
            raise LockError("DBLOCK_LVER", f"host {hid} dblock is at lver {f[F.LVER]}, beyond {mine.lver}")
        if f[F.MBAL] > mine.mbal:
            raise LockError("DBLOCK_MBAL", f"host {hid} ballot {f[F.MBAL]} beats ours {mine.mbal}")
        # an inp without a bal was never accepted
        if f[F.INP] and f[F.BAL] and (best is None or f[F.BAL] > best[F.BAL]):
            best = f
    return (slot_dblock(best) if best is not None else None), sharers


# ---------------------------------------------------------------------- requests


def read_leader(storage: Storage, offset: int, space_name: str, resource_name: str, io_timeout: int = 10) -> Leader:
    """The resource's leader, validated (names, magic, version, checksum)."""
    buf = storage.read(offset, max(storage.sector_size, 512), io_timeout)
    return verify_paxos_leader(buf, space_name, resource_name)


def read_request(storage: Storage, offset: int, geometry: Geometry, io_timeout: int) -> RequestRecord:
    s = geometry.sector_size
    return decode_request(storage.read(offset + s, s, io_timeout), 0)


def request(
    storage: Storage,
    offset: int,
    space_name: str,
    resource_name: str,
    lver: int | None,
    force_mode: int,
    *,
    io_timeout: int = 10,
) -> Leader:
    """Ask the owner to release: write the request record (facts §8 "Requests").

    ``lver`` None means the next version (leader.lver + 1). Returns the leader read; when its
    timestamp is 0 the lease is free and nothing was written. The caller sets the owner's bit.
    """
    return drive(storage, request_io(max(storage.sector_size, 512), offset, space_name, resource_name, lver,
                                     force_mode, io_timeout=io_timeout))


def request_io(
    probe_size: int,
    offset: int,
    space_name: str,
    resource_name: str,
    lver: int | None,
    force_mode: int,
    *,
    io_timeout: int = 10,
) -> IO[Leader]:
    """``request`` as a step machine (``probe_size``: the storage's sector size, at least 512)."""
    if force_mode not in (0, 1, 2):
        raise InputError("force_mode", force_mode, "use 1 (force), 2 (graceful) or 0 (clear)")
    probe = yield from read_io(offset, probe_size, io_timeout)
    ld = verify_paxos_leader(probe, space_name, resource_name)
    s = ld.sector_size
    buf = yield from read_io(offset, 2 * s, io_timeout)
    ld = verify_paxos_leader(buf, space_name, resource_name)
    if ld.timestamp == 0:
        return ld
    want = ld.lver + 1 if lver is None else lver
    clearing = want == 0 and force_mode == 0
    if not clearing and want <= ld.lver:
        raise LockError("REQUEST_OLD", f"{resource_name}: requested lver {want} is not above the current {ld.lver}")
    req = decode_request(buf, s)
    if req.magic != REQ_DISK_MAGIC:
        raise LockError("REQUEST_MAGIC", f"{resource_name}: request record magic 0x{req.magic:08x}")
    if req.version >> 16 != REQ_DISK_VERSION >> 16:
        raise LockError("REQUEST_VERSION", f"{resource_name}: request record version 0x{req.version:08x}")
    if not clearing and req.lver > want:
        raise LockError("REQUEST_LVER", f"{resource_name}: a request for lver {req.lver} is already pending")
    sector = bytearray(s)
    rec = RequestRecord(lver=want, force_mode=force_mode).encode()
    sector[: len(rec)] = rec
    yield from write_io(offset + s, bytes(sector), io_timeout)
    return ld
