#!/usr/bin/env python3
"""Watch test hosts from the controller for a while: every pet of their virtual watchdogs, their resets,
and (with --log-host) the lines of their daemon's log about watchdog, recovery and signals.

    PYTHONPATH=<repo> python3 watch_hosts.py --state DIR --seconds 60 [--log-host H]... HOST...

Prints one JSON document: {"started", "ended", "hosts": {HOST: {"pets": [wall times], "resets": [...],
"longest_silence": {"from", "to", "seconds"}, "log": [lines], "log_read_at"}}}. A pet is a new
`last_pet` in the harness's watchdog status (written at every pet), sampled every 0.1 s; pets come
every test interval (≥ 1 s), so none is missed. `longest_silence.to` is null when no pet followed (until
the end, or the host was reset). The log of a host is the last one read before it stopped answering
(polled once a second in a thread of its own, so that SSH never delays the pet sampling).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from testhosts import Cluster, HarnessError

SAMPLE = 0.1
LOG_WORDS = ("kill pid", "watchdog /dev", "recovery", "lease lost", "killing pids", "renewal failed")
LOG_COMMAND = "/opt/lockengine/bin/lockengine client log_dump"


def poll_logs(state: str, hosts: list[str], stop: threading.Event, out: dict[str, dict[str, Any]]) -> None:
    cluster = Cluster(state)
    live = list(hosts)
    try:
        while live and not stop.is_set():
            for host in list(live):
                try:
                    rc, text, _err = cluster.run(host, LOG_COMMAND, timeout=5.0)
                except HarnessError:  # reset or crashed: keep the last log read
                    live.remove(host)
                    continue
                if rc == 0:
                    out[host]["log"] = [line for line in text.splitlines() if any(w in line for w in LOG_WORDS)]
                    out[host]["log_read_at"] = time.time()
            stop.wait(1.0)
    finally:
        cluster.close()


def longest_silence(pets: list[float], end: float) -> dict[str, Any]:
    best: dict[str, Any] = {"from": None, "to": None, "seconds": 0.0}
    for before, after in zip(pets, pets[1:] + [None]):
        seconds = (after if after is not None else end) - before
        if seconds > best["seconds"]:
            best = {"from": before, "to": after, "seconds": round(seconds, 3)}
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", required=True, help="the harness's state dir")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--log-host", action="append", default=[])
    parser.add_argument("hosts", nargs="+")
    args = parser.parse_args()
    cluster = Cluster(args.state)
    result: dict[str, dict[str, Any]] = {h: {"pets": [], "resets": [], "log": [], "log_read_at": None}
                                         for h in sorted(set(args.hosts) | set(args.log_host))}
    stop = threading.Event()
    logs = threading.Thread(target=poll_logs, args=(args.state, args.log_host, stop, result), daemon=True)
    started = time.time()
    logs.start()
    while time.time() < started + args.seconds:
        for host in args.hosts:
            status = cluster.watchdog(host)
            pet = status.get("last_pet")
            pets = result[host]["pets"]
            if pet is not None and (not pets or pet > pets[-1]):
                pets.append(pet)
            result[host]["resets"] = status.get("resets", [])
        time.sleep(SAMPLE)
    ended = time.time()
    stop.set()
    logs.join(10.0)
    for host in args.hosts:
        result[host]["longest_silence"] = longest_silence(result[host]["pets"], ended)
    json.dump({"started": started, "ended": ended, "hosts": result}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
