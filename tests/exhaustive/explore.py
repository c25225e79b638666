"""The Disk Paxos worlds on the shared search (``search.py``: depth-first over which pending step goes
next, with state hashing).

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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import search
from .world import Run, Snapshot, Step, World, render_log


@dataclass
class Result(search.Result):
    replays: int = 0  # jumps of the run to a stored node (``Run.restore``)
    cut: int = 0  # states where some host is frozen by a bound
    outcomes: set[str] = field(default_factory=set)  # "host op:outcome" seen in terminal states

    def extra(self) -> str:
        return f", {self.cut} cut"


class PaxosCursor:
    """``search.Cursor`` over one ``Run``: the run in hand is extended along the first child; a jump
    to another node restores its snapshot. ``reduce``: ``starts_first``."""

    def __init__(self, run: Run, reduce: bool) -> None:
        self.run, self.reduce = run, reduce
        self.at: Snapshot | None = None  # the node the run is at, if it is one
        self.replays = 0

    def key(self) -> bytes:
        return self.run.key()

    def node(self) -> Snapshot:
        self.at = self.run.snapshot()
        return self.at

    def goto(self, node: Snapshot, step: Step) -> None:
        if self.at is not node:
            self.run.restore(node)
            self.replays += 1
        self.run.apply(step)
        self.at = None

    def enabled(self) -> list[Step]:
        steps = self.run.enabled()
        return starts_first(self.run, steps) if self.reduce else steps

    def violation(self) -> str | None:
        return self.run.violation

    def count(self, res: Result, terminal: bool) -> None:
        if any(h.cut for h in self.run.hosts):
            res.cut += 1
        if terminal:
            res.outcomes.update(f"{h.name} {o}" for h in self.run.hosts for o in h.outcomes)

    def log(self, steps: list[Step]) -> list[str]:
        return render_log(self.run.log)  # the run is at the end of ``steps``

    def close(self) -> None:
        self.run.close()


def explore(
    world: World, *, max_states: int = 2_000_000, run_kw: dict[str, Any] | None = None,
    progress: Callable[[Result], None] | None = None, seed: int | None = None, reduce: bool = True,
) -> Result:
    """``seed``: visit children in a seeded random order (``search.search``). ``reduce``: take a
    host's operation start alone when it is enabled (``starts_first``)."""
    cursor = PaxosCursor(Run(world, **(run_kw or {})), reduce)
    res = search.search(cursor, Result(world), max_states=max_states, seed=seed, progress=progress)
    res.replays = cursor.replays
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
