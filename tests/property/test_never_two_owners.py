"""Hypothesis drives ≥ 3 simulated hosts over one real file through the fault seam; a lease never
has two owners. What is modelled and why is in docs/testing.md.

Every example: hosts with their own O_DIRECT fd behind a FaultyStorage (delays below io_timeout,
EIO, hangs to AIO_TIMEOUT, torn writes), a virtual clock, and an interleaving of every read and
write chosen by the scheduler's seeded Random. LockError and OSError from a host are allowed
outcomes; two hosts believing they own the same thing at the same virtual instant is the failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from devkit.faults import FaultRules
from lockengine.ondisk import Geometry

from .sim import HOST_DEAD, DeltaWorld, Step, World, make_disk

# CI runs a fixed, derandomized set of examples (same every run, no example database). A deep search
# on a workstation: LOCKENGINE_PROPERTY_EXAMPLES=2000 LOCKENGINE_PROPERTY_RANDOM=1 pytest tests/property
DEEP = int(os.environ.get("LOCKENGINE_PROPERTY_EXAMPLES", "0"))
PROFILE = settings(
    deadline=None,
    derandomize=not os.environ.get("LOCKENGINE_PROPERTY_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def disk(disk_dir: Path) -> Iterator[Path]:
    path = disk_dir / "property-owners.img"
    path.write_bytes(b"")
    yield path
    path.unlink(missing_ok=True)


tenths = st.integers(0, 40).map(lambda n: n / 10)
geometries = st.sampled_from([Geometry(512, 1 << 20), Geometry(4096, 1 << 20)])
fault_rules = st.builds(
    FaultRules,
    delay=st.sampled_from([0.0, 0.5, 1.0]),
    max_delay=st.sampled_from([0.2, 0.95]),
    read_eio=st.sampled_from([0.0, 0.0, 0.02, 0.1]),
    write_eio=st.sampled_from([0.0, 0.0, 0.02, 0.1]),
    hang=st.sampled_from([0.0, 0.0, 0.01, 0.05]),
    hang_write_lands=st.sampled_from([0.0, 0.5, 1.0]),
    torn=st.sampled_from([0.0, 0.0, 0.05, 0.2]),
    torn_max_cut=st.sampled_from([0, 64, 200]),
)


@st.composite
def cycles(draw: st.DrawFn) -> list[Step]:
    """One use of the lease: wait, acquire (exclusive or shared), hold, then let go somehow."""
    steps = [Step("idle", seconds=draw(tenths)), Step("acquire", shared=draw(st.booleans()))]
    steps.append(Step("hold", seconds=draw(tenths)))
    end = draw(st.sampled_from(["release", "release", "release", "keep", "crash", "restart", "heal"]))
    if end == "release":
        steps.append(Step("release"))
    elif end == "crash":
        steps.append(Step("crash"))
    elif end == "restart":
        steps.append(Step("crash", restart=draw(tenths)))
    elif end == "heal":
        steps += [Step("heal"), Step("release")]
    return steps


programs = st.lists(cycles(), min_size=1, max_size=4).map(lambda cs: [s for c in cs for s in c])


@st.composite
def resource_scenarios(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(3, 4))
    return {
        "geometry": draw(geometries),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "hosts": [(draw(fault_rules), draw(programs), draw(tenths)) for _ in range(n)],
    }


# Found by a deep search (shrunk): host 2 proposes itself, host 3 adopts and commits that value
# (ACQUIRE_OTHER, no mode-block check), host 2's ballot aborts and then finds itself committed,
# while host 1 holds the lease shared. Kept as a fixed example so CI always runs it.
SHARED_RACE = {
    "geometry": Geometry(512, 1 << 20),
    "seed": 517,
    "hosts": [
        (FaultRules(max_delay=0.2),
         [Step("idle"), Step("acquire", shared=True), Step("hold", seconds=1.0), Step("release")], 2.5),
        (FaultRules(delay=1.0, max_delay=0.2, torn=0.05),
         [Step("idle", seconds=1.1), Step("acquire"), Step("hold"), Step("release")], 1.3),
        (FaultRules(max_delay=0.2),
         [Step("idle", seconds=0.4), Step("acquire"), Step("hold"), Step("release")], 2.5),
    ],
}


# Found by a deep search: host 3's ballot for lver 3 runs from a stale read and its commit lands
# after host 2 (generation 2) won lver 4 and died; the rolled-back leader leads host 2's next
# generation to ballot for lver 4 again, erasing the only record of its dead predecessor's win.
# Harmless (the erased owner is dead), and it must stay harmless.
REDECIDED = {
    "geometry": Geometry(512, 1 << 20),
    "seed": 209,
    "hosts": [
        (FaultRules(delay=1.0, max_delay=0.2), [Step("idle"), Step("acquire"), Step("hold"), Step("release")], 1.6),
        (FaultRules(max_delay=0.2),
         [Step("idle", seconds=0.2), Step("acquire"), Step("hold"), Step("release"), Step("idle", seconds=0.3),
          Step("acquire"), Step("hold", seconds=0.9), Step("crash", restart=1.7), Step("idle", seconds=2.9),
          Step("acquire"), Step("hold"), Step("crash", restart=0.0), Step("idle"), Step("acquire"), Step("hold"),
          Step("release")], 2.0),
        (FaultRules(delay=1.0, max_delay=0.95, torn=0.05),
         [Step("idle", seconds=2.8), Step("acquire"), Step("hold"), Step("release")], 0.2),
    ],
}


@settings(PROFILE, max_examples=DEEP or 150)
@example(SHARED_RACE)
@example(REDECIDED)
@given(resource_scenarios())
def test_resource_lease_never_has_two_owners(disk: Path, scenario: dict[str, object]) -> None:
    """Exclusive and shared mixes: ≤ 1 exclusive owner, never beside a sharer, and the disk agrees."""
    geometry = scenario["geometry"]
    assert isinstance(geometry, Geometry)
    make_disk(disk, geometry)
    world = World(disk, geometry, int(scenario["seed"]))  # type: ignore[call-overload]
    for i, (rules, program, start) in enumerate(scenario["hosts"], start=1):  # type: ignore[arg-type]
        world.add_host(i, rules, program, start)
    world.run(until=60.0)
    assert world.checks > 0
    total = sum(h.acquired for h in world.hosts)
    event(f"acquisitions: {min(total, 6)}{'+' if total >= 6 else ''}")
    event(f"resets: {len(world.resets)}")
    if world.takeovers:
        event("acquired after a holder died")
    if world.redecided:
        event("a version was decided again after its owner stopped believing")
    if world.stale_leaders:
        event("a late commit of an older version landed over the holder's leader")
    for h in world.hosts:
        for name in h.refusals:
            event(f"refusal {name}")
        assert h.storage is not None
        if h.storage.stats.torn:
            event("torn writes injected")


@st.composite
def delta_scenarios(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(2, 3))
    prior = draw(st.sampled_from(["never", "released", "crashed", "live"]))
    return {
        "geometry": draw(geometries),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "prior": prior,
        "contenders": [
            (
                draw(fault_rules),
                draw(st.sampled_from([0.0, 0.0, 0.5]) | tenths | st.integers(0, 25).map(float)),
                draw(st.integers(0, 30).map(float)),
                draw(st.sampled_from(["release", "crash", "keep"])),
            )
            for _ in range(n)
        ],
    }


@settings(PROFILE, max_examples=DEEP or 100)
@given(delta_scenarios())
def test_host_id_never_has_two_holders(disk: Path, scenario: dict[str, object]) -> None:
    """DeltaLease instances with different host names race for one host_id: at most one holds it."""
    geometry = scenario["geometry"]
    assert isinstance(geometry, Geometry)
    make_disk(disk, geometry)
    world = DeltaWorld(disk, geometry, int(scenario["seed"]), host_id=2)  # type: ignore[call-overload]
    prior = scenario["prior"]
    if prior != "never":
        # A previous owner of the slot: gone cleanly, crashed, or still alive and renewing.
        end = {"released": "release", "crashed": "crash", "live": "keep"}[str(prior)]
        world.add("prior", FaultRules(), 0.0, 3.0, end)
    for i, (rules, start, hold, end) in enumerate(scenario["contenders"]):  # type: ignore[attr-defined]
        world.add(f"contender{i}", rules, 4.0 + start, hold, end)
    world.run(until=4.0 + 25 + HOST_DEAD + 30)
    event(f"prior {prior}: successes {len(world.successes)}")
    for c in world.contenders:
        event(f"outcome {c.outcome}")
