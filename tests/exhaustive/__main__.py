"""Deeper exhaustive runs outside CI.

    python -m tests.exhaustive --world shared3              # one named world (see worlds.py)
    python -m tests.exhaustive --hosts 4 --lvers 3 --hangs 1 --max-io 8
    python -m tests.exhaustive --hosts 3 --lvers 2 --seed 7 --max-states 200000

Generic worlds: ``--hosts N`` hosts; the first ``--lvers L`` of them acquire and release (so up to
L versions are decided with all hosts racing), the rest acquire once. Prints one summary line, and
a replayable counterexample (steps = [...]) on a violation; exit status 1 then.
"""

from __future__ import annotations

import argparse
import sys

from . import delta_worlds, worlds
from .explore import Result, explore
from .world import HostSpec, World


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
    ap.add_argument("--max-states", type=int, default=30_000_000, help="stop there (about 130 bytes of RAM a state)")
    ap.add_argument("--seed", type=int, default=None, help="visit children in a seeded random order")
    ap.add_argument("--no-reduce", action="store_true", help="explore operation starts in every order too")
    a = ap.parse_args(argv)
    if a.world in delta_worlds.DEEP:  # the delta lease has its own explorer
        return delta_worlds.main(["--world", a.world, "--max-states", str(a.max_states)])
    world = worlds.DEEP[a.world]() if a.world else generic(a.hosts, a.lvers, a.hangs, a.errors, a.crashes, a.max_io)

    def progress(r: Result) -> None:
        print(r.line(), file=sys.stderr, flush=True)

    res = explore(world, max_states=a.max_states, seed=a.seed, progress=progress, reduce=not a.no_reduce)
    print(res.line())
    if res.violation is not None:
        print(res.counterexample())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
