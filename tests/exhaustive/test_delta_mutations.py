"""The delta explorer catches deliberately broken variants of the delta acquire (each a subclass of
the production ``DeltaLease``, see delta_mutations.py): each test expects a counterexample with two
live holders of the host id, and replays its step list to the same violation."""

from __future__ import annotations

import contextlib

import pytest

from lockengine.delta import DeltaLease

from . import delta_mutations, delta_worlds
from .delta_world import explore, replay

CASES: dict[str, tuple[delta_worlds.WorldMaker, type[DeltaLease]]] = {
    "no re-read after the wait": (delta_worlds.race2, delta_mutations.NoReread),
    "no waits": (delta_worlds.stall_takeover, delta_mutations.NoWait),
    "a live owner's slot taken as free": (delta_worlds.stall_takeover, delta_mutations.AcceptLiveOwner),
    # issue 8: the old (sanlock) fast paths, each caught by the world that pins its fix
    **{f"old fast paths, {m.__name__}": (m, delta_mutations.SanlockFastPaths) for m in delta_worlds.FIXED},
    # the rejoin of our own clean release: only that exact record, only once it landed in time
    "rejoin on any released record naming us": (delta_worlds.rejoin_after_release,
                                                 delta_mutations.TrustsOwnReleasedName),
    "rejoin after a release that timed out": (delta_worlds.rejoin_after_release,
                                              delta_mutations.RemembersUnfinishedRelease),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_mutation_gives_a_replayable_counterexample(case: str) -> None:
    make, mutant = CASES[case]
    res = explore(make(), lease_factory=mutant)
    assert res.violation is not None, f"{case}: no counterexample in {res.line()}"
    assert "two live holders of host id 1" in res.violation, res.counterexample()
    v, log = replay(make(), res.steps, lease_factory=mutant)
    assert v == res.violation, "\n".join(log)
    # the same steps on the production class do not end in a violation (or are not even possible)
    with contextlib.suppress(ValueError):  # ValueError: the production code cannot even take these steps
        assert replay(make(), res.steps)[0] is None


def test_a_host_table_that_misses_renewals_is_caught() -> None:
    """The observer invariant is not vacuous: a HostTable that ignores changes after the first lets
    holder_dead call a renewing host dead."""
    make, mutant = delta_worlds.observer, delta_mutations.TableMissesRenewals
    res = explore(make(), table_factory=mutant)
    assert res.violation is not None and "dead (holder_dead" in res.violation, res.line()
    assert replay(make(), res.steps, table_factory=mutant)[0] == res.violation
    assert replay(make(), res.steps)[0] is None
