"""The delta lease's exhaustive check in CI: every world of ``delta_worlds.CI`` explored to the end,
0 violations, one summary line each (states, bounds, time, violations) printed at the end of the run.
Deeper or single worlds: ``python -m tests.exhaustive.delta_worlds --world NAME``."""

from __future__ import annotations

import functools

import pytest

from . import delta_worlds
from .delta_world import Result, explore, replay

RESULTS: list[Result] = []


@functools.cache
def explored(make: delta_worlds.WorldMaker) -> Result:
    res = explore(make())
    RESULTS.append(res)
    return res



@pytest.mark.parametrize("make", delta_worlds.CI, ids=[m.__name__ for m in delta_worlds.CI])
def test_delta_world_has_no_violation(make: delta_worlds.WorldMaker, capsys: pytest.CaptureFixture[str]) -> None:
    res = explored(make)
    with capsys.disabled():
        print("\n" + res.line())
    assert res.violation is None, res.counterexample()
    assert res.complete, res.line()
    assert res.terminal > 0 and res.acquired > 0  # operations ran to their end and someone held the id


def test_someone_other_than_the_first_holder_takes_the_id_over() -> None:
    """Not vacuous: in the stall world q does hold the id in some states (after p is dead)."""
    res = explored(delta_worlds.stall_takeover)
    assert res.violation is None and res.takeovers > 0, res.line()


def test_a_step_list_replays() -> None:
    """p and q race from a free slot at T=0: q overwrites p's record before p re-reads, so p gets
    HOSTID_BUSY and q holds the id."""
    steps = [("start", 0), ("io", 0), ("start", 1), ("io", 1), ("io", 0), ("io", 1),
             ("tick", -1), ("tick", -1), ("io", 0), ("io", 1), ("io", 0), ("io", 1)]
    v, log = replay(delta_worlds.race2(), steps)
    assert v is None
    assert "T=2 p acquire: HOSTID_BUSY" in log and "T=2 q acquire: ok" in log, "\n".join(log)
    assert replay(delta_worlds.race2(), steps) == (v, log)
