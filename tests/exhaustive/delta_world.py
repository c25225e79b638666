"""Exhaustive check of the production delta lease (``lockengine/delta.py``): every interleaving of
disk I/O *and time*, bounded (docs/testing.md, "Exhaustive check: the delta lease").

Several hosts, each with its own host name, race for host id 1 of one lockspace. Each operation
(acquire, renew, release) runs the real ``DeltaLease`` method on a thread of its own against a
storage seam and a sleeper seam that park the thread until the explorer answers, so each disk read,
each disk write and each sleep is one step. Time is a model variable ``T`` (whole seconds) that only
the ``tick`` step advances; each host's clock is ``T`` plus a per-host offset (hosts never compare
clocks, and the offsets show it).

The timing the algorithm relies on is written down as the enabling rules of ``tick``:

* an I/O issued at ``t`` with timeout ``d`` (the timeout the production code passes to storage)
  completes at some ``T`` in ``[t, t + d]``, or fails (``err``: AIO error, nothing written), or
  hangs (``hang``: its caller gets AIO_TIMEOUT at ``t + d`` and the write lands later, or never);
* a sleep of ``s`` seconds ends exactly at ``t + s`` (time cannot pass a due sleeper);
* between two I/Os of one operation no time passes (the host computes in no time).

A host believes it holds the host id from a successful acquire until the first of: its release
starts, it crashes (a reset: the watchdog fenced it), or its own clock reaches
``last_success + 8·io`` (the daemon's supervisor fails the lockspace then; a renewal that returns
later changes nothing — ``Lockspace._renew_once`` checks the state). A renewal that finds the slot
corrupt or taken (RENEW_OWNER, RENEW_DIFF, LEADER_*) fails the lockspace: no more renewals, the belief
runs out at its expiry. Renewals start whenever the explorer likes (at most one per host per second,
a per-host budget): never renewing is the *stall*.

Invariants at every state: never two hosts that both believe they hold the host id; and an
observer (a host whose renewal reads feed a production ``HostTable``) never has
``DeltaOwnerLiveness.holder_dead`` true for a generation a live holder holds.

Exploration: a state is plain data (T, the disk sectors in use, per host its model fields, the
``DeltaLease`` fields when its current operation began and every answer that operation has been
given, with the time of each). Threads cannot be copied, so a host's thread is rebuilt on demand by
re-running *only its current operation* from those fields and answers (at most a handful of steps);
its behaviour is a function of exactly them (no wall clock, no randomness in delta.py), so equal
states have equal futures and the shared search (``search.py``) merges them exactly (states, not
hashes, are kept).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lockengine.daemon.lockspace import CORRUPT
from lockengine.delta import DeltaLease, HostTable
from lockengine.errors import LockError
from lockengine.liveness import DeltaOwnerLiveness
from lockengine.ondisk import LEADER_SIZE, Geometry, decode_leader, lockspace_area, new_delta_leader
from lockengine.timeouts import Timeouts

from . import search

SPACE = "ls"
GEOMETRY = Geometry(512, 1 << 20)
HOST_ID = 1
SPAN = 2 * GEOMETRY.sector_size  # the sectors anyone writes (host id 1's slot, and one spare)
Step = search.Step
LeaseFactory = Callable[..., DeltaLease]
TableFactory = Callable[..., HostTable]
# DeltaLease attributes that are seams or constructor constants, not state carried between operations.
SEAMS = frozenset({
    "storage", "space_name", "host_id", "offset", "host_name", "io_timeout", "fire_timeout", "timeouts",
    "clock", "_sleep", "geometry", "_lock",
    "_area",  # the renewal's read buffer: made equal to each read, so it carries no state between steps
})


class Unwind(BaseException):
    """Raised from a seam to end a host thread (crash, or a rebuilt thread); the lease code catches
    only LockError and OSError."""


# ---------------------------------------------------------------------- worlds


@dataclass(frozen=True)
class Op:
    kind: str  # "acquire" | "release"
    lo: int = 0  # earliest start time
    hi: int | None = None  # it must have started by then (None: it may never start)


@dataclass(frozen=True)
class HostSpec:
    name: str
    script: tuple[Op, ...]
    restart_script: tuple[Op, ...] = ()
    renewals: int = 0  # renewals this host may start (each incarnation)
    # An observer: a host that holds another host id; each of its renewals reads the lockspace and
    # feeds its HostTable (as Lockspace._renew_once does). It holds no script; this is how many.
    observes: int = 0
    clock_offset: int = 0  # its clock reads T + clock_offset


@dataclass(frozen=True)
class DeltaWorld:
    """The bounds of one exhaustive run over the delta lease."""

    name: str
    hosts: tuple[HostSpec, ...]
    horizon: int  # time stops here
    io_timeout: int = 1
    fire_timeout: int = 1
    hangs: int = 0  # writes that may hang (land after their caller's timeout, or never)
    hang_in: tuple[str, ...] = ()  # only writes of these operations may hang (empty: any)
    errors: int = 0  # I/Os that may fail (AIO_TIMEOUT, nothing written)
    crashes: int = 0
    # Prompt storage: every I/O completes within io_timeout (or fails/hangs by the budgets above).
    # Otherwise an I/O may take as long as the timeout the code passes (9 s for a renewal write).
    prompt: bool = False

    def describe(self) -> str:
        def script(ops: tuple[Op, ...]) -> str:
            return "+".join(f"{o.kind}@{o.lo}..{'' if o.hi is None else o.hi}" for o in ops) or "-"

        hosts = ", ".join(
            f"{h.name}:{script(h.script)}{' restart ' + script(h.restart_script) if h.restart_script else ''}"
            f"{f' renew<={h.renewals}' if h.renewals or not h.observes else ''}"
            f"{f' observe<={h.observes}' if h.observes else ''}" for h in self.hosts
        )
        return (
            f"{self.name} [{hosts}; T<={self.horizon} io={self.io_timeout} fire={self.fire_timeout}; "
            f"hangs={self.hangs}{' in ' + '/'.join(self.hang_in) if self.hang_in else ''}; "
            f"errors={self.errors}; crashes={self.crashes}; {'prompt' if self.prompt else 'slow'} I/O]"
        )


# ---------------------------------------------------------------------- model state (plain data)


@dataclass(frozen=True)
class Pending:
    kind: str  # "read" | "write" | "sleep"
    offset: int = 0
    length: int = 0
    data: bytes = b""
    due: int = 0  # read/write: completes by then (issue + its latency bound); sleep: wake time
    timeout_at: int = 0  # read/write: when its caller's timeout fires (issue + the timeout it passed)
    hung: bool = False


@dataclass(frozen=True)
class Belief:
    generation: int
    last_success: float  # on the host's own clock


@dataclass(frozen=True)
class HostState:
    up: bool = True
    incarnation: int = 1
    pos: int = 0  # next op of the current script
    belief: Belief | None = None
    failed: bool = False  # lockspace failed: no more renewals until the next acquire
    renews: int = 0
    last_renew: int = -1
    lease: tuple[Any, ...] | None = None  # DeltaLease fields (None: no lease object yet)
    op: str | None = None
    op_t: int = 0
    inputs: tuple[tuple[int, Any], ...] = ()  # (time, answer) handed to the current op
    pending: Pending | None = None
    seen: tuple[tuple[float, bytes], ...] = ()  # an observer's reads: (its clock at the start, the disk)


@dataclass(frozen=True)
class LateWrite:
    host: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class State:
    t: int
    disk: bytes  # the first SPAN bytes of the lockspace; the rest never changes
    hosts: tuple[HostState, ...]
    late: tuple[LateWrite, ...] = ()
    hangs: int = 0
    errors: int = 0
    crashes: int = 0


@functools.cache
def _area(io_timeout: int) -> bytes:
    """The lockspace as init leaves it once committed (record 1's magic written last)."""
    area = lockspace_area(SPACE, GEOMETRY, io_timeout)
    return new_delta_leader(SPACE, GEOMETRY, io_timeout).encode() + area[LEADER_SIZE:]


def snapshot(lease: DeltaLease) -> tuple[Any, ...]:
    """The lease's state fields (everything but seams), hashable."""
    out = []
    for k, v in sorted(vars(lease).items()):
        if k in SEAMS:
            continue
        if isinstance(v, dict):
            v = ("__dict__", tuple(sorted(v.items())))
        out.append((k, v))
    return tuple(out)


def restore(lease: DeltaLease, snap: tuple[Any, ...]) -> None:
    for k, v in snap:
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "__dict__":
            v = dict(v[1])
        setattr(lease, k, v)


# ---------------------------------------------------------------------- host threads


class HostThread:
    """One operation of one host, run on a thread of its own, parked at each I/O and sleep."""

    def __init__(self, run: Run, index: int, op: str, lease_fields: tuple[Any, ...] | None, t: int) -> None:
        self.run = run
        self.index = index
        self.op = op
        self.now = t
        self.key: tuple[Any, ...] = (op, lease_fields, t, ())
        self.pending: Pending | None = None
        self.result: tuple[str, tuple[Any, ...] | None] | None = None
        self._answer: Any = None
        self._go, self._back = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._back.acquire()
        spec = run.world.hosts[index]
        self.lease = run.lease_factory(
            self, SPACE, HOST_ID, 0, host_name=spec.name, io_timeout=run.world.io_timeout, geometry=GEOMETRY,
            fire_timeout=run.world.fire_timeout, clock=lambda: float(self.now + spec.clock_offset), sleep=self.sleep,
        )
        assert set(vars(self.lease)) - SEAMS >= {"generation", "last_success", "_last_written"}
        if lease_fields is not None:
            restore(self.lease, lease_fields)
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self._back.acquire()  # until it parks or ends

    # the storage seam (the lease's ``storage``)
    path = "mem:delta"
    sector_size = GEOMETRY.sector_size

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        disk = self._gate(Pending("read", offset, length, b"", self.now + self._within(timeout),
                                  self.now + int(timeout)))
        assert isinstance(disk, bytes)
        if offset + length <= SPAN:
            return disk[offset : offset + length]
        return _full(disk, self.run.world.io_timeout)[offset : offset + length]

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        assert offset + len(data) <= SPAN, (offset, len(data))
        self._gate(Pending("write", offset, len(data), bytes(data), self.now + self._within(timeout),
                           self.now + int(timeout)))

    def _within(self, timeout: float) -> int:
        w = self.run.world
        return min(int(timeout), w.io_timeout) if w.prompt else int(timeout)

    def size(self) -> int:
        return len(_area(self.run.world.io_timeout))

    def close(self) -> None:
        pass

    # the sleeper seam
    def sleep(self, seconds: float, abort: threading.Event | None, what: str) -> None:
        assert seconds == int(seconds) and seconds >= 0
        self._gate(Pending("sleep", due=self.now + int(seconds)))

    def _gate(self, p: Pending) -> Any:
        self.pending = p
        self._back.release()
        self._go.acquire()
        answer, self._answer = self._answer, None
        self.pending = None
        if answer == "unwind":
            raise Unwind()
        if isinstance(answer, tuple):  # ("error", why): the I/O failed
            raise LockError("AIO_TIMEOUT", f"explorer: {answer[1]}")
        return answer

    def _main(self) -> None:
        try:
            try:
                if self.op == "acquire":
                    self.lease.acquire()
                elif self.op == "renew":
                    self.lease.renew()
                elif self.op == "release":
                    self.lease.release()
                else:
                    raise AssertionError(self.op)
                self.result = ("ok", snapshot(self.lease))
            except LockError as exc:
                self.result = (exc.name, snapshot(self.lease))
            except OSError as exc:
                self.result = (f"OSError {exc.errno}", snapshot(self.lease))
        except Unwind:
            self.result = None
        finally:
            self._back.release()

    def answer(self, t: int, value: Any) -> None:
        """Hand the parked thread its answer; return once it parks again or ends."""
        self.now = t
        self._answer = value
        self.key = (*self.key[:3], (*self.key[3], (t, value)))
        self._go.release()
        self._back.acquire()

    def kill(self) -> None:
        if self.result is None and self.pending is not None:
            self.now, self._answer = self.now, "unwind"
            self._go.release()
            self._back.acquire()
        self.thread.join()


# ---------------------------------------------------------------------- the run


class Run:
    """Steps over plain ``State`` values; host threads are built and cached on demand."""

    def __init__(self, world: DeltaWorld, *, lease_factory: LeaseFactory = DeltaLease,
                 table_factory: TableFactory = HostTable) -> None:
        self.world = world
        self.lease_factory = lease_factory
        self.table_factory = table_factory
        self.threads: dict[int, HostThread] = {}
        self.memo: dict[tuple[int, Any], tuple[Any, ...]] = {}
        self.tables: dict[Any, HostTable] = {}
        self.dead_memo: dict[Any, bool] = {}
        self.fail_after = Timeouts(world.io_timeout, world.fire_timeout).id_renewal_fail_seconds

    def initial(self) -> State:
        return State(0, _area(self.world.io_timeout)[:SPAN], tuple(HostState() for _ in self.world.hosts))

    def close(self) -> None:
        for th in self.threads.values():
            th.kill()
        self.threads.clear()

    # -------------------------------------------------------------- enabled steps

    def script(self, h: HostState, i: int) -> tuple[Op, ...]:
        spec = self.world.hosts[i]
        return spec.script if h.incarnation == 1 else spec.restart_script

    def enabled(self, s: State) -> list[Step]:
        w = self.world
        out: list[Step] = []
        tick = s.t < w.horizon
        for i, h in enumerate(s.hosts):
            if not h.up:
                if self.world.hosts[i].restart_script:
                    out.append(("restart", i))
                continue
            p = h.pending
            if h.op is None:
                script = self.script(h, i)
                if h.pos < len(script):
                    op = script[h.pos]
                    if op.lo <= s.t:
                        out.append(("start", i))
                    if op.hi is not None and op.hi <= s.t:
                        tick = False  # it must start now
                if (
                    h.belief is not None and not h.failed and h.renews < w.hosts[i].renewals
                    and h.last_renew < s.t
                ):
                    out.append(("renew", i))
                if h.renews < w.hosts[i].observes and h.last_renew < s.t:
                    out.append(("observe", i))
            elif p is not None:
                if p.kind == "sleep":
                    if p.due <= s.t:
                        out.append(("io", i))
                        tick = False  # a sleep ends on time
                elif p.hung:
                    if p.timeout_at <= s.t:
                        out.append(("timeout", i))
                        tick = False
                else:
                    out.append(("io", i))
                    if s.errors < w.errors:
                        out.append(("err", i))
                    if p.kind == "write" and s.hangs < w.hangs and (not w.hang_in or h.op in w.hang_in):
                        out.append(("hang", i))
                    if p.due <= s.t:
                        tick = False  # it completes (or fails) by its deadline
            if s.crashes < w.crashes:
                out.append(("crash", i))
        for k in range(len(s.late)):
            out.append(("land", k))
        if tick:
            out.append(("tick", -1))
        return out

    # -------------------------------------------------------------- applying a step

    def _run_op(self, i: int, h: HostState, answer: tuple[int, Any] | None) -> tuple[Any, ...]:
        """What host i's current operation does next once handed ``answer`` (None: it starts):
        ("park", Pending) or ("end", outcome, lease fields). A function of (host, op, lease fields
        at its start, start time, answers so far), so it is memoised; a thread runs only on a miss."""
        assert h.op is not None
        key = (h.op, h.lease, h.op_t, h.inputs)
        nkey = key if answer is None else (h.op, h.lease, h.op_t, (*h.inputs, answer))
        hit = self.memo.get((i, nkey))
        if hit is not None:
            return hit
        th = self.threads.get(i)
        if th is None or th.key != key or th.result is not None:
            if th is not None:
                th.kill()
            th = HostThread(self, i, h.op, h.lease, h.op_t)
            for t, value in h.inputs:
                th.answer(t, value)
            self.threads[i] = th
        if answer is not None:
            th.answer(*answer)
        assert th.key == nkey
        out: tuple[Any, ...]
        if th.result is None:
            assert th.pending is not None
            out = ("park", th.pending)
        else:
            out = ("end", *th.result)
            del self.threads[i]
        self.memo[(i, nkey)] = out
        return out

    def _advance(self, s: State, i: int, h: HostState, answer: tuple[int, Any] | None,
                 log: list[str] | None) -> State:
        """Hand host i's operation its answer and fold what it does next into the state."""
        out = self._run_op(i, h, answer)
        if out[0] == "park":
            inputs = h.inputs if answer is None else (*h.inputs, answer)
            return self._set(s, i, replace(h, inputs=inputs, pending=out[1]))
        _, outcome, fields = out
        name = self.world.hosts[i].name
        if log is not None:
            log.append(f"T={s.t} {name} {h.op}: {outcome}")
        got = dict(fields)
        belief = h.belief
        failed = h.failed
        if h.op == "acquire":
            if outcome == "ok":
                belief = Belief(got["generation"], got["last_success"])
                failed = False
                if log is not None:
                    log.append(f"T={s.t} {name} holds host id {HOST_ID} gen {belief.generation} "
                               f"(last_success {belief.last_success:g} on its clock)")
        elif h.op == "renew":
            if outcome == "ok":
                if belief is not None:
                    belief = Belief(belief.generation, got["last_success"])
            elif outcome in CORRUPT:
                failed = True
        h = replace(h, op=None, op_t=0, inputs=(), pending=None, lease=fields, belief=belief, failed=failed)
        return self._set(s, i, h)

    @staticmethod
    def _set(s: State, i: int, h: HostState) -> State:
        return replace(s, hosts=(*s.hosts[:i], h, *s.hosts[i + 1 :]))

    def apply(self, s: State, step: Step, log: list[str] | None = None) -> State:
        kind, i = step
        w = self.world
        if kind == "tick":
            s = replace(s, t=s.t + 1)
            if log is not None:
                log.append(f"T={s.t}")
        elif kind == "land":
            lw = s.late[i]
            if log is not None:
                log.append(f"T={s.t} late write of {w.hosts[lw.host].name} lands: {_describe(lw.data)}")
            s = replace(s, disk=_write(s.disk, lw.offset, lw.data), late=(*s.late[:i], *s.late[i + 1 :]))
        else:
            s = self._host_step(s, kind, i, log)
        return self._expire(s, log)

    def _host_step(self, s: State, kind: str, i: int, log: list[str] | None) -> State:
        h = s.hosts[i]
        name = self.world.hosts[i].name
        if kind == "start" or kind == "renew":
            if kind == "start":
                op = self.script(h, i)[h.pos].kind
                h = replace(h, pos=h.pos + 1)
            else:
                op = "renew"
                h = replace(h, renews=h.renews + 1, last_renew=s.t)
            if op == "release":
                h = replace(h, belief=None)  # it stopped using the host id before its release's first I/O
                if h.lease is None:
                    return self._set(s, i, h)
            if op == "acquire":
                # A new DeltaLease, as the daemon's join makes, handed the record of this incarnation's
                # last clean release (the daemon's CleanReleases; a restart forgets it).
                released = dict(h.lease or ()).get("released")
                h = replace(h, lease=(("released", released),) if released is not None else None, belief=None)
            if log is not None:
                log.append(f"T={s.t} {name} starts {op}")
            h = replace(h, op=op, op_t=s.t, inputs=())
            return self._advance(s, i, h, None, log)
        if kind == "observe":
            if log is not None:
                log.append(f"T={s.t} {name} starts a renewal (observes the lockspace)")
            io = self.world.io_timeout
            read = Pending("read", 0, GEOMETRY.align_size, b"", s.t + io, s.t + io)
            h = replace(h, renews=h.renews + 1, last_renew=s.t, op="observe", op_t=s.t, pending=read)
            return self._set(s, i, h)
        if kind == "crash":
            old = self.threads.pop(i, None)
            if old is not None:
                old.kill()
            if log is not None:
                log.append(f"T={s.t} {name} crashes (reset: fenced at once)")
            p = h.pending
            late = s.late
            if p is not None and p.hung:  # a hung write outlives its host; an unhung pending one is lost
                late = (*late, LateWrite(i, p.offset, p.data))
            h = replace(h, up=False, belief=None, op=None, inputs=(), pending=None)
            return replace(self._set(s, i, h), crashes=s.crashes + 1, late=late)
        if kind == "restart":
            if log is not None:
                log.append(f"T={s.t} {name} restarts")
            return self._set(s, i, HostState(incarnation=h.incarnation + 1))
        p = h.pending
        assert p is not None
        if h.op == "observe":  # no lease code runs: the read feeds the observer's HostTable
            if kind == "io":
                if log is not None:
                    log.append(f"T={s.t} {name} reads the lockspace: {_describe(s.disk)}")
                start = float(h.op_t + self.world.hosts[i].clock_offset)
                h = replace(h, seen=(*h.seen, (start, s.disk)))
            else:
                assert kind == "err"
                if log is not None:
                    log.append(f"T={s.t} {name}'s read fails (AIO_TIMEOUT)")
                s = replace(s, errors=s.errors + 1)
            return self._set(s, i, replace(h, op=None, op_t=0, pending=None))
        answer: tuple[int, Any]
        if kind == "io" and p.kind == "sleep":
            answer = (s.t, None)
        elif kind == "io" and p.kind == "read":
            if log is not None:
                log.append(f"T={s.t} {name} reads {p.length} bytes at {p.offset}")
            answer = (s.t, s.disk)
        elif kind == "io":
            if log is not None:
                log.append(f"T={s.t} {name} writes {_describe(p.data)}")
            s = replace(s, disk=_write(s.disk, p.offset, p.data))
            answer = (s.t, None)
        elif kind == "err":
            if log is not None:
                log.append(f"T={s.t} {name}'s {p.kind} fails (AIO_TIMEOUT)")
            s = replace(s, errors=s.errors + 1)
            answer = (s.t, ("error", "I/O failed"))
        elif kind == "hang":
            if log is not None:
                log.append(f"T={s.t} {name}'s write {_describe(p.data)} hangs")
            h = replace(h, pending=replace(p, hung=True))
            return replace(self._set(s, i, h), hangs=s.hangs + 1)
        elif kind == "timeout":
            if log is not None:
                log.append(f"T={s.t} {name} gets AIO_TIMEOUT (its write may land later)")
            s = replace(s, late=(*s.late, LateWrite(i, p.offset, p.data)))
            answer = (s.t, ("error", "write hung"))
        else:
            raise AssertionError(kind)
        return self._advance(s, i, s.hosts[i], answer, log)

    def _expire(self, s: State, log: list[str] | None) -> State:
        """A belief ends when its host's own clock reaches last_success + 8·io (the supervisor fails it)."""
        for i, h in enumerate(s.hosts):
            b = h.belief
            if b is not None and s.t + self.world.hosts[i].clock_offset - b.last_success >= self.fail_after:
                if log is not None:
                    log.append(f"T={s.t} {self.world.hosts[i].name}'s host id lease expires (8·io since its "
                               f"last good renewal): its lockspace fails")
                s = self._set(s, i, replace(h, belief=None, failed=True))
        return s

    def violation(self, s: State) -> str | None:
        live = [(self.world.hosts[i].name, h.belief) for i, h in enumerate(s.hosts) if h.belief is not None]
        if len(live) > 1:
            return f"T={s.t}: two live holders of host id {HOST_ID}: " + ", ".join(
                f"{n} (gen {b.generation}, last_success {b.last_success:g})" for n, b in live if b is not None
            )
        for i, h in enumerate(s.hosts):
            if not h.seen:
                continue
            for name, b in live:
                assert b is not None
                if self._judged_dead(i, h.seen, s.disk, b.generation):
                    return (f"T={s.t}: observer {self.world.hosts[i].name} judges host id {HOST_ID} gen "
                            f"{b.generation} dead (holder_dead, from its HostTable) while {name} holds it live")
        return None

    def _judged_dead(self, i: int, seen: tuple[tuple[float, bytes], ...], disk: bytes, gen: int) -> bool:
        """The production judgement a paxos acquire makes of a shared holder (liveness.holder_dead),
        from observer i's HostTable (built by replaying its observations) and a read of the slot now."""
        key = (i, seen, disk[: GEOMETRY.sector_size], gen)
        hit = self.dead_memo.get(key)
        if hit is None:
            table = self.tables.get((i, seen))
            if table is None:
                table = self.table_factory(SPACE, GEOMETRY, 2, self.world.fire_timeout, self.world.io_timeout)
                for start, area in seen:
                    table.observe(_full(area, self.world.io_timeout), start)
                self.tables[(i, seen)] = table
            liveness = DeltaOwnerLiveness(
                _DiskNow(disk, self.world.io_timeout), 0, SPACE, GEOMETRY, io_timeout=self.world.io_timeout,
                fire_timeout=self.world.fire_timeout, table=table,
            )
            hit = self.dead_memo[key] = liveness.holder_dead(HOST_ID, gen)
        return hit


class _DiskNow:
    """A storage whose reads see the state's disk (an instantaneous read for a judgement)."""

    path = "mem:now"
    sector_size = GEOMETRY.sector_size

    def __init__(self, disk: bytes, io_timeout: int) -> None:
        self.disk, self.io_timeout = disk, io_timeout

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        assert offset + length <= SPAN
        return self.disk[offset : offset + length]

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        raise AssertionError("a judgement never writes")

    def size(self) -> int:
        return GEOMETRY.align_size

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=64)
def _full(disk: bytes, io_timeout: int) -> bytes:
    """The whole lockspace area, given its first SPAN bytes."""
    return disk + _tail(io_timeout)


@functools.cache
def _tail(io_timeout: int) -> bytes:
    return _area(io_timeout)[SPAN:]


def _write(disk: bytes, offset: int, data: bytes) -> bytes:
    return disk[:offset] + data + disk[offset + len(data) :]


def _describe(data: bytes) -> str:
    ld = decode_leader(data, 0)
    return f"slot(owner {ld.owner_id} gen {ld.owner_generation} {ld.resource_name!r} ts {ld.timestamp})"


# ---------------------------------------------------------------------- the explorer


@dataclass
class Result(search.Result):
    acquired: int = 0  # states in which some host holds the host id (the world is not vacuous)
    takeovers: int = 0  # ... held with generation > 1: the id changed hands (or owner incarnations) once

    kind = "delta "

    def extra(self) -> str:
        return f", {self.acquired} held, {self.takeovers} taken over"


class DeltaCursor:
    """``search.Cursor`` over plain ``State`` values: a state is its own key and node."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.state = run.initial()

    def key(self) -> State:
        return self.state

    def node(self) -> State:
        return self.state

    def goto(self, node: State, step: Step) -> None:
        # Children are made when popped, so the host threads built for a state are usually the
        # ones its first child needs.
        self.state = self.run.apply(node, step)

    def enabled(self) -> list[Step]:
        return self.run.enabled(self.state)

    def violation(self) -> str | None:
        return self.run.violation(self.state)

    def count(self, res: Result, terminal: bool) -> None:
        held = [h.belief.generation for h in self.state.hosts if h.belief is not None]
        if held:
            res.acquired += 1
            if max(held) > 1:
                res.takeovers += 1

    def log(self, steps: list[Step]) -> list[str]:
        return replay(self.run.world, steps, lease_factory=self.run.lease_factory,
                      table_factory=self.run.table_factory)[1]

    def close(self) -> None:
        self.run.close()


def explore(world: DeltaWorld, *, max_states: int = 5_000_000, lease_factory: LeaseFactory = DeltaLease,
            table_factory: TableFactory = HostTable, progress: Callable[[Result], None] | None = None,
            seed: int | None = None) -> Result:
    """Every state of ``world`` (``search.search``)."""
    cursor = DeltaCursor(Run(world, lease_factory=lease_factory, table_factory=table_factory))
    return search.search(cursor, Result(world), max_states=max_states, seed=seed, progress=progress)


def replay(world: DeltaWorld, steps: Sequence[Step], *, lease_factory: LeaseFactory = DeltaLease,
           table_factory: TableFactory = HostTable) -> tuple[str | None, list[str]]:
    """Run ``steps`` from the initial state: (the violation it ends in or None, a readable log)."""
    run = Run(world, lease_factory=lease_factory, table_factory=table_factory)
    log: list[str] = [world.describe()]
    try:
        s = run.initial()
        for step in steps:
            if step not in run.enabled(s):
                raise ValueError(f"step {step} is not enabled at T={s.t} after {log[-1]!r}")
            s = run.apply(s, step, log)
            v = run.violation(s)
            if v is not None:
                log.append(f"VIOLATION: {v}")
                return v, log
        return None, log
    finally:
        run.close()
