"""The sanlock half of the side-by-side benchmark; runs under Debian's python3 (python3-sanlock).

Standalone on purpose: it imports nothing from lockengine, so it measures only sanlock.

  sanlock_side.py latency PATH LS_OFF RES_OFF COUNT IO_TIMEOUT HOST_ID
  sanlock_side.py holdspec PATH IO_TIMEOUT HOST_ID SPEC_JSON   (prints "ready", holds until killed)
  sanlock_side.py holdsteps LS PATH LS_OFF IO_TIMEOUT HOST_ID RES=OFF[,...]   (joins LS, prints "ready"; per
                                                  "acquire N" line holds the first N leases, answering
                                                  "held N"; "release" releases all: "released")
  sanlock_side.py worker LS PATH OFF[,OFF...]   (throughput.py's client: "ready", then per "go" line
                                                  acquires, then releases, each answered "done N")
Prints one JSON document (latency) or "ready" then sleeps (hold).
"""

import json
import statistics
import sys
import time

import sanlock  # type: ignore[import-not-found]


def latency(path: str, ls_off: int, res_off: int, count: int, io: int, host_id: int) -> None:
    t = time.monotonic()
    sanlock.add_lockspace(b"BENCH", host_id, path, ls_off, iotimeout=io)
    join_s = time.monotonic() - t
    fd = sanlock.register()
    acq, rel = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        sanlock.acquire(b"BENCH", b"R0", [(path, res_off)], slkfd=fd)
        t1 = time.perf_counter()
        sanlock.release(b"BENCH", b"R0", [(path, res_off)], slkfd=fd)
        t2 = time.perf_counter()
        acq.append((t1 - t0) * 1000)
        rel.append((t2 - t1) * 1000)
    sanlock.rem_lockspace(b"BENCH", host_id, path, ls_off)
    print(json.dumps({"join_s": join_s, "acquire_ms": statistics.median(acq), "release_ms": statistics.median(rel)}))


def hold(path: str, io: int, host_id: int, spec: str) -> None:
    """spec: JSON [[lockspace, offset, [[resource, offset], ...]], ...]"""
    layout = json.loads(spec)
    fd = sanlock.register()
    for name, off, _ in layout:
        sanlock.add_lockspace(name.encode(), host_id, path, off, iotimeout=io, wait=False)
    for name, off, _ in layout:
        while sanlock.inq_lockspace(name.encode(), host_id, path, off) is not True:
            time.sleep(0.2)
    for name, _, resources in layout:
        for res, roff in resources:
            sanlock.acquire(name.encode(), res.encode(), [(path, roff)], slkfd=fd)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def holdsteps(ls: str, path: str, ls_off: int, io: int, host_id: int, leases: list[tuple[str, int]]) -> None:
    """Leases held in growing steps by one registered process (the bench's held-leases rows)."""
    sanlock.add_lockspace(ls.encode(), host_id, path, ls_off, iotimeout=io)
    fd = sanlock.register()
    held = 0
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["acquire"]:
            for res, off in leases[held:int(words[1])]:
                sanlock.acquire(ls.encode(), res.encode(), [(path, off)], slkfd=fd)
            held = max(held, int(words[1]))
            print(f"held {held}", flush=True)
        elif words[:1] == ["release"]:
            for res, off in leases[:held]:
                sanlock.release(ls.encode(), res.encode(), [(path, off)], slkfd=fd)
            held = 0
            print("released", flush=True)
        else:
            return


def worker(ls: str, path: str, offsets: list[int]) -> None:
    fd = sanlock.register()
    names = [(f"T{off}".encode(), off) for off in offsets]
    print("ready", flush=True)
    for phase in ("acquire", "release"):
        if sys.stdin.readline().strip() != "go":
            return
        call = sanlock.acquire if phase == "acquire" else sanlock.release
        for name, off in names:
            call(ls.encode(), name, [(path, off)], slkfd=fd)
        print(f"done {len(names)}", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "worker":
        worker(args[0], args[1], [int(x) for x in args[2].split(",")])
    elif mode == "holdsteps":
        leases = [(res, int(off)) for res, off in (x.split("=") for x in args[5].split(","))]
        holdsteps(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), leases)
    elif mode == "latency":
        latency(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]), int(args[5]))
    else:
        hold(args[0], int(args[1]), int(args[2]), args[3])
