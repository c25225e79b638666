"""Seeds to worlds, the summary line, replay commands and the soak mode.

A seed fully determines a world (its parameters are drawn from it) and its run, so a failing seed is
replayed with ``python -m tests.sim --seed N`` (plus ``--big`` for the large world).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

from .world import ALL_FAULTS, Violation, World, WorldParams

__all__ = ["ALL_FAULTS", "Totals", "focused_params", "run_many", "run_world"]

REAL_FAULTS = tuple(k for k in ALL_FAULTS)


def small_params(seed: int) -> WorldParams:
    rng = random.Random(seed * 7919 + 1)
    hosts = rng.randint(5, 8)
    base_io = rng.choice([5, 10, 10, 20])
    per_host_io = rng.random() < 0.4
    ios = [rng.choice([5, 10, 20]) if per_host_io else base_io for _ in range(hosts)]
    fire = rng.choice([30, 60, 60])
    device = [fire] * hosts
    if rng.random() < 0.2:
        device[rng.randrange(hosts)] = fire + rng.choice([10, 30])  # misconfigured: the daemon must refuse
    return WorldParams(
        hosts=hosts, sector_size=rng.choice([512, 4096]), resources=rng.randint(2, 5),
        duration=rng.uniform(3000, 6000), fire_timeout=fire, io_timeouts=ios, clients_per_host=rng.uniform(5, 20),
        fault_rate=rng.uniform(2, 8), faults=REAL_FAULTS, device_timeouts=device,
    )


def focused_params(seed: int, faults: tuple[str, ...], **kw: object) -> WorldParams:
    """A small world that exercises a few faults hard (the mutation tests)."""
    rng = random.Random(seed * 31 + 5)
    hosts = 5
    p = WorldParams(
        hosts=hosts, sector_size=rng.choice([512, 4096]), resources=2, duration=4000, fire_timeout=60,
        io_timeouts=[10] * hosts, clients_per_host=30, fault_rate=12, faults=faults, hold_mean=600.0,
        end_check=False,
    )
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def big_params(seed: int) -> WorldParams:
    rng = random.Random(seed * 104729 + 7)
    hosts = 250
    return WorldParams(
        hosts=hosts, sector_size=4096, resources=8, duration=rng.uniform(600, 700), fire_timeout=60,
        io_timeouts=[10] * hosts, clients_per_host=3, fault_rate=10, faults=REAL_FAULTS, end_check=False,
    )


@dataclass
class Totals:
    host_seconds: float = 0.0
    daemons: int = 0
    seeds: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[tuple[str, Violation]] = field(default_factory=list)
    steps: int = 0

    def add(self, world: World, replay: str) -> None:
        self.host_seconds += world.host_seconds
        self.daemons += int(world.stats["daemons"])
        self.seeds += 1
        self.steps += world.sched.steps
        for k, v in world.stats["faults"].items():
            self.faults[k] = self.faults.get(k, 0) + v
        p = world.params
        if len(set(p.io_timeouts)) > 1:
            self.faults["per_host_io_timeout"] = self.faults.get("per_host_io_timeout", 0) + 1
        if p.device_timeouts and any(t != p.fire_timeout for t in p.device_timeouts):
            self.faults["fire_timeout_mismatch"] = self.faults.get("fire_timeout_mismatch", 0) + 1
        for v in world.violations:
            self.violations.append((replay, v))

    def line(self) -> str:
        faults = ", ".join(f"{k}: {v}" for k, v in sorted(self.faults.items()))
        return (f"simulation: host-seconds {int(self.host_seconds)}, daemons {self.daemons}, seeds {self.seeds}, "
                f"faults {{{faults}}}, violations {len(self.violations)}")


def quiet_logs() -> None:
    logging.getLogger("lockengine").setLevel(logging.CRITICAL + 1)


def run_world(seed: int, big: bool = False) -> World:
    params = big_params(seed) if big else small_params(seed)
    world = World(seed, params)
    old = threading.stack_size()
    threading.stack_size(512 * 1024)
    try:
        world.run()
    finally:
        threading.stack_size(old)
    return world


def replay_command(seed: int, big: bool) -> str:
    return f"PYTHONPATH=$PWD .venv/bin/python -m tests.sim --seed {seed}{' --big' if big else ''} --verbose"


def run_many(host_seconds: float, first_seed: int = 1, big_seeds: tuple[int, ...] = (1,),
             progress: bool = False) -> Totals:
    quiet_logs()
    totals = Totals()
    t0 = time.monotonic()
    for s in big_seeds:
        w = run_world(s, big=True)
        totals.add(w, replay_command(s, True))
        if progress:
            print(f"big seed {s}: {int(w.host_seconds)} host-s, {w.sched.steps} steps, "
                  f"{time.monotonic() - t0:.1f} s, violations {len(w.violations)}", flush=True)
    seed = first_seed
    while totals.host_seconds < host_seconds:
        w = run_world(seed)
        totals.add(w, replay_command(seed, False))
        if progress:
            print(f"seed {seed}: {w.params.hosts} hosts, {int(w.host_seconds)} host-s, {w.sched.steps} steps, "
                  f"{time.monotonic() - t0:.1f} s, violations {len(w.violations)}", flush=True)
        seed += 1
    return totals
