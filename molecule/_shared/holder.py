#!/usr/bin/python3
"""A lease holder for the molecule scenarios, on a test host.

Hold mode (the default) runs under `lockengine client command -r RES -- holder.py ...`, which execs it once
the daemon granted the lease: this process is then the registered holder, the daemon's signals reach it,
and the lease lasts exactly as long as it runs. Every SIGTERM it gets is appended to --log, so a playbook
can tell SIGTERM (recorded) from SIGKILL (the process is gone without a record).

Take mode (--take RES --while-owner ID) is a failover agent: it runs `lockengine client command -r RES --
holder.py` (hold mode) and, while the daemon refuses with ACQUIRE_IDLIVE because host ID still looks
alive, tries again every second (for at most --retry-for seconds). It gives up at once when another host
holds the lease. Its exit code is the holder's, or 1 with the daemon's error on stderr.

Python >= 3.9, standard library only (the hosts' python3).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import signal
import subprocess
import sys
import time

LOCKENGINE = "/opt/lockengine/bin/lockengine"


def record(log: str, event: str) -> None:
    with open(log, "a") as f:
        f.write(f"{time.time():.3f} {os.getpid()} {event}\n")


def hold(args: argparse.Namespace) -> int:
    def on_term(_signum: int, _frame: object) -> None:
        record(args.log, "SIGTERM")
        if args.on_term == "exit":
            record(args.log, "exit")
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    fd = os.open(args.read, os.O_RDONLY | os.O_DIRECT) if args.read else None
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
    record(args.log, "started")
    while True:
        if fd is not None:
            os.preadv(fd, [buf], 0)
        time.sleep(0.2)


def owner_of(resource: str) -> int | None:
    proc = subprocess.run([LOCKENGINE, "direct", "read-leader", "-r", resource, "--json"],
                          capture_output=True, text=True, check=False)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return None
    return int(doc["owner_id"]) if doc.get("timestamp") else None


def take(args: argparse.Namespace, hold_argv: list[str]) -> int:
    deadline = time.monotonic() + args.retry_for
    attempt = 0
    while True:
        attempt += 1
        proc = subprocess.run([LOCKENGINE, "client", "command", "--json", "-r", args.take, "--",
                               sys.executable, os.path.abspath(__file__), *hold_argv],
                              stdout=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 1:  # the holder ran: its own end (0 after SIGTERM, -9 after SIGKILL...)
            return proc.returncode
        try:
            error = json.loads(proc.stdout)["error"]
        except (ValueError, KeyError, TypeError):
            error = {"name": "?", "message": proc.stdout.strip()}
        owner = owner_of(args.take)
        record(args.log, f"attempt {attempt}: {error['name']} (owner host {owner})")
        if error["name"] != "ACQUIRE_IDLIVE" or owner != args.while_owner or time.monotonic() > deadline:
            print(f"lockengine: {error['name']}: {error.get('message', '')}", file=sys.stderr)
            return 1
        time.sleep(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True, help="file that receives one line per event")
    parser.add_argument("--on-term", choices=["exit", "ignore"], default="exit",
                        help="exit: leave on SIGTERM (a well-behaved holder); ignore: only SIGKILL ends it")
    parser.add_argument("--read", metavar="DEVICE",
                        help="read 4 KiB at offset 0 of DEVICE with O_DIRECT every 0.2 s: when its path hangs, "
                             "this process waits in D state and not even SIGKILL ends it")
    parser.add_argument("--take", metavar="LS:RES:PATH:OFF", help="take mode: acquire this lease, then hold it")
    parser.add_argument("--while-owner", type=int, metavar="HOST_ID",
                        help="take mode: retry ACQUIRE_IDLIVE while this host holds the lease")
    parser.add_argument("--retry-for", type=float, default=120.0, help="take mode: give up after this long")
    args = parser.parse_args()
    if args.take:
        hold_argv = ["--log", args.log, "--on-term", args.on_term] + (["--read", args.read] if args.read else [])
        return take(args, hold_argv)
    return hold(args)


if __name__ == "__main__":
    sys.exit(main())
