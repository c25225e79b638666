"""What decoding and checking a whole lease area costs in CPU (the issue asks: well under 1 ms per 1 MiB).

Every ballot reads and checks up to 2000 dblocks twice, and every renewal reads the whole lockspace,
so these decode paths bound how fast acquire and renewal can be. Run::

    python -m lockengine.bench.decode [--repeat N] [--json]

Prints the median and best microseconds per area for each case. Nothing here touches a device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
from dataclasses import replace
from typing import Callable

from .. import crc
from ..delta import HostTable
from ..dump import decode_lockspace_area, decode_resource_area
from ..ondisk import (
    DBlock,
    DeltaRecord,
    Geometry,
    ModeBlock,
    decode_paxos_slots,
    host_sector,
    lockspace_area,
    new_delta_leader,
    resource_area,
    verify_delta_leader,
    verify_paxos_leader,
)

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


# --------------------------------------------------------------------------- proposed hot path
#
# A prototype of the change proposed for ondisk.decode_paxos_slots, kept here so the figures can be
# reproduced: (1) skip all-zero runs of 32 sectors with one memcmp each (bytes.startswith), (2)
# unpack each remaining sector with one C call (Struct.iter_unpack over a sector-sized format) into
# a plain tuple instead of three dataclass instances, (3) verify a dblock's checksum only when its
# lver could matter to this ballot (lver >= next_lver): sanlock ignores the others whatever their
# checksum, so the outcome is the same.

_CHUNK = 32
_ZERO_CHUNKS = {s: bytes(_CHUNK * s) for s in (512, 4096)}
_SECTOR_FORMATS = {s: struct.Struct(f"<QQQQQQII72xIIQ{s - 144}x") for s in (512, 4096)}
_ZERO_FIELDS = (0,) * 11
Fields = tuple[int, int, int, int, int, int, int, int, int, int, int]


def proposed_scan(buf: bytes, sector_size: int, num_hosts: int) -> list[tuple[int, Fields]]:
    """(host_id, fields) of every host sector that is not all zero; fields = mbal, bal, inp, inp2, inp3,
    lver, checksum, flags, mode flags, mode padding, mode generation. No checksum is verified here."""
    fmt = _SECTOR_FORMATS[sector_size]
    zeros = _ZERO_CHUNKS[sector_size]
    end = min(len(buf) // sector_size, num_hosts + 2)
    view = memoryview(buf)
    out: list[tuple[int, Fields]] = []
    for first in range(2, end, _CHUNK):
        last = min(first + _CHUNK, end)
        if buf.startswith(zeros[: (last - first) * sector_size], first * sector_size):
            continue
        host_id = first - 1
        for fields in fmt.iter_unpack(view[first * sector_size : last * sector_size]):
            if fields != _ZERO_FIELDS:
                out.append((host_id, fields))
            host_id += 1
    return out


def proposed_dblock_ok(buf: bytes, sector_size: int, host_id: int, fields: Fields) -> bool:
    if not (fields[0] or fields[1] or fields[2] or fields[5] or fields[6]):
        return True  # an all-zero dblock is valid
    off = (host_id + 1) * sector_size
    return bool(crc.checksum(buf[off : off + 48]) == fields[6])


def proposed_phase(buf: bytes, next_lver: int, our_mbal: int) -> tuple[Fields | None, list[tuple[int, int]]]:
    """What a ballot phase computes from its read: best accepted value, shared holders, abort checks."""
    best: Fields | None = None
    sharers: list[tuple[int, int]] = []
    for host_id, f in proposed_scan(buf, GEOM.sector_size, GEOM.max_hosts):
        if f[8] & 1:
            sharers.append((host_id, f[10]))
        if f[5] < next_lver or not proposed_dblock_ok(buf, GEOM.sector_size, host_id, f):
            continue
        if f[5] > next_lver or f[0] > our_mbal:
            raise RuntimeError("abort")
        if f[2] and (best is None or f[1] > best[1]):
            best = f
    return best, sharers


def proposed_check_all(buf: bytes) -> int:
    """The same scan, verifying every dblock's checksum (the worst case: all in this ballot)."""
    return sum(proposed_dblock_ok(buf, GEOM.sector_size, h, f) for h, f in proposed_scan(buf, GEOM.sector_size, 2000))


def ballot_decode(buf: bytes) -> int:
    """What a ballot does with an area it read: check the leader, decode and checksum every dblock."""
    ld = verify_paxos_leader(buf, "LS", "R1")
    return len(decode_paxos_slots(buf, GEOM.sector_size, ld.num_hosts))


def verify_every_delta_record(buf: bytes) -> int:
    n = 0
    for h in range(1, GEOM.max_hosts + 1):
        verify_delta_leader(buf, GEOM.host_offset(h), "LS")
        n += 1
    return n


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
        ("resource 1 MiB, fresh (no dblocks)", ballot_decode, fresh),
        ("resource 1 MiB, host 1's dblock only", ballot_decode, one),
        ("resource 1 MiB, host 2000's dblock only", ballot_decode, last),
        ("resource 1 MiB, all 2000 dblocks", ballot_decode, full),
        ("resource 1 MiB, all 2000 dblocks, dump decode", lambda b: decode_resource_area(b, 0, GEOM, True), full),
        ("proposed: fresh", proposed_check_all, fresh),
        ("proposed: host 1's dblock only", proposed_check_all, one),
        ("proposed: host 2000's dblock only", proposed_check_all, last),
        ("proposed: all 2000, checksum every dblock", proposed_check_all, full),
        ("proposed: all 2000, ballot phase (older lvers)", lambda b: proposed_phase(b, 8, 1 << 62), full),
        ("lockspace 1 MiB, 3 hosts, verify all 2000 records", verify_every_delta_record, ls_few),
        ("lockspace 1 MiB, 3 hosts, renewal host-table pass", host_table_steady(ls_few), ls_few),
        ("lockspace 1 MiB, 2000 hosts, renewal host-table pass", host_table_steady(ls_full), ls_full),
        ("lockspace 1 MiB, 3 hosts, dump decode", lambda b: decode_lockspace_area(b, 0, GEOM), ls_few),
        ("lockspace 1 MiB, 2000 hosts, dump decode", lambda b: decode_lockspace_area(b, 0, GEOM), ls_full),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lockengine.bench.decode", description="CPU cost of decoding and checking whole lease areas.")
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
