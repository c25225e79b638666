"""Throughput with N concurrent client processes, the same way for lockengine and sanlock.

Each client process registers, then on "go" acquires its share of the resources one call at a time,
reports, and on the next "go" releases them one call at a time. The parent starts every client,
waits until all are registered, then times each phase from "go" to the last client's report:
acquires/s = resources / that time. The clients are separate processes (sanlock registers processes,
and one Python process would share one GIL between the clients). Given the daemon's pid, each phase
also reports the daemon's CPU time (user + system) per operation: on a machine whose cores are
shared, what a daemon spends per lease bounds its throughput more than the disk does.

    python -m devkit.bench.throughput worker SOCKET LS PATH OFF[,OFF...]   (a lockengine client)
The sanlock client is ``sanlock_side.py worker`` (Debian's python3 has the binding).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_clients(commands: Sequence[Sequence[str]], env: dict[str, str] | None = None,
                daemon_pid: int | None = None) -> dict[str, float]:
    """Start one process per command and time both phases; returns ops per second for each (and the
    daemon's CPU milliseconds per op, given its pid)."""
    procs = [subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for cmd in commands]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"bench client said {line!r}")
        out: dict[str, float] = {}
        for phase in ("acquire", "release"):
            total = 0
            cpu0 = cpu_seconds(daemon_pid) if daemon_pid else 0.0
            t0 = time.perf_counter()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.stdout is not None
                words = p.stdout.readline().split()
                if not words or words[0] != "done":
                    raise RuntimeError(f"bench client failed in {phase}: {words!r}")
                total += int(words[1])
            out[f"{phase}_per_s"] = total / (time.perf_counter() - t0)
            if daemon_pid and total:
                out[f"{phase}_cpu_ms"] = (cpu_seconds(daemon_pid) - cpu0) * 1000 / total
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(timeout=60)
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def shares(offsets: Sequence[int], clients: int) -> list[list[int]]:
    """Deal the resource offsets out to ``clients`` clients (round robin, none empty)."""
    return [list(offsets[i::clients]) for i in range(min(clients, len(offsets)))]


def worker(socket_path: str, lockspace: str, path: str, offsets: list[int]) -> None:
    from lockengine.client import Client

    names = [f"{lockspace}:T{off}:{path}:{off}" for off in offsets]
    with Client(socket_path, timeout=600) as c:
        c.register("bench-worker")
        print("ready", flush=True)
        for phase in ("acquire", "release"):
            if sys.stdin.readline().strip() != "go":
                return
            call = c.acquire if phase == "acquire" else c.release
            for name in names:
                call([name])
            print(f"done {len(names)}", flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    if sys.argv[1] != "worker":
        sys.exit("usage: python -m devkit.bench.throughput worker SOCKET LS PATH OFF[,OFF...]")
    worker(sys.argv[2], sys.argv[3], sys.argv[4], [int(x) for x in sys.argv[5].split(",")])
