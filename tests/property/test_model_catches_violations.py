"""The simulation's invariant checker can fail: with a deliberately broken piece of the algorithm
(monkeypatched here, never in the engine) the same harness reports two owners. Without these, a
property test that always passes would prove nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.faults import FaultRules
from lockengine.liveness import RUN, DeltaOwnerLiveness
from lockengine.ondisk import Geometry
from lockengine.paxos import PaxosLease

from .sim import DeltaWorld, Step, World, make_disk
from .vtime import VirtualTime

G = Geometry(512, 1 << 20)
CLEAN = FaultRules()


@pytest.fixture
def disk(disk_dir: Path) -> Iterator[Path]:
    p = disk_dir / "mutants.img"
    make_disk(p, G)
    yield p
    p.unlink(missing_ok=True)


def owners_world(disk: Path, second_shared: bool = False) -> World:
    w = World(disk, G, seed=3)
    w.add_host(1, CLEAN, [Step("acquire", shared=second_shared), Step("hold", seconds=8.0), Step("release")])
    w.add_host(2, CLEAN, [Step("idle", seconds=1.0), Step("acquire"), Step("hold", seconds=3.0), Step("release")])
    w.add_host(3, CLEAN, [Step("idle", seconds=20.0)])
    return w


def test_correct_engine_passes_the_fixed_scenarios(disk: Path) -> None:
    w = owners_world(disk)
    w.run(until=30.0)
    assert w.hosts[0].acquired == 1 and w.hosts[1].refusals == {"ACQUIRE_IDLIVE": 1}
    make_disk(disk, G)
    w = owners_world(disk, second_shared=True)
    w.run(until=30.0)
    assert w.hosts[0].acquired == 1 and w.hosts[1].refusals == {"EAGAIN": 1}


def test_liveness_that_never_waits_is_caught(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DeltaOwnerLiveness, "check", lambda self, leader, watch: (RUN, 0.0))
    w = owners_world(disk)
    with pytest.raises(AssertionError, match="two exclusive owners"):
        w.run(until=30.0)


def test_exclusive_acquire_that_ignores_sharers_is_caught(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PaxosLease, "_clear_sharers", lambda self, sharers: iter(()))  # a step machine, no I/O
    w = owners_world(disk, second_shared=True)
    with pytest.raises(AssertionError, match="hold R1 together"):
        w.run(until=30.0)


def test_ballot_that_ignores_higher_ballots_is_caught(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase reads that never abort: two hosts each commit themselves for the same lease version."""
    real = PaxosLease._phase_read

    def no_abort(self: PaxosLease, span: int, num_hosts: int, mine: object) -> object:
        _, sharers = yield from real(self, span, num_hosts, mine)  # type: ignore[arg-type]
        return None, sharers

    monkeypatch.setattr(PaxosLease, "_phase_read", no_abort)
    caught = 0
    for seed in range(40):
        make_disk(disk, G)
        w = World(disk, G, seed=seed)
        for i in (1, 2, 3):
            w.add_host(i, CLEAN, [Step("acquire"), Step("hold", seconds=5.0), Step("release")])
        try:
            w.run(until=30.0)
        except AssertionError as exc:
            assert "two exclusive owners" in str(exc) or "committed to host" in str(exc) or "disk leader" in str(exc)
            caught += 1
            break
    assert caught


def test_delta_acquire_that_does_not_wait_is_caught(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VirtualTime, "engine_sleep", lambda self, seconds, abort, what: self.sleep(0.0))
    w = DeltaWorld(disk, G, seed=0, host_id=2)
    w.add("prior", CLEAN, 0.0, 30.0, "keep")
    w.add("intruder", CLEAN, 4.0, 10.0, "keep")
    with pytest.raises(AssertionError, match="two holders of host id 2|prior holds host id 2 .* slot names 'intruder'"):
        w.run(until=40.0)


def test_correct_delta_acquire_refuses_the_intruder(disk: Path) -> None:
    w = DeltaWorld(disk, G, seed=5, host_id=2)
    w.add("prior", CLEAN, 0.0, 30.0, "keep")
    w.add("intruder", CLEAN, 4.0, 10.0, "keep")
    w.run(until=40.0)
    assert [c.outcome for c in w.contenders] == ["acquired", "HOSTID_BUSY"]

