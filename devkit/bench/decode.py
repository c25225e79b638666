"""What decoding and checking a whole lease area costs in CPU (the issue asks: well under 1 ms per 1 MiB).

Every ballot reads and checks up to 2000 dblocks twice, and every renewal reads the whole lockspace,
so these decode paths bound how fast acquire and renewal can be. Run::

    python -m devkit.bench.decode [--repeat N] [--json]

Prints the median and best microseconds per area for each case. Nothing here touches a device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from lockengine import crc
from lockengine.delta import HostTable
from lockengine.dump import decode_lockspace_area, decode_resource_area
from lockengine.ondisk import (
    AreaSlots,
    DBlock,
    DeltaRecord,
    Geometry,
    ModeBlock,
    host_sector,
    lockspace_area,
    new_delta_leader,
    resource_area,
    verify_delta_leader,
    verify_paxos_leader,
)
from lockengine.paxos import judge_phase

GEOM = Geometry(512, 1 << 20)


def resource_buffer(hosts: range | list[int]) -> bytes:
    """A 512/1M resource area with a ballot-looking dblock for every host in ``hosts``."""
    area = bytearray(resource_area("LS", "R1", GEOM))
    s = GEOM.sector_size
    for h in hosts:
        db = DBlock(mbal=4000 + h, bal=4000 + h, inp=h, inp2=3, inp3=1000 + h, lver=7)
        off = GEOM.dblock_offset(h)
        area[off : off + s] = host_sector(db, ModeBlock(), s)
    return bytes(area)


def lockspace_buffer(acquired: int) -> bytes:
    """A committed 512/1M lockspace with the first ``acquired`` slots held."""
    area = bytearray(lockspace_area("LS", GEOM, 10))
    first = new_delta_leader("LS", GEOM, 10)
    area[:200] = first.encode()
    for h in range(1, acquired + 1):
        ld = replace(first, owner_id=h, owner_generation=2, timestamp=5000 + h, resource_name=f"host-{h}")
        off = GEOM.host_offset(h)
        area[off : off + GEOM.sector_size] = DeltaRecord(ld).encode_sector(GEOM.sector_size)
    return bytes(area)


def ballot_decode(buf: bytes) -> int:
    """What acquire does with its first read of the area: check the leader, find the highest valid mbal."""
    ld = verify_paxos_leader(buf, "LS", "R1")
    return AreaSlots(buf, GEOM.sector_size, ld.num_hosts).max_valid_mbal()


def verify_every_delta_record(buf: bytes) -> int:
    n = 0
    for h in range(1, GEOM.max_hosts + 1):
        verify_delta_leader(buf, GEOM.host_offset(h), "LS")
        n += 1
    return n


def ballot_phase(next_lver: int) -> Callable[[bytes], object]:
    """One ballot phase's judgement of an area it read, as PaxosLease runs it (host 1, a high mbal)."""
    mine = DBlock(mbal=1 << 62, lver=next_lver)
    return lambda b: judge_phase(b, GEOM.sector_size, GEOM.max_hosts, 1, mine)


def host_table_steady(buf: bytes) -> Callable[[bytes], int]:
    """A renewal's liveness pass over an area it has seen before (the common case)."""
    table = HostTable("LS", GEOM, our_host_id=1)
    table.observe(buf, 0.0)
    clock = iter(range(1, 1 << 62))
    return lambda b: len(table.observe(b, float(next(clock))))


def measure(fn: Callable[[bytes], object], buf: bytes, repeat: int) -> tuple[float, float]:
    for _ in range(max(3, repeat // 10)):
        fn(buf)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(buf)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000, min(samples) / 1000


def cases() -> list[tuple[str, Callable[[bytes], object], bytes]]:
    fresh = resource_buffer([])
    one = resource_buffer([1])
    last = resource_buffer([GEOM.max_hosts])
    full = resource_buffer(range(1, GEOM.max_hosts + 1))
    ls_few = lockspace_buffer(3)
    ls_full = lockspace_buffer(GEOM.max_hosts)
    return [
        ("acquire's first read (leader, max valid mbal): fresh", ballot_decode, fresh),
        ("acquire's first read: host 1's dblock only", ballot_decode, one),
        ("acquire's first read: host 2000's dblock only", ballot_decode, last),
        ("acquire's first read: all 2000 dblocks", ballot_decode, full),
        ("resource 1 MiB, all 2000 dblocks, dump decode", lambda b: decode_resource_area(b, 0, GEOM, True), full),
        ("ballot phase (engine): fresh", ballot_phase(7), fresh),
        ("ballot phase (engine): host 1's dblock only", ballot_phase(7), one),
        ("ballot phase (engine): host 2000's dblock only", ballot_phase(7), last),
        ("ballot phase (engine): all 2000, same lver (checksum each)", ballot_phase(7), full),
        ("ballot phase (engine): all 2000, older lvers", ballot_phase(8), full),
        ("lockspace 1 MiB, 3 hosts, verify all 2000 records", verify_every_delta_record, ls_few),
        ("lockspace 1 MiB, 3 hosts, renewal host-table pass", host_table_steady(ls_few), ls_few),
        ("lockspace 1 MiB, 2000 hosts, renewal host-table pass", host_table_steady(ls_full), ls_full),
        ("lockspace 1 MiB, 3 hosts, dump decode", lambda b: decode_lockspace_area(b, 0, GEOM), ls_few),
        ("lockspace 1 MiB, 2000 hosts, dump decode", lambda b: decode_lockspace_area(b, 0, GEOM), ls_full),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devkit.bench.decode", description="CPU cost of decoding and checking whole lease areas.")
    p.add_argument("--repeat", type=int, default=200, help="timed runs per case (default 200)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = []
    for name, fn, buf in cases():
        median, best = measure(fn, buf, args.repeat)
        results.append({"case": name, "median_us": round(median, 1), "best_us": round(best, 1)})
    if args.json:
        print(json.dumps({"crc": crc.IMPLEMENTATION, "python": sys.version.split()[0], "results": results}))
        return 0
    print(f"CRC implementation: {crc.IMPLEMENTATION}; Python {sys.version.split()[0]}; {args.repeat} runs per case")
    print(f"{'case':<58} {'median µs':>10} {'best µs':>10}")
    for r in results:
        print(f"{r['case']:<58} {r['median_us']:>10.1f} {r['best_us']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
