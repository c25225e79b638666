"""python -m tests.sim: replay one seed, or soak for many host-seconds outside CI."""

from __future__ import annotations

import argparse
import logging
import sys

from .run import quiet_logs, run_many, run_world


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim")
    ap.add_argument("--seed", type=int, help="replay this seed (one world) and print its violations")
    ap.add_argument("--big", action="store_true", help="the seed is a 250-host world")
    ap.add_argument("--host-seconds", type=float, default=1_000_000, help="soak: simulate this many host-seconds")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="the daemons' log on stderr")
    args = ap.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    else:
        quiet_logs()
    if args.seed is not None:
        w = run_world(args.seed, args.big)
        for v in w.violations:
            print(v)
        print(f"seed {args.seed}: {w.params.hosts} hosts, {int(w.host_seconds)} host-seconds, {w.sched.steps} steps, "
              f"daemons {w.stats['daemons']}, faults {dict(w.stats['faults'])}, violations {len(w.violations)}")
        return 1 if w.violations else 0
    totals = run_many(args.host_seconds, args.first_seed, big_seeds=(args.first_seed,), progress=True)
    for replay, v in totals.violations:
        print(f"{v}\n  replay: {replay}")
    print(totals.line())
    return 1 if totals.violations else 0


if __name__ == "__main__":
    sys.exit(main())
