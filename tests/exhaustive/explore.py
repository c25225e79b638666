"""Depth-first search over which pending step goes next, with state hashing.

A node is kept as a ``Run.snapshot()`` (disk, model, and per host everything its step machine was
handed); the step machines inside ``PaxosLease`` cannot be copied, so ``Run.restore`` rebuilds only
the hosts that moved since the node, by handing a fresh lease that host's history again (pure CPU,
no disk, no threads). The run in hand is extended along the first child. Two nodes merge when their
``Run.key()`` agree: the disk bytes, the model state, and per host its pending I/O and a digest of
everything its current operation has been handed (plus the lease object's state when the operation
began). Each host is deterministic, so its future is a function of exactly that digest
(docs/testing.md, "Exhaustive check").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .world import Run, Snapshot, Step, World, render_log


@dataclass
class Result:
    world: World
    states: int = 0
    transitions: int = 0
    replays: int = 0
    terminal: int = 0
    cut: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time: the wall time on an idle machine
    violation: str | None = None
    steps: list[Step] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    complete: bool = True
    outcomes: set[str] = field(default_factory=set)  # "host op:outcome" seen in terminal states

    def line(self) -> str:
        return (
            f"exhaustive {self.world.describe()}: {self.states} states, {self.transitions} transitions, "
            f"{self.terminal} terminal, {self.cut} cut, depth {self.max_depth}, {self.seconds:.1f} s "
            f"(cpu {self.cpu_seconds:.1f} s), "
            f"violations {0 if self.violation is None else 1}{'' if self.complete else ' (state limit hit)'}"
        )

    def counterexample(self) -> str:
        return "\n".join(
            [f"VIOLATION in {self.world.name}: {self.violation}", f"steps = {self.steps!r}", *self.log]
        )


def explore(
    world: World, *, max_states: int = 2_000_000, run_kw: dict[str, Any] | None = None,
    progress: Callable[[Result], None] | None = None, seed: int | None = None, reduce: bool = True,
) -> Result:
    """``seed``: visit children in a seeded random order (still exhaustive when it runs to the end;
    deep counterexamples tend to come sooner than in host order). ``reduce``: take a host's
    operation start alone when it is enabled (``starts_first``)."""
    rng = random.Random(seed) if seed is not None else None
    kw = run_kw or {}
    res = Result(world)
    start, cpu_start = time.monotonic(), time.process_time()
    seen: set[bytes] = set()
    run = Run(world, **kw)
    try:
        seen.add(run.key())
        res.states = 1
        root = run.snapshot()
        # (the node, the steps that reach it, the step to take there)
        first = starts_first(run, run.enabled()) if reduce else run.enabled()
        stack: list[tuple[Snapshot, tuple[Step, ...], Step]] = [(root, (), s) for s in reversed(first)]
        at: Snapshot | None = root  # the node the run is at, if it is one
        while stack:
            node, prefix, step = stack.pop()
            if at is not node:
                run.restore(node)
                res.replays += 1
            run.apply(step)
            at = None
            path = (*prefix, step)
            res.transitions += 1
            if run.violation is not None:
                res.violation, res.steps, res.log = run.violation, list(path), render_log(run.log)
                break
            k = run.key()
            if k in seen:
                continue
            seen.add(k)
            res.states += 1
            res.max_depth = max(res.max_depth, len(path))
            if any(h.cut for h in run.hosts):
                res.cut += 1
            nxt = run.enabled()
            if reduce:
                nxt = starts_first(run, nxt)
            if rng is not None:
                rng.shuffle(nxt)
            if not nxt:
                res.terminal += 1
                res.outcomes.update(f"{h.name} {o}" for h in run.hosts for o in h.outcomes)
            else:
                at = run.snapshot()
                stack.extend((at, path, s) for s in reversed(nxt))
            if progress is not None and res.states % 20000 == 0:
                res.seconds, res.cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start
                progress(res)
            if res.states >= max_states:
                res.complete = False
                break
    finally:
        run.close()
    res.seconds, res.cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start
    return res


def starts_first(run: Run, steps: list[Step]) -> list[Step]:
    """A sound reduction: when a host may start its next operation (its ``after`` bound is met),
    that step alone is explored. Starting touches nothing another step reads or writes (no disk,
    no belief, no liveness answer, not the (ops, I/Os) progress other bounds wait for), and nothing
    disables it (without crashes, progress only grows), so every order of the other steps is still
    explored after it, through states with the same disk and beliefs (docs/testing.md)."""
    if run.world.crashes:
        return steps
    for s in steps:
        h = run.hosts[s[1]] if s[0] == "io" else None
        if h is not None and h.pending is not None and h.pending.kind == "start":
            return [s]
    return steps
