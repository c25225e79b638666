"""A lease holder process for the system tests: registers with lockengined, acquires, then waits.

    python -m tests.system.holder RESOURCE... [--ignore-term] [--killpath '["/prog", "arg"]']

Prints one JSON line to stdout: {"acquired": ..} or {"error": ..}, then sleeps until signalled.
With --ignore-term, SIGTERM is ignored (a holder that must be SIGKILLed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from lockengine.client import Client, DaemonError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("resource", nargs="+")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--killpath", type=json.loads, help="JSON list: program and arguments")
    parser.add_argument("--exit-after", type=float, help="exit (without releasing) after N seconds")
    args = parser.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    client = Client()
    try:
        client.register(name="holder", killpath=args.killpath)
        result = client.acquire(args.resource)
    except DaemonError as exc:
        print(json.dumps({"error": exc.as_dict()}), flush=True)
        return 1
    print(json.dumps({"acquired": result}), flush=True)
    deadline = time.monotonic() + (args.exit_after if args.exit_after is not None else 3600)
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
