"""A record that fails validation (bad checksum, wrong magic, torn) is never treated as free: every
acquire path refuses with a LEADER_* error and writes nothing, whatever bytes of the checked part
(bytes 0..171: every field up to and including the checksum) are damaged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devkit.faults import FaultyStorage, IoRecord
from lockengine.delta import DeltaLease
from lockengine.errors import LockError
from lockengine.liveness import DeltaOwnerLiveness
from lockengine.ondisk import LEADER_CHECKSUM_LEN, Geometry, Leader
from lockengine.paxos import PaxosLease, request
from lockengine.storage import DirectStorage
from tests.support.leasekit import Disk, FakeClock
from tests.support.testdisk import LS, LS_OFFSET, RES, RES_OFFSET, make_disk

CHECKED = LEADER_CHECKSUM_LEN + 4  # the checksum covers 0..167 and sits at 168..171


@pytest.fixture(scope="module")
def disk_path(disk_dir: Path) -> Iterator[Path]:
    p = disk_dir / "invalid-records.img"
    p.write_bytes(b"")
    yield p
    p.unlink(missing_ok=True)


damage = st.lists(st.tuples(st.integers(0, CHECKED - 1), st.integers(1, 255)), min_size=1, max_size=4, unique_by=lambda t: t[0])


def corrupt(raw: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(raw)
    for off, x in flips:
        out[off] ^= x
    return bytes(out)


def writes(log: list[IoRecord]) -> list[IoRecord]:
    return [r for r in log if r.op == "write"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    geometry=st.sampled_from([Geometry(512, 1 << 20), Geometry(4096, 1 << 20)]),
    slot=st.sampled_from(["free", "ours", "other"]),
    flips=damage,
)
def test_invalid_delta_slot_is_never_free(disk_path: Path, geometry: Geometry, slot: str, flips: list[tuple[int, int]]) -> None:
    make_disk(disk_path, geometry)
    d = Disk(disk_path, geometry)
    try:
        if slot != "free":
            d.update_delta(3, owner_id=3, owner_generation=2, timestamp=500, resource_name="h3" if slot == "ours" else "x")
        bad = corrupt(d.slot_raw(3), flips)
        d.st.write(LS_OFFSET + geometry.host_offset(3), bad, 5)
        log: list[IoRecord] = []
        clock = FakeClock()
        fs = FaultyStorage(DirectStorage(str(disk_path)), observer=log.append)
        try:
            lease = DeltaLease(fs, LS, 3, LS_OFFSET, host_name="h3", io_timeout=1, geometry=geometry,
                               fire_timeout=2, clock=clock, sleep=clock.sleep)
            with pytest.raises(LockError) as e:
                lease.acquire()
            assert e.value.name.startswith("LEADER_"), e.value
            # the owner-liveness check of a paxos acquire must not read it as "released" either
            live = DeltaOwnerLiveness(fs, LS_OFFSET, LS, geometry, io_timeout=1, fire_timeout=2, clock=clock)
            leader = Leader(0, 0, 0, geometry.sector_size, 1, 1, 3, 2, 1, LS, RES, 99)
            with pytest.raises(LockError):
                live.check(leader, live.begin(leader))
            with pytest.raises(LockError):
                live.holder_dead(3, 2)
        finally:
            fs.close()
        assert not writes(log)
        assert d.slot_raw(3) == bad
    finally:
        d.close()


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    geometry=st.sampled_from([Geometry(512, 1 << 20), Geometry(4096, 1 << 20)]),
    held=st.booleans(),
    shared=st.booleans(),
    flips=damage,
)
def test_invalid_resource_leader_is_never_free(
    disk_path: Path, geometry: Geometry, held: bool, shared: bool, flips: list[tuple[int, int]]
) -> None:
    make_disk(disk_path, geometry)
    d = Disk(disk_path, geometry)
    try:
        if held:
            d.update_leader(owner_id=4, owner_generation=1, lver=3, timestamp=500, write_id=4)
        sector = d.st.read(RES_OFFSET, geometry.sector_size, 5)
        bad = corrupt(sector, flips)
        d.st.write(RES_OFFSET, bad, 5)
        before = d.resource_bytes()
        log: list[IoRecord] = []
        clock = FakeClock()
        fs = FaultyStorage(DirectStorage(str(disk_path)), observer=log.append)
        try:
            lease = PaxosLease(fs, LS, RES, RES_OFFSET, host_id=2, generation=1, geometry=geometry, io_timeout=1,
                               clock=clock, sleep=clock.sleep)
            with pytest.raises(LockError) as e:
                lease.acquire(shared=shared)
            assert e.value.name.startswith("LEADER_"), e.value
            with pytest.raises(LockError) as e:
                request(fs, RES_OFFSET, LS, RES, None, 1, io_timeout=1)
            assert e.value.name.startswith("LEADER_")
        finally:
            fs.close()
        assert not writes(log)
        assert d.resource_bytes() == before
    finally:
        d.close()


def test_a_single_flipped_bit_anywhere_in_the_checked_part_is_caught(disk_path: Path) -> None:
    """Exhaustive over one byte position per field boundary: CRC-32C catches every single-bit error."""
    g = Geometry(512, 1 << 20)
    make_disk(disk_path, g)
    d = Disk(disk_path, g)
    try:
        good = replace(d.delta(3).leader, owner_id=3, owner_generation=2, timestamp=0, resource_name="x")
        d.put_delta(3, good)
        clean = d.slot_raw(3)
        with DirectStorage(str(disk_path)) as st_:
            for off in range(0, CHECKED):
                for bit in (0x01, 0x80):
                    d.st.write(LS_OFFSET + g.host_offset(3), corrupt(clean, [(off, bit)]), 5)
                    lease = DeltaLease(st_, LS, 3, LS_OFFSET, host_name="h3", io_timeout=1, geometry=g,
                                       clock=FakeClock(), sleep=FakeClock().sleep)
                    with pytest.raises(LockError):
                        lease.acquire()
    finally:
        d.close()
