"""Simulated hosts that run the *production* ``PaxosLease`` one disk I/O at a time.

Each host runs its script (acquire, release, shared acquire, request) as a generator over the
production step machines (``PaxosLease.acquire_io``, ``release_io``, ``paxos.request_io``: the
same code the synchronous API drives): every ``Read``/``Write`` it yields waits until the explorer
grants it, so one I/O is one step, and no thread is involved. Clock and sleep are injected (a
constant clock, sleeps return at once), and owner liveness is answered from the model's ground truth: an owner is dead only once the
model crashed it (its fencing is complete), or while a mutation says otherwise.

Steps the explorer may take (``Step`` = (kind, host index)):

* ``io``      grant the host's pending read or write (applied atomically to the one disk);
* ``err``     fail the pending I/O with AIO_TIMEOUT, nothing written (budget ``errors``);
* ``hang``    the pending write hangs: it becomes a *late write*; the caller keeps waiting (budget ``hangs``);
* ``land``    a late write reaches the disk (before or after its caller timed out);
* ``timeout`` the caller of a hung write gets AIO_TIMEOUT (``late_after_timeout`` lets it land after);
* ``stall``   the host stops renewing its host id (others see WAIT; it still holds what it holds);
* ``crash``   the host is reset: its generator is closed, its beliefs end; a late write of it may still land;
* ``restart`` a crashed host comes back with a new generation and runs its restart script.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import marshal
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lockengine.errors import LockError
from lockengine.liveness import ALIVE, RUN, WAIT, Watch
from lockengine.ondisk import Geometry, Leader, decode_leader, leader_checksum_ok, resource_area
from lockengine.paxos import PaxosLease, Read, Write, request_io

SPACE, RES = "ls", "res"
GEOMETRY = Geometry(512, 1 << 20)
IO_TIMEOUT = 10
Step = tuple[str, int]
LeaseFactory = Callable[..., PaxosLease]
# PaxosLease attributes that are seams, not state: they are the same in every run.
_SEAMS = {"storage", "liveness", "clock", "_sleep", "_rng", "geometry", "space_name", "resource_name", "offset"}


class Start:
    """Yielded by a host before an operation that waits for an ``after`` bound (a step of its own)."""


HostSteps = Generator["Read | Write | Start", Any, None]


@dataclass(frozen=True)
class Op:
    kind: str  # "acquire" | "acquire_sh" (either with "/N": new num_hosts N) | "release" | "request"

    def __str__(self) -> str:
        return self.kind


@dataclass(frozen=True)
class HostSpec:
    name: str
    host_id: int
    script: tuple[str, ...]
    restart_script: tuple[str, ...] = ()
    # (op index, other host, ops it finished, I/Os of its next op): our op starts only once the other
    # host got that far (a bound that keeps a scenario family small; the start is a step of its own)
    after: tuple[tuple[int, str, int, int], ...] = ()
    max_io: int = 0  # I/Os per operation before this host freezes (a slow host); 0: the world's bound


@dataclass(frozen=True)
class World:
    """The bounds of one exhaustive run."""

    name: str
    hosts: tuple[HostSpec, ...]
    hangs: int = 0  # writes that may hang
    hang_leader_only: bool = False  # only leader writes may hang (a smaller world)
    hang_in: tuple[str, ...] = ()  # only writes of these operations may hang (empty: any)
    late_after_timeout: bool = True  # a hung write may land after its caller timed out
    errors: int = 0  # I/Os that may fail with AIO_TIMEOUT
    crashes: int = 0
    stalls: int = 0
    max_io_per_op: int = 24  # an operation that needs more I/O (ballot retries) is cut here

    def describe(self) -> str:
        scripts = ", ".join(f"{h.name}:{'+'.join(h.script) or '-'}" for h in self.hosts)
        return (
            f"{self.name} [{scripts}; hangs={self.hangs}{' leader' if self.hang_leader_only else ''}"
            f"{' in ' + '/'.join(self.hang_in) if self.hang_in else ''}"
            f"{' late' if self.hangs and self.late_after_timeout else ''}; errors={self.errors}; "
            f"crashes={self.crashes}; stalls={self.stalls}; io/op<={self.max_io_per_op}]"
        )


@dataclass(frozen=True)
class Pending:
    kind: str  # "read" | "write"
    offset: int
    length: int
    data: bytes | None
    hung: bool = False


@dataclass(frozen=True)
class LateWrite:
    host: int
    offset: int
    data: bytes
    caller_waiting: bool = True


@dataclass(frozen=True)
class Belief:
    kind: str  # "ex" | "sh"
    lver: int
    generation: int


@dataclass
class HostRun:
    spec: HostSpec
    index: int
    generation: int = 1
    state: str = "up"  # up | stalled | dead
    script: tuple[str, ...] = ()
    pos: int = 0
    op: str | None = None
    op_io: int = 0
    op_first_io_done: bool = False
    belief: Belief | None = None
    pending: Pending | None = None
    finished: bool = True
    steps: HostSteps | None = None
    lease: PaxosLease | None = None
    digest: Any = None
    outcomes: list[str] = field(default_factory=list)
    cut: bool = False
    # Everything handed to this incarnation's step machine, in order: ("v", kind, value, offset,
    # length) per resumed step (a read's bytes cut at the span: the rest is the initial area), and
    # ("ans", question, answer) per liveness answer. Replaying it into a fresh lease rebuilds the
    # host exactly (Run._rebuild). hist_key digests it (and the incarnation: host, generation,
    # script); live is the hist_key of where the actual step machine (steps, lease) is.
    history: list[tuple[Any, ...]] = field(default_factory=list)
    hist_key: bytes = b""
    gen_id: int = 0
    live: bytes | None = None
    lease_snap: str = ""  # _snapshot(lease), kept up to date while no operation runs
    replaying: deque[tuple[Any, ...]] | None = None

    @property
    def name(self) -> str:
        return self.spec.name


class NoStorage:
    """The lease's ``storage``: never used, every I/O goes through the step machines (a direct
    read or write would bypass the explorer, so it fails loudly)."""

    path = "explorer"
    sector_size = GEOMETRY.sector_size

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        raise AssertionError("direct storage read bypasses the explorer")

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        raise AssertionError("direct storage write bypasses the explorer")

    def size(self) -> int:
        return len(_initial_area(1))

    def close(self) -> None:
        pass


class ModelLiveness:
    """Owner liveness from the model's ground truth (the OwnerLiveness protocol)."""

    def __init__(self, run: Run, host: HostRun) -> None:
        self.run = run
        self.host = host

    def verdict(self, host_id: int, generation: int) -> str:
        owner = self.run.by_id.get(host_id)
        if owner is None or owner.generation > generation or owner.state == "dead":
            return RUN
        return WAIT if owner.state == "stalled" else ALIVE

    def begin(self, leader: Leader) -> Watch:
        return Watch(0.0, 0)

    def _answer(self, question: tuple[str, int, int]) -> str:
        """The verdict, recorded in the host's history (or, while the host is rebuilt, the recorded one)."""
        h = self.host
        if h.replaying is not None:
            item = h.replaying.popleft()
            assert item[:2] == ("ans", question), (item, question)
            return str(item[2])
        v = self.verdict(question[1], question[2])
        h.history.append(("ans", question, str(v)))  # a plain str: histories are marshalled
        return v

    def check(self, leader: Leader, watch: Watch) -> tuple[str, float]:
        v = self._answer(("live", leader.owner_id, leader.owner_generation))
        self.host.digest.update(f"live:{leader.owner_id}:{leader.owner_generation}:{v};".encode())
        return v, (0.0 if v != WAIT else 1.0)

    def holder_dead(self, host_id: int, generation: int) -> bool:
        dead = self._answer(("dead", host_id, generation)) == RUN
        self.host.digest.update(f"dead:{host_id}:{generation}:{dead};".encode())
        return dead


def _no_sleep(seconds: float, abort: threading.Event | None, what: str) -> None:
    if abort is not None and abort.is_set():
        raise LockError("ERROR", f"{what}: aborted")


def _snapshot(lease: PaxosLease) -> str:
    return repr(sorted((k, v) for k, v in vars(lease).items() if k not in _SEAMS))


class Run:
    """One execution of a world from its initial state, driven step by step."""

    def __init__(
        self,
        world: World,
        *,
        lease_factory: LeaseFactory = PaxosLease,
        liveness_factory: Callable[[Run, HostRun], ModelLiveness] = ModelLiveness,
        memo: bool = True,
    ) -> None:
        self.world = world
        self.use_memo = memo
        self.lease_factory = lease_factory
        self.liveness_factory = liveness_factory
        self.disk = bytearray(_initial_area(max(h.host_id for h in world.hosts)))
        self.span = (max(h.host_id for h in world.hosts) + 2) * GEOMETRY.sector_size
        self.hosts = [HostRun(spec, i, script=spec.script) for i, spec in enumerate(world.hosts)]
        self.by_id = {h.spec.host_id: h for h in self.hosts}
        self.by_name = {h.name: h for h in self.hosts}
        self.late: list[LateWrite] = []
        self.hangs_used = self.errors_used = self.crashes_used = self.stalls_used = 0
        self.committed: dict[int, set[tuple[int, int]]] = {}
        self.trace: list[Step] = []
        self.log: list[LogEntry] = []  # render_log() reads it
        self.violation: str | None = None
        self._gen_ids = itertools.count(1)
        self._initial = _initial_area(max(h.host_id for h in world.hosts))
        # Host steps already run: (host, hist_key, the host's fields the world changes, verdict,
        # liveness context) -> what the step machine did (memo; docs/testing.md, "Exhaustive check").
        self.memo: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.memo_hits = self.memo_misses = 0
        for h in self.hosts:
            self._start_host(h)

    # ------------------------------------------------------------------ host step machines

    def _start_host(self, h: HostRun) -> None:
        h.lease = self.lease_factory(
            NoStorage(), SPACE, RES, 0, host_id=h.spec.host_id, generation=h.generation,
            geometry=GEOMETRY, io_timeout=IO_TIMEOUT, liveness=self.liveness_factory(self, h),
            clock=lambda: 100.0, sleep=_no_sleep,
        )
        h.finished = False
        h.steps = self._host_main(h, h.lease)
        h.history, h.gen_id = [], next(self._gen_ids)
        h.hist_key = hashlib.blake2b(marshal.dumps((h.index, h.generation, h.script)), digest_size=16).digest()
        h.live, h.lease_snap = h.hist_key, _snapshot(h.lease)
        self._resume(h, ("ok", None))  # runs until its first I/O or its end

    def _host_main(self, h: HostRun, lease: PaxosLease) -> HostSteps:
        while h.pos < len(h.script):
            op = h.script[h.pos]
            if h.script is h.spec.script and any(j == h.pos for j, *_ in h.spec.after):
                h.op = None
                yield Start()
            h.op, h.op_io, h.op_first_io_done = op, 0, False
            h.digest = hashlib.blake2b(f"{_snapshot(lease)}|{op}|".encode(), digest_size=16)
            outcome = yield from self._run_op(h, lease, op)
            h.outcomes.append(f"{op}:{outcome}")
            h.pos += 1
            h.op, h.op_io = None, 0
            h.digest = None

    def _run_op(self, h: HostRun, lease: PaxosLease, op: str) -> Generator[Read | Write, Any, str]:
        kind, _, n = op.partition("/")  # "acquire/2": acquire with num_hosts 2 (SANLK_RES_NUM_HOSTS)
        try:
            if kind == "acquire":
                ld = yield from lease.acquire_io(nowait=True, num_hosts=int(n or 0))
                h.belief = Belief("ex", ld.lver, h.generation)
                return f"ok lver {ld.lver}" + (f" num_hosts {ld.num_hosts}" if n else "")
            if kind == "acquire_sh":
                ld = yield from lease.acquire_io(shared=True, nowait=True, num_hosts=int(n or 0))
                h.belief = Belief("sh", ld.lver, h.generation)
                return f"ok shared lver {ld.lver}" + (f" num_hosts {ld.num_hosts}" if n else "")
            if op == "release":
                if lease.leader is None:
                    return "nothing held"
                yield from lease.release_io()
                return "ok"
            if op == "request":
                yield from request_io(GEOMETRY.sector_size, 0, SPACE, RES, None, 1, io_timeout=IO_TIMEOUT)
                return "ok"
            raise AssertionError(op)
        except LockError as exc:
            return exc.name
        except OSError as exc:
            return f"OSError {exc.errno}"

    def _resume(self, h: HostRun, verdict: tuple[str, Any]) -> None:
        """Hand h its verdict (the result of its pending step, or an exception raised where it
        asked for the I/O); it runs until it asks for its next I/O, or ends.

        A step a host already took elsewhere in the search, from the same history, with the same
        world-side fields and the same liveness context, is not run again: its recorded effect is
        applied (the host is deterministic). Otherwise its step machine is brought to this point
        (rebuilt from the history if it is elsewhere) and run."""
        kind, value = verdict
        p = h.pending
        if isinstance(value, bytes) and p is not None:
            value = value[: max(0, self.span - p.offset)]  # beyond the span: the initial area
        item = ("v", kind, value, p.offset if p else None, p.length if p else None)
        ctx = tuple((o.state, o.generation) for o in self.hosts)
        mk = (h.index, h.hist_key, h.op_io, h.op_first_io_done, h.belief, h.digest and h.digest.digest(),
              p and (p.kind, p.hung), kind, value, ctx)
        eff = self.memo.get(mk) if self.use_memo else None
        ran = eff is None
        if eff is None:
            self.memo_misses += 1
            if h.live != h.hist_key:
                self._rebuild(h)
            n = len(h.history)
            h.history.append(item)
            self._step(h, (kind, self._full(value, p.offset, p.length)) if isinstance(value, bytes) and p else verdict)
            answers = tuple(h.history[n + 1 :])
            if h.op is None:
                h.lease_snap = _snapshot(h.lease) if h.lease is not None else ""
            eff = (h.pending, h.finished, h.op, h.pos, h.op_io, h.op_first_io_done,
                   h.belief, h.digest and h.digest.copy(), tuple(h.outcomes), h.lease_snap, answers)
            if self.use_memo:
                self.memo[mk] = eff
        else:
            self.memo_hits += 1
            pending, h.finished, h.op, h.pos, h.op_io, h.op_first_io_done, h.belief, digest, outcomes, \
                h.lease_snap, answers = eff
            h.pending = pending
            h.digest = digest and digest.copy()
            h.outcomes = list(outcomes)
            h.history.append(item)
            h.history.extend(answers)
        h.hist_key = hashlib.blake2b(h.hist_key + marshal.dumps((item, answers)), digest_size=16).digest()
        if ran:
            h.live = h.hist_key  # the step machine moved along; after a memo hit it stays behind

    def _step(self, h: HostRun, verdict: tuple[str, Any]) -> None:
        """Run h's actual step machine one step (it is at the point its history describes)."""
        assert h.steps is not None
        h.pending = None
        kind, value = verdict
        try:
            req = h.steps.throw(LockError("AIO_TIMEOUT", value)) if kind == "error" else h.steps.send(value)
        except StopIteration:
            h.finished = True
            return
        if isinstance(req, Start):
            h.pending = Pending("start", 0, 0, None)
        elif isinstance(req, Read):
            h.pending = Pending("read", req.offset, req.length, None)
        else:
            h.pending = Pending("write", req.offset, len(req.data), bytes(req.data))

    # ------------------------------------------------------------------ the disk

    def _apply_write(self, offset: int, data: bytes) -> None:
        self.disk[offset : offset + len(data)] = data
        if offset == 0 and leader_checksum_ok(data, 0):
            ld = decode_leader(data, 0)
            if ld.timestamp:
                owners = self.committed.setdefault(ld.lver, set())
                owners.add((ld.owner_id, ld.owner_generation))
                if len(owners) > 1 and self.violation is None:
                    self.violation = f"lver {ld.lver} decided twice: owners {sorted(owners)}"

    # ------------------------------------------------------------------ steps

    def enabled(self) -> list[Step]:
        w = self.world
        out: list[Step] = []
        for h in self.hosts:
            i = h.index
            p = h.pending
            if p is not None and p.kind == "start":
                if all(
                    (self.by_name[n].pos, self.by_name[n].op_io) >= (k, io) for j, n, k, io in h.spec.after if j == h.pos
                ):
                    out.append(("io", i))
            elif p is not None and not h.cut:
                if p.hung:
                    out.append(("timeout", i))
                elif p.kind == "landed":
                    out += [("io", i), ("timeout", i)]
                else:
                    out.append(("io", i))
                    if self.errors_used < w.errors:
                        out.append(("err", i))
                    if (
                        p.kind == "write"
                        and self.hangs_used < w.hangs
                        and (not w.hang_leader_only or p.offset == 0)
                        and (not w.hang_in or h.op in w.hang_in)
                    ):
                        out.append(("hang", i))
            if h.state != "dead" and self.stalls_used < w.stalls and h.state == "up":
                out.append(("stall", i))
            if h.state != "dead" and self.crashes_used < w.crashes:
                out.append(("crash", i))
            if h.state == "dead" and h.spec.restart_script and h.finished:
                out.append(("restart", i))
        for k, lw in enumerate(self.late):
            if lw.caller_waiting or w.late_after_timeout:
                out.append(("land", k))
        return out

    def apply(self, step: Step) -> None:
        kind, i = step
        self.trace.append(step)
        if kind == "land":
            lw = self.late.pop(i)
            self.log.append(f"late write of {self.hosts[lw.host].name} lands at {lw.offset}")
            self._apply_write(lw.offset, lw.data)
            if lw.caller_waiting:
                h = self.hosts[lw.host]
                assert h.pending is not None and h.pending.hung
                # landed: the caller now either completes or times out
                h.pending = replace(h.pending, hung=False, data=None, kind="landed")
            self.check()
            return
        h = self.hosts[i]
        if kind == "io":
            p = h.pending
            assert p is not None
            if p.kind != "start":
                self._count_io(h)
            if p.kind == "start":
                self.log.append(f"{h.name} starts {h.script[h.pos]}")
                self._resume(h, ("ok", None))
            elif p.kind == "read":
                # Only the part up to the span is copied: the rest is the initial area (nothing writes
                # there), appended only when the step machine actually runs (_resume, _full).
                data = bytes(self.disk[p.offset : min(p.offset + p.length, max(self.span, p.offset))])
                if p.offset:
                    data = self._full(data, p.offset, p.length)
                h.digest.update(hashlib.blake2b(data, digest_size=16).digest())
                self.log.append(f"{h.name} reads {p.length} at {p.offset}")
                self._resume(h, ("ok", data))
            elif p.kind == "landed":
                h.digest.update(b"landed-ok;")
                self._resume(h, ("ok", None))
            else:
                assert p.data is not None
                self.log.append(("write", f"{h.name} writes ", p.offset, p.data, ""))
                self._apply_write(p.offset, p.data)
                h.digest.update(b"w;")
                self._resume(h, ("ok", None))
        elif kind == "err":
            self.errors_used += 1
            self._count_io(h)
            h.digest.update(b"err;")
            self.log.append(f"{h.name}'s {h.pending.kind if h.pending else '?'} fails (AIO_TIMEOUT)")
            self._resume(h, ("error", "explorer: I/O failed"))
        elif kind == "hang":
            p = h.pending
            assert p is not None and p.data is not None
            self.hangs_used += 1
            self._count_io(h)
            h.pending = replace(p, hung=True)
            self.late.append(LateWrite(i, p.offset, p.data))
            self.log.append(("write", f"{h.name}'s write ", p.offset, p.data, " hangs"))
        elif kind == "timeout":
            self.late = [replace(lw, caller_waiting=False) if lw.host == i else lw for lw in self.late]
            h.digest.update(b"timeout;")
            self.log.append(f"{h.name} gets AIO_TIMEOUT")
            self._resume(h, ("error", "explorer: write hung"))
        elif kind == "stall":
            self.stalls_used += 1
            h.state = "stalled"
            self.log.append(f"{h.name} stops renewing its host id")
        elif kind == "crash":
            self.crashes_used += 1
            self.log.append(f"{h.name} crashes (fenced)")
            self._kill(h)
            h.state = "dead"
            h.belief = None
        elif kind == "restart":
            h.generation += 1
            h.state = "up"
            h.script, h.pos, h.outcomes = h.spec.restart_script, 0, []
            self.log.append(f"{h.name} restarts with generation {h.generation}")
            self._start_host(h)
        else:
            raise AssertionError(kind)
        self.check()

    def _count_io(self, h: HostRun) -> None:
        if h.op == "release" and not h.op_first_io_done:
            h.belief = None  # the holder stopped using the resource before its release's first I/O
        h.op_io += 1
        h.op_first_io_done = True

    def _kill(self, h: HostRun) -> None:
        self.late = [replace(lw, caller_waiting=False) if lw.host == h.index else lw for lw in self.late]
        if h.steps is not None and not h.finished:
            h.steps.close()  # GeneratorExit at its pending I/O: the lease code catches only LockError/OSError
            h.finished = True
            h.pending = None
        h.live = None

    def close(self) -> None:
        for h in self.hosts:
            self._kill(h)

    # ------------------------------------------------------------------ invariants and hashing

    def check(self) -> None:
        for h in self.hosts:
            if h.op_io >= (h.spec.max_io or self.world.max_io_per_op):
                h.cut = True  # frozen: its next I/O never completes (a host slower than everything else)
        if self.violation is not None:
            return
        believers = [h for h in self.hosts if h.belief is not None]
        ex = [h for h in believers if h.belief is not None and h.belief.kind == "ex"]
        sh = [h for h in believers if h.belief is not None and h.belief.kind == "sh"]
        if len(ex) > 1:
            self.violation = "two exclusive owners: " + ", ".join(
                f"{h.name} (lver {h.belief.lver})" for h in ex if h.belief is not None
            )
        elif ex and sh:
            self.violation = f"exclusive owner {ex[0].name} beside shared holders {[h.name for h in sh]}"

    def key(self) -> bytes:
        hosts = tuple(
            (h.state, h.generation, h.script is h.spec.script, h.pos, h.op, h.op_io, h.cut,
             (h.belief.kind, h.belief.lver, h.belief.generation) if h.belief else None,
             (h.pending.kind, h.pending.offset, h.pending.hung) if h.pending else None,
             h.digest.digest() if h.digest is not None else None, h.lease_snap if h.op is None else "")
            for h in self.hosts
        )
        late = tuple((lw.host, lw.offset, lw.data, lw.caller_waiting) for lw in self.late)
        budgets = (self.hangs_used, self.errors_used, self.crashes_used, self.stalls_used)
        committed = tuple(sorted((k, tuple(sorted(v))) for k, v in self.committed.items()))
        return hashlib.blake2b(
            marshal.dumps((bytes(self.disk[: self.span]), hosts, late, budgets, committed)), digest_size=16
        ).digest()

    def done(self) -> bool:
        return not self.enabled()

    # ------------------------------------------------------------------ snapshots (explore.py)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            bytes(self.disk[: self.span]),
            tuple(
                HostSnap(
                    h.generation, h.state, h.script, h.pos, h.op, h.op_io, h.op_first_io_done, h.belief,
                    h.pending, h.finished, h.digest and h.digest.copy(), tuple(h.outcomes),
                    h.cut, tuple(h.history), h.hist_key, h.gen_id, h.lease_snap,
                )
                for h in self.hosts
            ),
            tuple(self.late),
            (self.hangs_used, self.errors_used, self.crashes_used, self.stalls_used),
            {k: frozenset(v) for k, v in self.committed.items()},
            tuple(self.trace), tuple(self.log), self.violation,
        )

    def restore(self, snap: Snapshot) -> None:
        """Back to the state ``snap`` was taken in. Step machines are not touched: a host whose
        step machine is elsewhere is rebuilt when it next runs a step that is not in the memo."""
        self.disk[: self.span] = snap.disk
        for h, hs in zip(self.hosts, snap.hosts, strict=True):
            h.generation, h.state, h.script, h.pos, h.op, h.op_io = (
                hs.generation, hs.state, hs.script, hs.pos, hs.op, hs.op_io)
            h.op_first_io_done, h.belief, h.finished, h.cut = hs.op_first_io_done, hs.belief, hs.finished, hs.cut
            h.pending = hs.pending
            h.digest = hs.digest and hs.digest.copy()
            h.outcomes = list(hs.outcomes)
            h.history, h.hist_key, h.gen_id, h.lease_snap = list(hs.history), hs.hist_key, hs.gen_id, hs.lease_snap
        self.late = list(snap.late)
        self.hangs_used, self.errors_used, self.crashes_used, self.stalls_used = snap.budgets
        self.committed = {k: set(v) for k, v in snap.committed.items()}
        self.trace, self.log, self.violation = list(snap.trace), list(snap.log), snap.violation

    _HOST_FIELDS = ("pos", "op", "op_io", "op_first_io_done", "belief", "pending", "finished", "digest", "outcomes")

    def _full(self, value: bytes, offset: int, length: int) -> bytes:
        """A read's bytes cut at the span, completed from the initial area (nothing writes beyond the span)."""
        if len(value) < length:
            return value + self._initial[offset + len(value) : offset + length]
        return value

    def _rebuild(self, h: HostRun) -> None:
        """A fresh lease (same factory, generation and script) handed h's history again (liveness
        answers included) is, the host being deterministic, where h's history says it is. The
        world's view of h (its fields) is kept as it is."""
        keep = {f: getattr(h, f) for f in self._HOST_FIELDS}
        if h.steps is not None and not h.finished:
            h.steps.close()  # a step machine of another branch
        h.pos, h.op, h.outcomes = 0, None, []
        h.replaying = deque(h.history)
        try:
            h.lease = self.lease_factory(
                NoStorage(), SPACE, RES, 0, host_id=h.spec.host_id, generation=h.generation,
                geometry=GEOMETRY, io_timeout=IO_TIMEOUT, liveness=self.liveness_factory(self, h),
                clock=lambda: 100.0, sleep=_no_sleep,
            )
            h.finished = False
            h.steps = self._host_main(h, h.lease)
            while h.replaying:
                _, kind, value, offset, length = h.replaying.popleft()
                if isinstance(value, bytes):
                    value = self._full(value, offset, length)
                self._step(h, (kind, value))
        finally:
            h.replaying = None
        for f, v in keep.items():
            setattr(h, f, v)
        h.live = h.hist_key

@dataclass(frozen=True)
class HostSnap:
    generation: int
    state: str
    script: tuple[str, ...]
    pos: int
    op: str | None
    op_io: int
    op_first_io_done: bool
    belief: Belief | None
    pending: Pending | None
    finished: bool
    digest: Any
    outcomes: tuple[str, ...]
    cut: bool
    history: tuple[tuple[Any, ...], ...]
    hist_key: bytes
    gen_id: int
    lease_snap: str


@dataclass(frozen=True)
class Snapshot:
    """A node of the search: everything of a ``Run`` but its step machines (which cannot be copied)."""

    disk: bytes
    hosts: tuple[HostSnap, ...]
    late: tuple[LateWrite, ...]
    budgets: tuple[int, int, int, int]
    committed: dict[int, frozenset[tuple[int, int]]]
    trace: tuple[Step, ...]
    log: tuple[LogEntry, ...]
    violation: str | None


@functools.cache
def _initial_area(num_hosts: int) -> bytes:
    return resource_area(SPACE, RES, GEOMETRY, num_hosts=num_hosts)


LogEntry = str | tuple[str, str, int, bytes, str]


def render_log(log: Sequence[LogEntry]) -> list[str]:
    """The readable log of a run (a write's fields are decoded only here)."""
    return [e if isinstance(e, str) else f"{e[1]}{_describe_write(e[2], e[3])}{e[4]}" for e in log]


def _describe_write(offset: int, data: bytes) -> str:
    from lockengine.ondisk import decode_dblock, decode_mblock

    s = GEOMETRY.sector_size
    if offset == 0:
        ld = decode_leader(data, 0)
        return (f"leader(lver {ld.lver}, owner {ld.owner_id}/{ld.owner_generation}, ts {ld.timestamp}, "
                f"write_id {ld.write_id})")
    if offset == s:
        return "request"
    hid = offset // s - 1
    db = decode_dblock(data, 0)
    mb = decode_mblock(data, 0)
    return (f"dblock[{hid}](mbal {db.mbal}, bal {db.bal}, inp {db.inp}/{db.inp2}, lver {db.lver}"
            f"{', RELEASED' if db.released else ''}{', SHARED' if mb.shared else ''})")


def replay(world: World, steps: Sequence[Step], **kw: Any) -> Run:
    """Run ``steps`` from the initial state; the caller closes the run."""
    run = Run(world, **kw)
    for s in steps:
        if s not in run.enabled():
            run.close()
            raise ValueError(f"step {s} is not enabled after {run.trace}")
        run.apply(s)
    return run
