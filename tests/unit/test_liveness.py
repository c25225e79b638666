"""Owner liveness for paxos acquire (sanlock-facts §8 step 2, §7): RUN / ALIVE / WAIT verdicts from
the owner's delta record and our host table, with a fake clock; and the whole wait inside
PaxosLease.acquire against an owner that renews, dies, or leaves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lockengine.delta import HostTable
from lockengine.errors import CODES, LockError
from lockengine.liveness import ALIVE, RUN, WAIT, DeltaOwnerLiveness
from lockengine.ondisk import Geometry, Leader, new_delta_leader
from lockengine.paxos import PaxosLease
from lockengine.storage import DirectStorage
from tests.support.leasekit import Disk, FakeClock
from tests.support.testdisk import LS, LS_OFFSET, RES, RES_OFFSET, make_disk

G = Geometry(512, 1 << 20)
IO = 1
FIRE = 2
DEAD = 8 * IO + FIRE


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "live.img"
    make_disk(p, G)
    return p


@pytest.fixture
def disk(path: Path) -> Iterator[Disk]:
    d = Disk(path, G)
    yield d
    d.close()


@pytest.fixture
def storage(path: Path) -> Iterator[DirectStorage]:
    with DirectStorage(str(path)) as st:
        yield st


def owner_record(host_id: int = 4, *, gen: int = 2, ts: int = 500, io: int = IO) -> Leader:
    return replace(new_delta_leader(LS, G, io), owner_id=host_id, owner_generation=gen, resource_name=f"h{host_id}", timestamp=ts)


def lease_leader(owner: int = 4, gen: int = 2) -> Leader:
    return Leader(
        magic=0, version=0, flags=0, sector_size=512, num_hosts=2000, max_hosts=2000, owner_id=owner,
        owner_generation=gen, lver=3, space_name=LS, resource_name=RES, timestamp=77, write_id=owner,
    )


def liveness(storage: DirectStorage, clock: FakeClock, table: HostTable | None = None) -> DeltaOwnerLiveness:
    return DeltaOwnerLiveness(storage, LS_OFFSET, LS, G, io_timeout=IO, fire_timeout=FIRE, table=table, clock=clock)


# --------------------------------------------------------------------------- verdicts


def test_run_when_the_owner_released_its_host_id(disk: Disk, storage: DirectStorage) -> None:
    disk.put_delta(4, owner_record(ts=0))
    lv = liveness(storage, FakeClock())
    ld = lease_leader()
    assert lv.check(ld, lv.begin(ld)) == (RUN, 0.0)


@pytest.mark.parametrize("record", [owner_record(gen=3), owner_record(gen=9), replace(owner_record(), owner_id=5)])
def test_run_when_the_slot_was_acquired_again_since(disk: Disk, storage: DirectStorage, record: Leader) -> None:
    disk.put_delta(4, record)
    lv = liveness(storage, FakeClock())
    ld = lease_leader(gen=2)
    assert lv.check(ld, lv.begin(ld))[0] == RUN


def test_alive_when_the_timestamp_changes_while_we_watch(disk: Disk, storage: DirectStorage) -> None:
    disk.put_delta(4, owner_record(ts=500))
    clock = FakeClock()
    lv = liveness(storage, clock)
    ld = lease_leader()
    watch = lv.begin(ld)
    assert lv.check(ld, watch) == (WAIT, DEAD)
    clock.now += 1
    disk.put_delta(4, owner_record(ts=502))
    assert lv.check(ld, watch)[0] == ALIVE


@pytest.mark.parametrize("owner_io", [1, 3])
def test_wait_then_run_after_host_dead_seconds_of_our_clock(disk: Disk, storage: DirectStorage, owner_io: int) -> None:
    disk.put_delta(4, owner_record(ts=500, io=owner_io))
    clock = FakeClock()
    lv = liveness(storage, clock)
    ld = lease_leader()
    watch = lv.begin(ld)
    dead_after = 8 * owner_io + FIRE  # the owner's own io_timeout, from its record
    assert lv.check(ld, watch) == (WAIT, dead_after)
    clock.now += dead_after / 2
    assert lv.check(ld, watch) == (WAIT, dead_after / 2)
    clock.now += dead_after / 2
    assert lv.check(ld, watch) == (WAIT, 0.0)  # not yet: "dead" is strictly after
    clock.now += 0.5
    assert lv.check(ld, watch) == (RUN, 0.0)


def test_owner_record_failing_validation_is_an_error_not_a_verdict(disk: Disk, storage: DirectStorage) -> None:
    raw = bytearray(owner_record(ts=0).encode())  # a free-looking record ...
    raw[100] ^= 0x40  # ... that fails its checksum
    disk.st.write(LS_OFFSET + G.host_offset(4), bytes(raw) + bytes(312), 5)
    lv = liveness(storage, FakeClock())
    ld = lease_leader()
    with pytest.raises(LockError) as e:
        lv.check(ld, lv.begin(ld))
    assert e.value.name == "LEADER_CHECKSUM"
    with pytest.raises(LockError):
        lv.holder_dead(4, 2)


# --------------------------------------------------------------------------- with a host table


def observed(table: HostTable, disk: Disk, now: float) -> None:
    table.observe(disk.lockspace_bytes(), now)


def test_table_that_saw_the_owner_renew_at_its_last_check_says_alive_at_once(disk: Disk, storage: DirectStorage) -> None:
    clock = FakeClock(100.0)
    table = HostTable(LS, G, 2, FIRE, IO)
    disk.put_delta(4, owner_record(ts=50))
    observed(table, disk, 96.0)
    disk.put_delta(4, owner_record(ts=52))
    observed(table, disk, 98.0)  # a change at our latest check
    lv = liveness(storage, clock, table)
    ld = lease_leader()
    assert lv.check(ld, lv.begin(ld))[0] == ALIVE


def test_table_that_last_saw_a_change_long_ago_counts_from_then(disk: Disk, storage: DirectStorage) -> None:
    table = HostTable(LS, G, 2, FIRE, IO)
    disk.put_delta(4, owner_record(ts=50))
    observed(table, disk, 90.0)
    disk.put_delta(4, owner_record(ts=52))
    observed(table, disk, 92.0)  # last change seen at 92
    observed(table, disk, 94.0)  # then no change
    clock = FakeClock(92.0 + DEAD - 1)
    lv = liveness(storage, clock, table)
    ld = lease_leader()
    watch = lv.begin(ld)
    assert lv.check(ld, watch) == (WAIT, 1.0)
    clock.now += 1.5
    assert lv.check(ld, watch)[0] == RUN


def test_table_entry_of_another_generation_is_not_used(disk: Disk, storage: DirectStorage) -> None:
    table = HostTable(LS, G, 2, FIRE, IO)
    disk.put_delta(4, owner_record(gen=1, ts=50))
    observed(table, disk, 0.0)
    disk.put_delta(4, owner_record(gen=1, ts=52))
    observed(table, disk, 2.0)
    disk.put_delta(4, owner_record(gen=2, ts=60))  # the owner rejoined; the table has not seen it
    clock = FakeClock(500.0)
    lv = liveness(storage, clock, table)
    ld = lease_leader(gen=2)
    watch = lv.begin(ld)
    assert watch.wait_start == 500.0 and not watch.seen_renewing
    assert lv.check(ld, watch)[0] == WAIT


def test_holder_dead_judgement(disk: Disk, storage: DirectStorage) -> None:
    clock = FakeClock(0.0)
    table = HostTable(LS, G, 2, FIRE, IO)
    disk.put_delta(4, owner_record(gen=2, ts=50))
    disk.put_delta(5, owner_record(5, gen=1, ts=0))
    disk.put_delta(6, owner_record(6, gen=7, ts=50))
    observed(table, disk, 0.0)
    disk.put_delta(4, owner_record(gen=2, ts=52))
    observed(table, disk, 2.0)
    lv_no_table = liveness(storage, clock)
    assert lv_no_table.holder_dead(5, 1)  # released its host id
    assert lv_no_table.holder_dead(6, 3)  # host id taken again since (generation 7 > 3)
    assert not lv_no_table.holder_dead(4, 2)  # without a table we cannot tell it is dead
    lv = liveness(storage, clock, table)
    clock.now = 2.0 + 8 * IO  # FAIL, not DEAD
    assert not lv.holder_dead(4, 2)
    clock.now = 2.0 + DEAD + 0.1
    assert not lv.holder_dead(4, 2)  # not looked at since 2.0 (our renewals failing): it may have renewed
    observed(table, disk, clock.now)  # looked again: unchanged for more than host_dead that we watched
    assert lv.holder_dead(4, 2)


# --------------------------------------------------------------------------- inside acquire


class Acquirer:
    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.st = DirectStorage(str(path))
        self.lease = PaxosLease(
            self.st, LS, RES, RES_OFFSET, host_id=2, generation=1, geometry=G, io_timeout=IO,
            liveness=liveness(self.st, clock), clock=clock, sleep=clock.sleep,
        )


@pytest.fixture
def owned(disk: Disk, path: Path) -> Iterator[Disk]:
    """Resource held by host 4 (generation 2), whose delta record is live-looking."""
    disk.put_delta(4, owner_record(gen=2, ts=500))
    with DirectStorage(str(path)) as st:
        PaxosLease(st, LS, RES, RES_OFFSET, host_id=4, generation=2, geometry=G, io_timeout=IO).acquire()
    yield disk


def test_acquire_against_a_renewing_owner_is_idlive(owned: Disk, path: Path) -> None:
    clock = FakeClock()
    ticks = iter(range(502, 600, 2))
    clock.on_sleep = lambda s, what: owned.update_delta(4, timestamp=next(ticks)) if clock.now >= 1001 else None
    a = Acquirer(path, clock)
    try:
        with pytest.raises(LockError) as e:
            a.lease.acquire()
    finally:
        a.st.close()
    assert e.value.name == "ACQUIRE_IDLIVE" and e.value.code == CODES["ACQUIRE_IDLIVE"] == -243
    assert owned.leader().owner_id == 4


def test_acquire_takes_over_from_a_dead_owner_after_host_dead(owned: Disk, path: Path) -> None:
    clock = FakeClock()
    a = Acquirer(path, clock)
    try:
        ld = a.lease.acquire()
    finally:
        a.st.close()
    waits = [s for s, what in clock.sleeps if what == "acquire"]
    assert waits == [1.0] * (DEAD + 1)  # checked every second until more than host_dead passed
    assert (ld.owner_id, ld.lver) == (2, 2)


def test_acquire_runs_once_the_owner_leaves_its_lockspace(owned: Disk, path: Path) -> None:
    clock = FakeClock()
    clock.on_sleep = lambda s, what: owned.update_delta(4, timestamp=0) if len(clock.sleeps) == 3 else None
    a = Acquirer(path, clock)
    try:
        ld = a.lease.acquire()
    finally:
        a.st.close()
    assert len(clock.sleeps) == 3 and ld.owner_id == 2


def test_acquire_restarts_when_the_owner_releases_the_lease_meanwhile(owned: Disk, path: Path) -> None:
    clock = FakeClock()
    clock.on_sleep = lambda s, what: owned.update_leader(timestamp=0) if len(clock.sleeps) == 2 else None
    a = Acquirer(path, clock)
    try:
        ld = a.lease.acquire()
    finally:
        a.st.close()
    assert len(clock.sleeps) == 2 and ld.owner_id == 2


def test_owner_nowait_returns_owned_retry_with_the_time_left(owned: Disk, path: Path) -> None:
    clock = FakeClock()
    a = Acquirer(path, clock)
    try:
        with pytest.raises(LockError) as e:
            a.lease.acquire(nowait=True)
    finally:
        a.st.close()
    assert e.value.name == "ACQUIRE_OWNED_RETRY" and e.value.code == -247
    assert f"dead in {DEAD}" in e.value.message
    assert not clock.sleeps
