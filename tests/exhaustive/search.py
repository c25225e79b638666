"""The search both exhaustive checks share: depth-first over which enabled step goes next, every state
seen kept by its key (two nodes merge when their keys are equal), with the counterexample's step list,
the state budget, the progress report and the summary line.

A world kind plugs in through a ``Cursor``: a position in its state space that the search moves
(``goto`` a stored node and take one step from it) and asks about (the enabled steps, the violation
if any, the key, a node to store). The Disk Paxos check's cursor (``explore.py``) is one mutable
``Run`` that it restores from a snapshot when the search jumps, keyed by a 128-bit digest of the run's
state (``Run.key``); the delta lease's (``delta_world.py``) steps over plain immutable states, which
are their own exact keys and nodes (docs/testing.md, "Exhaustive check").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

Step = tuple[str, int]
N = TypeVar("N")
PROGRESS_EVERY = 20_000  # states between two progress reports


class Cursor(Protocol[N]):
    def key(self) -> Hashable:
        """The current state: equal keys have equal futures."""

    def node(self) -> N:
        """Something to come back to the current state from (``goto``)."""

    def goto(self, node: N, step: Step) -> None:
        """Move to the state ``step`` leads to from ``node``."""

    def enabled(self) -> list[Step]:
        """The steps the current state allows, in the order to explore them."""

    def violation(self) -> str | None:
        """The broken invariant of the current state, if any."""

    def count(self, res: Any, terminal: bool) -> None:
        """Add the current (new) state to the world kind's own counts in ``res``."""

    def log(self, steps: list[Step]) -> list[str]:
        """A readable log of ``steps`` from the initial state (the counterexample's)."""

    def close(self) -> None: ...


@dataclass
class Result:
    world: Any  # its ``describe()`` and ``name`` are printed
    states: int = 0
    transitions: int = 0
    terminal: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time: the wall time on an idle machine
    violation: str | None = None
    steps: list[Step] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    complete: bool = True

    kind = ""  # printed before the world ("delta ")

    def extra(self) -> str:
        """The world kind's own counts for the summary line (", 12 cut")."""
        return ""

    def line(self) -> str:
        return (
            f"exhaustive {self.kind}{self.world.describe()}: {self.states} states, {self.transitions} transitions, "
            f"{self.terminal} terminal{self.extra()}, depth {self.max_depth}, {self.seconds:.1f} s "
            f"(cpu {self.cpu_seconds:.1f} s), "
            f"violations {0 if self.violation is None else 1}{'' if self.complete else ' (state limit hit)'}"
        )

    def counterexample(self) -> str:
        return "\n".join(
            [f"VIOLATION in {self.world.name}: {self.violation}", f"steps = {self.steps!r}", *self.log]
        )


R = TypeVar("R", bound=Result)


class _Trail(Generic[N]):
    """The steps from the initial state, shared between siblings (a linked list, newest first)."""

    __slots__ = ("step", "up", "depth")

    def __init__(self, step: Step, up: _Trail[N] | None) -> None:
        self.step, self.up = step, up
        self.depth: int = 1 if up is None else up.depth + 1

    def steps(self) -> list[Step]:
        out: list[Step] = []
        t: _Trail[N] | None = self
        while t is not None:
            out.append(t.step)
            t = t.up
        return out[::-1]


def search(cursor: Cursor[N], res: R, *, max_states: int, seed: int | None = None,
           progress: Callable[[R], None] | None = None) -> R:
    """Explore from the cursor's current state until every reachable state was seen, a violation, or
    ``max_states`` (then ``res.complete`` is False); closes the cursor. ``seed``: visit children in a
    seeded random order (still exhaustive when it runs to the end; deep counterexamples tend to come
    sooner than in host order)."""
    rng = random.Random(seed) if seed is not None else None
    start, cpu_start = time.monotonic(), time.process_time()
    try:
        seen: set[Hashable] = {cursor.key()}
        res.states = 1
        first = cursor.enabled()
        cursor.count(res, not first)
        if not first:
            res.terminal += 1
        if rng is not None:
            rng.shuffle(first)
        root = cursor.node()
        # (the node, the steps that reach it, the step to take there)
        stack: list[tuple[N, _Trail[N] | None, Step]] = [(root, None, s) for s in reversed(first)]
        while stack:
            node, trail, step = stack.pop()
            cursor.goto(node, step)
            res.transitions += 1
            path = _Trail(step, trail)
            v = cursor.violation()
            if v is not None:
                res.violation, res.steps = v, path.steps()
                res.log = cursor.log(res.steps)
                break
            k = cursor.key()
            if k in seen:
                continue
            seen.add(k)
            res.states += 1
            res.max_depth = max(res.max_depth, path.depth)
            nxt = cursor.enabled()
            cursor.count(res, not nxt)
            if rng is not None:
                rng.shuffle(nxt)
            if not nxt:
                res.terminal += 1
            else:
                here = cursor.node()
                stack.extend((here, path, s) for s in reversed(nxt))
            if progress is not None and res.states % PROGRESS_EVERY == 0:
                res.seconds, res.cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start
                progress(res)
            if res.states >= max_states:
                res.complete = False
                break
    finally:
        cursor.close()
    res.seconds, res.cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start
    return res
