"""The exhaustive check in CI: every world of ``worlds.CI`` explored to the end, 0 violations.

One summary line per world is printed at the end of the pytest run (conftest.py), with the bounds,
states explored and time. Deeper bounds: ``python -m tests.exhaustive --help``."""

from __future__ import annotations

import pytest

from . import worlds
from .explore import Result, explore
from .world import replay

RESULTS: list[Result] = []


@pytest.mark.parametrize("make", worlds.CI, ids=[m.__name__ for m in worlds.CI])
def test_world_has_no_violation(make: worlds.WorldMaker) -> None:
    res = explore(make())
    RESULTS.append(res)
    assert res.violation is None, res.counterexample()
    assert res.complete, res.line()
    assert res.terminal > 0  # operations ran to their end somewhere: the world is not vacuous
    missing = [o for o in worlds.COVERS.get(make.__name__, ()) if o not in res.outcomes]
    assert not missing, f"never reached: {missing} (seen: {sorted(res.outcomes)})"


@pytest.mark.parametrize("make", [worlds.crash_restart, worlds.committed_for_us, worlds.shared, worlds.stale_released],
                         ids=lambda m: m.__name__)
def test_the_host_step_memo_changes_nothing_but_speed(make: worlds.WorldMaker) -> None:
    """With the memo off every step runs the production step machine (rebuilt from its history
    when it is elsewhere): the search must be the very same."""
    def counts(memo: bool) -> tuple[int, int, int, int, frozenset[str]]:
        r = explore(make(), run_kw={"memo": memo})
        assert r.complete and r.violation is None
        return r.states, r.transitions, r.terminal, r.cut, frozenset(r.outcomes)

    assert counts(True) == counts(False)


def test_a_step_list_replays_to_the_same_state() -> None:
    world = worlds.race2()
    res = explore(world, max_states=50)
    steps = [("io", 0)] * 6 + [("io", 1)]
    a, b = replay(world, steps), replay(world, steps)
    try:
        assert a.key() == b.key() and a.log == b.log
        assert a.hosts[0].outcomes == ["acquire:ok lver 1"]
        assert a.hosts[1].outcomes == ["acquire:ACQUIRE_IDLIVE"]  # p is alive: q refused after one read
    finally:
        a.close()
        b.close()
    assert res.states == 50 and not res.complete
