"""Depth-first search over which pending step goes next, with state hashing.

The production objects (threads blocked inside ``PaxosLease``) cannot be copied, so a node is
reached by re-running its schedule prefix from the initial state; the run in hand is extended along
the first child, and only siblings are replayed. Two nodes merge when their ``Run.key()`` agree: the
disk bytes, the model state, and per host its pending I/O and a digest of everything its current
operation has read (plus the lease object's state when the operation began). Each host's thread is
deterministic, so its future is a function of exactly that digest (docs/testing.md, "Exhaustive check").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .world import Run, Step, World, replay


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
    violation: str | None = None
    steps: list[Step] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    complete: bool = True

    def line(self) -> str:
        return (
            f"exhaustive {self.world.describe()}: {self.states} states, {self.transitions} transitions, "
            f"{self.terminal} terminal, {self.cut} cut, depth {self.max_depth}, {self.seconds:.1f} s, "
            f"violations {0 if self.violation is None else 1}{'' if self.complete else ' (state limit hit)'}"
        )

    def counterexample(self) -> str:
        return "\n".join(
            [f"VIOLATION in {self.world.name}: {self.violation}", f"steps = {self.steps!r}", *self.log]
        )


def explore(
    world: World, *, max_states: int = 2_000_000, run_kw: dict[str, Any] | None = None,
    progress: Callable[[Result], None] | None = None, seed: int | None = None,
) -> Result:
    """``seed``: visit children in a seeded random order (still exhaustive when it runs to the end;
    deep counterexamples tend to come sooner than in host order)."""
    rng = random.Random(seed) if seed is not None else None
    kw = run_kw or {}
    res = Result(world)
    start = time.monotonic()
    seen: set[bytes] = set()
    stack: list[tuple[Step, ...]] = []
    run = Run(world, **kw)
    try:
        seen.add(run.key())
        res.states = 1
        stack.extend((s,) for s in reversed(run.enabled()))
        cur: tuple[Step, ...] = ()
        while stack:
            prefix = stack.pop()
            if prefix[:-1] != cur:
                run.close()
                run = replay(world, prefix[:-1], **kw)
                res.replays += 1
            run.apply(prefix[-1])
            cur = prefix
            res.transitions += 1
            if run.violation is not None:
                res.violation, res.steps, res.log = run.violation, list(prefix), list(run.log)
                break
            k = run.key()
            if k in seen:
                cur = (*prefix, ("dup", -1))  # force a replay for whatever comes next
                continue
            seen.add(k)
            res.states += 1
            res.max_depth = max(res.max_depth, len(prefix))
            if any(h.cut for h in run.hosts):
                res.cut += 1
            nxt = run.enabled()
            if rng is not None:
                rng.shuffle(nxt)
            if not nxt:
                res.terminal += 1
            stack.extend((*prefix, s) for s in reversed(nxt))
            if progress is not None and res.states % 20000 == 0:
                res.seconds = time.monotonic() - start
                progress(res)
            if res.states >= max_states:
                res.complete = False
                break
    finally:
        run.close()
    res.seconds = time.monotonic() - start
    return res
