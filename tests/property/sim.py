"""Simulated hosts over one real file: each with its own DirectStorage (own fd) behind a FaultyStorage.

A host is modelled the way sanlock's safety argument needs it:

* it joins the lockspace with a real ``DeltaLease.acquire``, then a *renewer* actor renews every
  2·io (0.5 s after a failure) and feeds its ``HostTable``;
* a *watchdog* actor resets the host (kills all its actors, every process dies, nothing more is
  written) at the latest moment a real watchdog could fire: ``last_success + 8·io + fire_timeout``;
  a host whose renewal finds its record corrupt stops renewing and waits for that reset, holding
  whatever it believes it holds until then — the worst case;
* a *workload* actor runs a hypothesis-drawn program of acquire / hold / release / crash steps.

What a host *believes* is recorded at the instant ``acquire`` returns and dropped at the instant it
calls ``release`` or dies; the invariant checker runs at every scheduling point.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devkit.faults import FaultRules, FaultyStorage, IoRecord
from lockengine.delta import DeltaLease, HostTable
from lockengine.errors import LockError
from lockengine.liveness import DeltaOwnerLiveness
from lockengine.ondisk import (
    Geometry,
    Leader,
    decode_delta_sector,
    decode_leader,
    decode_mblock,
    leader_checksum_ok,
)
from lockengine.paxos import PaxosLease
from lockengine.storage import DirectStorage
from tests.support.testdisk import LS, LS_OFFSET, RES, RES_OFFSET, make_disk  # noqa: F401 - re-exported

from .vtime import Actor, VirtualTime

IO = 1
FIRE = 2
HOST_DEAD = 8 * IO + FIRE
# Corrupt results end the lockspace at once (sanlock-facts §6); other renewal errors are retried.
CORRUPT = {
    "RENEW_OWNER", "RENEW_DIFF", "LEADER_MAGIC", "LEADER_VERSION", "LEADER_SECTORSIZE",
    "LEADER_LOCKSPACE", "LEADER_CHECKSUM",
}
EPSILON = 1e-3


@dataclass
class Belief:
    kind: str  # "ex" or "sh"
    generation: int
    lver: int


@dataclass
class Step:
    op: str  # acquire | hold | release | idle | crash | heal
    shared: bool = False
    seconds: float = 0.0
    restart: float | None = None  # crash: come back after this many seconds (None: stay down)


@dataclass(eq=False)
class SimHost:
    """One simulated host: storage path, delta lease, host table, resource lease, actors."""

    world: World
    host_id: int
    name: str
    rules: FaultRules
    program: list[Step]
    start: float = 0.0
    alive: bool = False
    joined: bool = False
    lockspace_failed: bool = False
    belief: Belief | None = None
    lives: int = 0
    actors: list[Actor] = field(default_factory=list)
    storage: FaultyStorage | None = None
    delta: DeltaLease | None = None
    table: HostTable | None = None
    paxos: PaxosLease | None = None
    acquired: int = 0
    refusals: dict[str, int] = field(default_factory=dict)

    def open(self) -> None:
        w = self.world
        direct = DirectStorage(str(w.path))
        self.storage = FaultyStorage(
            direct, random.Random(w.seed * 1009 + self.host_id), self.rules,
            sleep=w.vt.sleep, gate=w.vt.io_gate, observer=w.on_io, name=self.name,
        )

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()

    # ------------------------------------------------------------------ life and death

    def boot(self, delay: float) -> None:
        self.actors = [self.world.vt.spawn(f"{self.name}.life{self.lives}", self._life, delay)]

    def _spawn(self, what: str, fn: Callable[[], None], delay: float = 0.0) -> None:
        self.actors.append(self.world.vt.spawn(f"{self.name}.{what}{self.lives}", fn, delay))

    def crash(self) -> None:
        """Power off: beliefs vanish with the processes; no actor of this host runs again."""
        if self.belief is not None:
            self.world.orphaned += 1  # the lease stays held on disk by a dead host
        self.set_belief(None)
        self.alive = False
        self.joined = False
        me = self.world.vt.current()
        for a in self.actors:
            if a is not me:
                self.world.vt.kill(a)

    def set_belief(self, belief: Belief | None) -> None:
        self.belief = belief
        self.world.dirty = True

    def _life(self) -> None:
        w = self.world
        assert self.storage is not None
        self.lives += 1
        self.alive, self.lockspace_failed, self.joined = True, False, False
        self.delta = DeltaLease(
            self.storage, LS, self.host_id, LS_OFFSET, host_name=self.name, io_timeout=IO,
            geometry=w.geometry, fire_timeout=FIRE, clock=w.vt.clock, sleep=w.vt.engine_sleep,
        )
        self.table = HostTable(LS, w.geometry, self.host_id, FIRE, IO)
        for _ in range(3):
            try:
                self.delta.acquire()
                break
            except (LockError, OSError):
                w.vt.sleep(0.5)
        else:
            self.alive = False
            return
        self.joined = True
        liveness = DeltaOwnerLiveness(
            self.storage, LS_OFFSET, LS, w.geometry, io_timeout=IO, fire_timeout=FIRE,
            table=self.table, clock=w.vt.clock,
        )
        self.paxos = PaxosLease(
            self.storage, LS, RES, RES_OFFSET, host_id=self.host_id, generation=self.delta.generation,
            geometry=w.geometry, io_timeout=IO, liveness=liveness, clock=w.vt.clock,
            sleep=w.vt.engine_sleep, rng=random.Random(w.seed * 7919 + self.host_id * 31 + self.lives),
        )
        self._spawn("renew", self._renewer, 2 * IO)
        self._spawn("wd", self._watchdog)
        self._workload()

    def _renewer(self) -> None:
        w = self.world
        delta, table = self.delta, self.table
        assert delta is not None and table is not None
        while True:
            try:
                area = delta.renew()
            except LockError as exc:
                if exc.name in CORRUPT:
                    self.lockspace_failed = True
                    return  # recovery: no more renewals; the watchdog resets us in time
                w.vt.sleep(0.5)
                continue
            except OSError:
                w.vt.sleep(0.5)
                continue
            table.observe(area, w.vt.clock())
            w.vt.sleep(max(0.0, delta.last_success + 2 * IO - w.vt.clock()))

    def _watchdog(self) -> None:
        w = self.world
        delta = self.delta
        assert delta is not None
        while True:
            deadline = delta.last_success + 8 * IO + FIRE - EPSILON
            if w.vt.clock() >= deadline:
                w.resets.append((self.name, w.vt.clock()))
                self.crash()
                return
            w.vt.sleep(deadline - w.vt.clock())

    # ------------------------------------------------------------------ workload

    def _workload(self) -> None:
        w = self.world
        for i, step in enumerate(self.program):
            if step.op in ("idle", "hold"):
                w.vt.sleep(step.seconds)
            elif step.op == "heal":
                assert self.storage is not None
                self.storage.heal()
            elif step.op == "acquire":
                self._acquire(step.shared)
            elif step.op == "release":
                self._release()
            elif step.op == "crash":
                self.crash()
                if step.restart is not None:
                    # A fresh daemon: same host name (fast path), new generation, no memory.
                    self.program = self.program[i + 1 :]
                    self.boot(step.restart)
                return

    def _acquire(self, shared: bool) -> None:
        if self.belief is not None or self.lockspace_failed or self.paxos is None:
            return
        try:
            ld = self.paxos.acquire(shared=shared)
        except (LockError, OSError) as exc:
            name = exc.name if isinstance(exc, LockError) else "OSError"
            self.refusals[name] = self.refusals.get(name, 0) + 1
            return
        self.acquired += 1
        if self.world.orphaned:
            self.world.takeovers += 1
        self.set_belief(Belief("sh" if shared else "ex", self.paxos.generation, ld.lver))

    def _release(self) -> None:
        if self.belief is None or self.paxos is None:
            return
        self.set_belief(None)
        with contextlib.suppress(LockError, OSError):  # a failed release is an allowed outcome
            self.paxos.release()


class World:
    """All hosts of one run, the scheduler, and the invariant checker."""

    def __init__(self, path: Path, geometry: Geometry, seed: int) -> None:
        self.path = path
        self.geometry = geometry
        self.seed = seed
        self.vt = VirtualTime(random.Random(seed))
        self.hosts: list[SimHost] = []
        self.dirty = True
        self.resets: list[tuple[str, float]] = []
        self.lver_owner: dict[int, tuple[int, int]] = {}
        self.checks = 0
        self.orphaned = 0  # holders that died holding
        self.takeovers = 0  # acquisitions after such a death
        self.stale_leaders = 0  # checks that found an older version's late commit on disk
        self.redecided = 0  # versions whose owner changed after the first owner stopped believing
        self._reader = DirectStorage(str(path))

    def add_host(self, host_id: int, rules: FaultRules, program: list[Step], start: float = 0.0) -> SimHost:
        h = SimHost(self, host_id, f"host{host_id}", rules, program, start)
        h.open()
        self.hosts.append(h)
        return h

    def on_io(self, rec: IoRecord) -> None:
        if rec.landed:
            self.dirty = True

    def run(self, until: float) -> None:
        for h in self.hosts:
            h.boot(h.start)
        try:
            self.vt.run(self.vt.now + until, self.check)
        finally:
            for h in self.hosts:
                h.close()
            self._reader.close()

    # ------------------------------------------------------------------ invariants

    def check(self) -> None:
        ex = [h for h in self.hosts if h.belief is not None and h.belief.kind == "ex"]
        sh = [h for h in self.hosts if h.belief is not None and h.belief.kind == "sh"]
        for h in ex + sh:
            assert h.alive, f"{h.name} is reset but still believes it holds {RES}"
        assert len(ex) <= 1, f"two exclusive owners of {RES} at {self.vt.now:.3f}: {[h.name for h in ex]}"
        assert not (ex and sh), (
            f"exclusive {ex[0].name} and shared {[h.name for h in sh]} hold {RES} together at {self.vt.now:.3f}"
        )
        if not self.dirty:
            return
        self.dirty = False
        self.checks += 1
        s = self.geometry.sector_size
        span = (max(h.host_id for h in self.hosts) + 2) * s
        buf = self._reader.read(RES_OFFSET, span, 10)
        if leader_checksum_ok(buf, 0):
            ld = decode_leader(buf, 0)
            if ld.owner_id:
                self._check_agreement(ld)
            if ex:
                self._check_leader_of(ex[0], ld)
        for h in sh:
            mb = decode_mblock(buf, (h.host_id + 1) * s)
            b = h.belief
            assert b is not None
            assert mb.shared and mb.generation == b.generation, (
                f"{h.name} believes it holds {RES} shared but its mode block is {mb}"
            )

    def _check_agreement(self, ld: Leader) -> None:
        """Once a version is committed, it may name another owner only if the owner it named first
        no longer believes it holds that version.

        A version is re-decided when a stale leader (a commit that landed late and rolled the
        leader back) sends a host into a second ballot for a version already chosen. That is safe
        only while every accepted value survives on disk: Paxos then makes the second ballot adopt
        the same value. sanlock's phase 1 zeroes bal/inp, which can erase the last copy of the
        chosen value, and then a different owner is committed — *not* harmless in general: issue
        8's counterexample (tests/exhaustive, world late_commit) ends with two live believers.
        lockengine's phase 1 keeps bal/inp (docs/ondisk.md). This check still fails only when the
        first owner still believes it holds the version; the exhaustive check's consistency
        invariant (one decided value per lver) is the strict one."""
        now = (ld.owner_id, ld.owner_generation)
        first = self.lver_owner.setdefault(ld.lver, now)
        if first == now:
            return
        for h in self.hosts:
            b = h.belief
            assert not (b is not None and (h.host_id, b.generation, b.lver) == (*first, ld.lver)), (
                f"lver {ld.lver} committed to host {first}, which still holds it, and later to {now}"
            )
        self.lver_owner[ld.lver] = now
        self.redecided += 1

    def _check_leader_of(self, holder: SimHost, ld: Leader) -> None:
        """The disk must name the exclusive holder at its version, and never show a newer one.

        A leader *older* than the holder's version is allowed: a host that lost the race may have
        committed the previous version (same owner, by Paxos agreement) with a write that lands
        late, over the holder's. Safety then rests on the ballots, which the lver agreement check
        above covers; each such landing is counted in ``stale_leaders``."""
        b = holder.belief
        assert b is not None
        what = (
            f"{holder.name} believes it holds lver {b.lver} gen {b.generation}; disk leader names host "
            f"{ld.owner_id} gen {ld.owner_generation} lver {ld.lver} ts {ld.timestamp}"
        )
        assert ld.lver <= b.lver, what
        if ld.lver < b.lver:
            self.stale_leaders += 1
            return
        assert (ld.owner_id, ld.owner_generation) == (holder.host_id, b.generation), what
        assert ld.timestamp != 0, f"{holder.name} holds {RES} but the disk leader is free: {what}"


class DeltaWorld:
    """Several DeltaLease instances, each a different host name, racing for one host_id."""

    def __init__(self, path: Path, geometry: Geometry, seed: int, host_id: int) -> None:
        self.path = path
        self.geometry = geometry
        self.seed = seed
        self.host_id = host_id
        self.vt = VirtualTime(random.Random(seed))
        self.contenders: list[Contender] = []
        self.resets: list[tuple[str, float]] = []
        self.successes: list[tuple[str, float]] = []
        self.dirty = True
        self._reader = DirectStorage(str(path))

    def add(self, name: str, rules: FaultRules, start: float, hold: float, end: str) -> Contender:
        c = Contender(self, name, rules, start, hold, end)
        self.contenders.append(c)
        return c

    def on_io(self, rec: IoRecord) -> None:
        if rec.landed:
            self.dirty = True

    def run(self, until: float) -> None:
        for c in self.contenders:
            c.boot()
        try:
            self.vt.run(self.vt.now + until, self.check)
        finally:
            for c in self.contenders:
                c.close()
            self._reader.close()

    def check(self) -> None:
        holders = [c for c in self.contenders if c.holds]
        for c in holders:
            assert c.alive, f"{c.name} is reset but still believes it holds host id {self.host_id}"
        assert len(holders) <= 1, (
            f"two holders of host id {self.host_id} at {self.vt.now:.3f}: {[c.name for c in holders]}"
        )
        if not self.dirty:
            return
        self.dirty = False
        s = self.geometry.sector_size
        raw = self._reader.read(LS_OFFSET + self.geometry.host_offset(self.host_id), s, 10)
        if holders and leader_checksum_ok(raw, 0):
            ld = decode_delta_sector(raw, 0).leader
            c = holders[0]
            assert c.delta is not None
            assert (ld.resource_name, ld.owner_generation) == (c.name, c.delta.generation), (
                f"{c.name} holds host id {self.host_id} gen {c.delta.generation} but the slot names "
                f"{ld.resource_name!r} gen {ld.owner_generation}"
            )


@dataclass(eq=False)
class Contender:
    world: DeltaWorld
    name: str
    rules: FaultRules
    start: float
    hold: float
    end: str  # release | crash | keep
    alive: bool = True
    holds: bool = False
    delta: DeltaLease | None = None
    storage: FaultyStorage | None = None
    outcome: str = ""
    actors: list[Actor] = field(default_factory=list)

    def boot(self) -> None:
        w = self.world
        self.storage = FaultyStorage(
            DirectStorage(str(w.path)), random.Random(w.seed * 613 + w.contenders.index(self)), self.rules,
            sleep=w.vt.sleep, gate=w.vt.io_gate, observer=w.on_io, name=self.name,
        )
        self.delta = DeltaLease(
            self.storage, LS, w.host_id, LS_OFFSET, host_name=self.name, io_timeout=IO, geometry=w.geometry,
            fire_timeout=FIRE, clock=w.vt.clock, sleep=w.vt.engine_sleep,
        )
        self.actors.append(w.vt.spawn(f"{self.name}.main", self._main, self.start))

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()

    def crash(self) -> None:
        self.holds = False
        self.alive = False
        me = self.world.vt.current()
        for a in self.actors:
            if a is not me:
                self.world.vt.kill(a)

    def _main(self) -> None:
        w = self.world
        delta = self.delta
        assert delta is not None
        try:
            delta.acquire()
        except (LockError, OSError) as exc:
            self.outcome = exc.name if isinstance(exc, LockError) else "OSError"
            return
        self.holds = True
        self.outcome = "acquired"
        w.successes.append((self.name, w.vt.clock()))
        w.dirty = True
        self.actors.append(w.vt.spawn(f"{self.name}.renew", self._renewer, 2 * IO))
        self.actors.append(w.vt.spawn(f"{self.name}.wd", self._watchdog))
        w.vt.sleep(self.hold)
        if self.end == "release":
            self.holds = False
            for a in self.actors[1:]:
                w.vt.kill(a)  # stop renewing first, as rem_lockspace does
            with contextlib.suppress(LockError, OSError):
                delta.release()
        elif self.end == "crash":
            self.crash()

    def _renewer(self) -> None:
        w = self.world
        delta = self.delta
        assert delta is not None
        while True:
            try:
                delta.renew()
            except LockError as exc:
                if exc.name in CORRUPT:
                    return  # recovery: stop renewing, the watchdog resets us in time
                w.vt.sleep(0.5)
                continue
            except OSError:
                w.vt.sleep(0.5)
                continue
            w.vt.sleep(max(0.0, delta.last_success + 2 * IO - w.vt.clock()))

    def _watchdog(self) -> None:
        w = self.world
        delta = self.delta
        assert delta is not None
        while True:
            deadline = delta.last_success + 8 * IO + FIRE - EPSILON
            if w.vt.clock() >= deadline:
                w.resets.append((self.name, w.vt.clock()))
                self.crash()
                return
            w.vt.sleep(deadline - w.vt.clock())
