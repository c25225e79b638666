"""The explorer catches deliberately broken variants of the lease code (each a subclass, injected
into the world's hosts): each test expects a counterexample, and replays its step list."""

from __future__ import annotations

from typing import Any

import pytest

from . import mutations, worlds
from .explore import explore
from .world import World, replay

CASES: dict[str, tuple[Any, dict[str, Any], str]] = {
    "zeroed phase 1 (sanlock's run_ballot)": (worlds.late_commit, {"lease_factory": mutations.ZeroedPhase1}, ""),
    "phase 1 without the abort rule": (worlds.race2, {"lease_factory": mutations.NoAbortRule}, "decided twice"),
    "RELEASED shortcut without its checks": (
        worlds.stale_released, {"lease_factory": mutations.UncheckedReleased}, "two exclusive owners",
    ),
    "takeover before host_dead": (worlds.stall, {"liveness_factory": mutations.EarlyTakeover}, "two exclusive owners"),
    "exclusive winner ignoring shared holders": (
        worlds.shared, {"lease_factory": mutations.IgnoredSharers}, "beside shared holders",
    ),
    # sanlock 3.8's num_hosts: o, mid-ballot with the old view, commits p's lver 1 with num_hosts 3,
    # then runs lver 2 over dblocks 1..3 while q runs it over 1..2 (q never sees o).
    "ballots trusting the leader's num_hosts (sanlock 3.8)": (
        worlds.num_hosts_lowered, {"lease_factory": mutations.Sanlock38NumHosts}, "lver 2 decided twice",
    ),
    "... and no LEADER_NUMHOSTS refusal": (
        worlds.num_hosts_lowered, {"lease_factory": mutations.NoNumHostsRefusal}, "decided twice",
    ),
    "num_hosts lowered below a shared holder": (
        worlds.num_hosts_shared, {"lease_factory": mutations.Sanlock38NumHosts}, "beside shared holders",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_mutation_gives_a_replayable_counterexample(case: str) -> None:
    make, kw, what = CASES[case]
    world: World = make()
    res = explore(world, run_kw=kw)
    assert res.violation is not None, f"{case}: no counterexample in {res.line()}"
    assert what in res.violation, res.counterexample()
    run = replay(world, res.steps, **kw)
    try:
        assert run.violation == res.violation
    finally:
        run.close()


def test_the_unbroken_code_passes_the_worlds_the_mutations_fail() -> None:
    """The same worlds with the production classes: no counterexample (so each mutation is what fails)."""
    for make in (worlds.race2, worlds.stale_released, worlds.stall, worlds.shared, worlds.num_hosts_lowered,
                 worlds.num_hosts_shared):
        res = explore(make())
        assert res.violation is None and res.complete, res.counterexample()
