"""The delta lease's exhaustive check in CI: every world of ``delta_worlds.CI`` explored to the end,
0 violations, one summary line each (states, bounds, time, violations) printed at the end of the run
(conftest.py). Deeper or single worlds: ``python -m tests.exhaustive --world NAME``."""

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
def test_delta_world_has_no_violation(make: delta_worlds.WorldMaker) -> None:
    res = explored(make)
    assert res.violation is None, res.counterexample()
    assert res.complete, res.line()
    assert res.terminal > 0 and res.acquired > 0  # operations ran to their end and someone held the id


def test_the_id_is_taken_over_once_its_holder_is_dead() -> None:
    """Not vacuous: in the stall world q does hold the id with generation 2 (it read p's generation
    1 record, waited for p to be dead and took over) in some states."""
    res = explored(delta_worlds.stall_takeover)
    assert res.violation is None and res.takeovers > 0, res.line()
    steps = [("start", 0), ("io", 0), ("io", 0), ("start", 1), ("io", 1), ("tick", -1), ("tick", -1),
             ("io", 0), ("io", 0), *[("tick", -1)] * 7, ("io", 1), ("io", 1), ("io", 1),
             ("tick", -1), ("tick", -1), ("io", 1), ("io", 1)]
    v, log = replay(delta_worlds.stall_takeover(), steps)
    assert v is None and "T=11 q holds host id 1 gen 2 (last_success 16 on its clock)" in log, "\n".join(log)


def test_a_step_list_replays() -> None:
    """p and q race from a free slot at T=0: q overwrites p's record before p re-reads, so p gets
    HOSTID_BUSY and q holds the id."""
    steps = [("start", 0), ("io", 0), ("start", 1), ("io", 1), ("io", 0), ("io", 1),
             ("tick", -1), ("tick", -1), ("io", 0), ("io", 1), ("io", 0), ("io", 1)]
    v, log = replay(delta_worlds.race2(), steps)
    assert v is None
    assert "T=2 p acquire: HOSTID_BUSY" in log and "T=2 q acquire: ok" in log, "\n".join(log)
    assert replay(delta_worlds.race2(), steps) == (v, log)


def test_no_finding_is_open() -> None:
    """The issue-8 findings are fixed and their worlds run in CI (FIXED, 0 violations above; the old
    rules are caught in each by test_delta_mutations.py). A new two-holder path found in today's
    delta.py goes into FINDINGS with a test that expects its counterexample."""
    assert delta_worlds.FINDINGS == ()
    assert set(delta_worlds.FIXED) <= set(delta_worlds.CI)


def test_a_clean_release_is_rejoined_without_the_busy_wait_in_the_world() -> None:
    """Not vacuous: the rejoin worlds do take the fast path (p releases at T=2 and holds again at
    T=4, generation 2: no 9 s wait), so their 0 violations cover it."""
    steps = [("start", 0), ("io", 0), ("io", 0), ("tick", -1), ("tick", -1), ("io", 0), ("io", 0),
             ("start", 0), ("io", 0), ("io", 0),
             ("start", 0), ("io", 0), ("io", 0), ("tick", -1), ("tick", -1), ("io", 0), ("io", 0)]
    v, log = replay(delta_worlds.rejoin_race(), steps)
    assert v is None and "T=4 p holds host id 1 gen 2 (last_success 102 on its clock)" in log, "\n".join(log)


def test_the_one_cli_runs_a_delta_world(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m tests.exhaustive --world delta_NAME``: the same search, budget and summary line."""
    from .__main__ import main

    assert main(["--world", "delta_race2", "--max-states", "300"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("exhaustive delta delta_race2 [") and "300 states" in out, out
    assert out.rstrip().endswith("violations 0 (state limit hit)"), out
