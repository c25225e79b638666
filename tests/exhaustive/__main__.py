"""Deeper exhaustive runs outside CI, of either kind (Disk Paxos or delta lease: the same search).

    python -m tests.exhaustive --world shared3              # one named world (see worlds.py)
    python -m tests.exhaustive --world delta_late_renewal_slow   # a delta-lease world (delta_worlds.py)
    python -m tests.exhaustive --hosts 4 --lvers 3 --hangs 1 --max-io 8
    python -m tests.exhaustive --hosts 3 --lvers 2 --seed 7 --max-states 200000

Generic worlds: ``--hosts N`` hosts; the first ``--lvers L`` of them acquire and release (so up to
L versions are decided with all hosts racing), the rest acquire once (Disk Paxos; so are --hangs,
--errors, --crashes, --max-io and --no-reduce). Prints one summary line (and one on stderr every
20 000 states), and a replayable counterexample (steps = [...]) on a violation; exit status 1 then.
"""

from __future__ import annotations

import argparse
import sys

from . import delta_world, worlds
from .delta_world import DeltaWorld
from .explore import explore
from .search import Result
from .world import HostSpec, World

# The default state budget of each world kind (a delta state takes more memory).
MAX_STATES = {World: 30_000_000, DeltaWorld: 20_000_000}


def generic(hosts: int, lvers: int, hangs: int, errors: int, crashes: int, max_io: int) -> World:
    names = "pqoxyzuvw"
    specs = tuple(
        HostSpec(names[i] if i < len(names) else f"h{i + 1}", i + 1,
                 ("acquire", "release") if i < lvers else ("acquire",),
                 restart_script=("acquire",) if crashes else ())
        for i in range(hosts)
    )
    return World(f"generic-{hosts}x{lvers}", specs, hangs=hangs, errors=errors, crashes=crashes, max_io_per_op=max_io)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.exhaustive", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", choices=sorted(worlds.DEEP), help="a named world instead of a generic one")
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--lvers", type=int, default=2)
    ap.add_argument("--hangs", type=int, default=0)
    ap.add_argument("--errors", type=int, default=0)
    ap.add_argument("--crashes", type=int, default=0)
    ap.add_argument("--max-io", type=int, default=8, help="I/Os per operation before the host freezes")
    ap.add_argument("--max-states", type=int, default=None,
                    help="stop there (default 30 M states, about 130 bytes of RAM each; 20 M for a delta world)")
    ap.add_argument("--seed", type=int, default=None, help="visit children in a seeded random order")
    ap.add_argument("--no-reduce", action="store_true", help="explore operation starts in every order too")
    a = ap.parse_args(argv)
    world: World | DeltaWorld = (
        worlds.DEEP[a.world]() if a.world else generic(a.hosts, a.lvers, a.hangs, a.errors, a.crashes, a.max_io)
    )
    max_states = a.max_states if a.max_states is not None else MAX_STATES[type(world)]

    def progress(r: Result) -> None:
        print(r.line(), file=sys.stderr, flush=True)

    res: Result
    if isinstance(world, DeltaWorld):
        res = delta_world.explore(world, max_states=max_states, seed=a.seed, progress=progress)
    else:
        res = explore(world, max_states=max_states, seed=a.seed, progress=progress, reduce=not a.no_reduce)
    print(res.line())
    if res.violation is not None:
        print(res.counterexample())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
