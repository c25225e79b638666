"""Delta leases (sanlock-facts §2, §6, §7): acquire / renew / release of a host_id slot, and the
host table's FREE/LIVE/FAIL/DEAD/UNKNOWN judgement — real O_DIRECT I/O on a file, fake clock and
sleep so a 140 s wait costs nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devkit.faults import Fault, FaultyStorage, IoRecord
from lockengine.delta import (
    DeltaLease,
    HostEvent,
    HostTable,
    abortable_sleep,
    monotime,
    read_lockspace_geometry,
)
from lockengine.errors import CODES, InputError, LockError
from lockengine.ondisk import (
    BITMAP_OFFSET,
    BITMAP_SIZE,
    LEADER_SIZE,
    Geometry,
    Leader,
    bitmap_with,
    lockspace_area,
    new_delta_leader,
)
from lockengine.storage import DirectStorage
from lockengine.timeouts import Timeouts
from tests.support.leasekit import Disk, FakeClock
from tests.support.testdisk import LS, LS_OFFSET, make_disk

G = Geometry(512, 1 << 20)
IO = 1
FIRE = 2


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "delta.img"
    make_disk(p, G)
    return p


@pytest.fixture
def disk(path: Path) -> Iterator[Disk]:
    d = Disk(path, G)
    yield d
    d.close()


class Host:
    def __init__(self, path: Path, host_id: int, name: str, *, io_timeout: int = IO, fire: int = FIRE) -> None:
        self.clock = FakeClock()
        self.log: list[IoRecord] = []
        self.storage = FaultyStorage(DirectStorage(str(path)), observer=self.log.append)
        self.lease = DeltaLease(
            self.storage, LS, host_id, LS_OFFSET, host_name=name, io_timeout=io_timeout, fire_timeout=fire,
            clock=self.clock, sleep=self.clock.sleep,
        )
        self.log.clear()  # the geometry probe

    def writes(self) -> list[IoRecord]:
        return [r for r in self.log if r.op == "write"]


@pytest.fixture
def hosts(path: Path) -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for h in made:
        h.storage.close()


def host(hosts: list[Host], path: Path, host_id: int, name: str, **kw: int) -> Host:
    h = Host(path, host_id, name, **kw)
    hosts.append(h)
    return h


def held_by(name: str, host_id: int, *, gen: int = 4, ts: int = 500, io: int = IO) -> Leader:
    return replace(
        new_delta_leader(LS, G, io), owner_id=host_id, owner_generation=gen, resource_name=name, timestamp=ts,
    )


def assert_error(exc: pytest.ExceptionInfo[LockError], name: str) -> None:
    assert exc.value.name == name
    assert exc.value.code == CODES[name]


# --------------------------------------------------------------------------- acquire


def test_acquire_free_slot_writes_once_waits_two_io_and_checks(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 3, "h3")
    got = h.lease.acquire()
    assert h.clock.sleeps == [(2 * IO, "acquire host id")]
    rec = disk.delta(3)
    ld = rec.leader
    assert (ld.owner_id, ld.owner_generation, ld.resource_name, ld.timestamp, ld.io_timeout) == (3, 1, "h3", 1000, IO)
    assert rec.bitmap == bytes(BITMAP_SIZE)
    assert got == ld
    assert h.lease.generation == 1 and h.lease.last_success == 1000
    assert [(r.op, r.offset) for r in h.log] == [("read", 1024), ("write", 1024), ("read", 1024)]


def test_acquire_waits_two_io_of_the_slot_record(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.update_delta(3, io_timeout=7)  # a free slot last written with io_timeout 7
    h = host(hosts, path, 3, "h3")
    h.lease.acquire()
    assert h.clock.sleeps == [(14, "acquire host id")]
    assert disk.delta(3).leader.io_timeout == IO  # we write our own


def test_generation_grows_and_a_released_slot_keeps_its_owner(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 3, "h3")
    h.lease.acquire()
    h.lease.release()
    ld = disk.delta(3).leader
    assert (ld.owner_id, ld.owner_generation, ld.resource_name, ld.timestamp) == (3, 1, "h3", 0)
    other = host(hosts, path, 3, "someone-else")
    other.lease.acquire()  # a released slot is waited on (it may be a stale release landed late): issue 8
    busy = Timeouts(IO, FIRE).delta_acquire_busy_wait
    assert other.clock.sleeps == [(busy, "acquire host id"), (2 * IO, "acquire host id")]
    assert other.lease.generation == 2
    assert disk.delta(3).leader.resource_name == "someone-else"


def test_own_name_on_an_unreleased_slot_waits_like_any_other(disk: Disk, hosts: list[Host], path: Path) -> None:
    """No fast path on our own name (issue 8): a late write of our old record may have landed over a
    newer holder's, so our name proves nothing."""
    disk.put_delta(3, held_by("h3", 3, gen=4))  # we crashed holding it
    h = host(hosts, path, 3, "h3")
    h.lease.acquire()
    busy = Timeouts(IO, FIRE).delta_acquire_busy_wait
    assert h.clock.sleeps == [(busy, "acquire host id"), (2 * IO, "acquire host id")]
    assert h.lease.generation == 5


def test_a_slot_that_turns_free_during_the_wait_is_waited_on_again(disk: Disk, hosts: list[Host], path: Path) -> None:
    """A clean release and a stale release landing late look alike: the wait restarts from the free
    record once; a second change is HOSTID_BUSY."""
    disk.put_delta(3, held_by("other", 3))
    h = host(hosts, path, 3, "h3")
    h.clock.on_sleep = lambda s, what: disk.update_delta(3, timestamp=0) if len(h.clock.sleeps) == 1 else None
    h.lease.acquire()
    busy = Timeouts(IO, FIRE).delta_acquire_busy_wait
    assert h.clock.sleeps == [(busy, "acquire host id")] * 2 + [(2 * IO, "acquire host id")]
    disk.put_delta(4, held_by("other", 4))
    g = host(hosts, path, 4, "h4")
    g.clock.on_sleep = lambda s, what: disk.update_delta(4, timestamp=0, owner_generation=len(g.clock.sleeps) + 7)
    with pytest.raises(LockError) as e:
        g.lease.acquire()
    assert_error(e, "HOSTID_BUSY")
    assert g.clock.sleeps == [(busy, "acquire host id")] * 2 and not g.writes()


@pytest.mark.parametrize(("other_io", "fire", "wait"), [(1, 2, 10), (3, 2, 26), (10, 60, 140)])
def test_slot_renewed_by_another_name_is_hostid_busy_after_the_wait(
    disk: Disk, hosts: list[Host], path: Path, other_io: int, fire: int, wait: int
) -> None:
    disk.put_delta(3, held_by("other", 3, io=other_io))
    h = host(hosts, path, 3, "h3", fire=fire)
    h.clock.on_sleep = lambda s, what: disk.update_delta(3, timestamp=500 + int(s))  # it renews meanwhile
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "HOSTID_BUSY")
    assert e.value.code == -262
    assert h.clock.sleeps == [(wait, "acquire host id")] == [(max(Timeouts(other_io, fire).host_dead_seconds, 8 * other_io), "acquire host id")]
    assert not h.writes()
    assert disk.delta(3).leader.resource_name == "other"


def test_stale_slot_of_another_name_is_taken_after_the_wait(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_delta(3, held_by("crashed", 3, gen=4))
    h = host(hosts, path, 3, "h3")
    h.lease.acquire()
    assert h.clock.sleeps == [(8 * IO + FIRE, "acquire host id"), (2 * IO, "acquire host id")]
    ld = disk.delta(3).leader
    assert (ld.resource_name, ld.owner_generation) == ("h3", 5)


def test_slot_released_during_the_wait_is_taken(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_delta(3, held_by("leaving", 3, gen=4))
    h = host(hosts, path, 3, "h3")
    h.clock.on_sleep = lambda s, what: disk.update_delta(3, timestamp=0) if s > 2 else None
    h.lease.acquire()
    assert disk.delta(3).leader.resource_name == "h3"


def test_another_write_during_the_short_wait_is_hostid_busy(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 3, "h3")
    h.clock.on_sleep = lambda s, what: disk.put_delta(3, held_by("racer", 3, gen=1, ts=999))
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "HOSTID_BUSY")
    assert "racer" in e.value.message
    assert h.lease.generation == 0
    with pytest.raises(LockError) as e2:
        h.lease.renew()
    assert_error(e2, "ERROR")


@pytest.mark.parametrize("corrupt", ["checksum", "magic", "lockspace"])
def test_invalid_slot_record_is_never_taken_as_free(disk: Disk, hosts: list[Host], path: Path, corrupt: str) -> None:
    raw = bytearray(disk.slot_raw(3))  # a free slot (timestamp 0) ...
    if corrupt == "checksum":
        raw[40] ^= 0x01
    elif corrupt == "magic":
        raw[0] ^= 0xFF
    else:
        disk.put_delta(3, replace(disk.delta(3).leader, space_name="XX"))
        raw = bytearray(disk.slot_raw(3))
    disk.st.write(LS_OFFSET + 1024, bytes(raw), 5)
    h = host(hosts, path, 3, "h3")
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert e.value.name.startswith("LEADER_")
    assert not h.writes()
    assert disk.slot_raw(3) == bytes(raw)


def test_abort_during_the_wait_stops_the_acquire(disk: Disk, path: Path) -> None:
    disk.put_delta(3, held_by("other", 3))
    abort = threading.Event()
    abort.set()
    with DirectStorage(str(path)) as st:
        lease = DeltaLease(st, LS, 3, LS_OFFSET, host_name="h3", io_timeout=IO, fire_timeout=FIRE)
        with pytest.raises(LockError) as e:
            lease.acquire(abort=abort)
    assert_error(e, "ERROR")
    assert "aborted" in e.value.message
    assert disk.delta(3).leader.resource_name == "other"


def test_abortable_sleep_and_monotime() -> None:
    ev = threading.Event()
    ev.set()
    with pytest.raises(LockError):
        abortable_sleep(30, ev, "x")
    assert monotime(lambda: 0.2) == 1  # 0 would mean "free"
    assert monotime(lambda: 1234.9) == 1234


# --------------------------------------------------------------------------- renew


def acquired(hosts: list[Host], path: Path, host_id: int = 3, name: str = "h3") -> Host:
    h = host(hosts, path, host_id, name)
    h.lease.acquire()
    h.log.clear()
    return h


def test_renew_reads_the_whole_area_and_writes_a_new_timestamp(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.clock.now += 2
    area = h.lease.renew()
    assert len(area) == G.align_size
    ld = disk.delta(3).leader
    assert ld.timestamp == monotime(h.clock) == 1004 and ld.owner_generation == 1
    assert h.lease.last_success == 1004
    read, write = h.log
    assert (read.op, read.offset, read.length) == ("read", LS_OFFSET, G.align_size)
    assert (write.op, write.offset, write.length) == ("write", 1024, 512)
    assert write.timeout == Timeouts(IO, FIRE).host_dead_seconds  # a renewal write may take up to host_dead


def test_renew_carries_request_bits_and_events_for_their_time(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.lease.request_bit(5, 6)
    h.lease.set_event(9, generation=7, event=8, data=11)
    h.lease.renew()
    rec = disk.delta(3)
    assert rec.bit_set(5) and rec.bit_set(9) and not rec.bit_set(4)
    ld = rec.leader
    assert (ld.write_id, ld.write_generation, ld.write_timestamp) == (7, 8, 11)
    h.clock.now += 6 * IO + 0.5  # both bits have run their set_bitmap_seconds
    h.lease.renew()
    assert disk.delta(3).bitmap == bytes(BITMAP_SIZE)


def test_renew_finds_another_owner_and_stops(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    disk.update_delta(3, resource_name="intruder")
    with pytest.raises(LockError) as e:
        h.lease.renew()
    assert_error(e, "RENEW_OWNER")
    assert not h.writes()
    disk.update_delta(3, resource_name="h3", owner_generation=9)
    with pytest.raises(LockError) as e:
        h.lease.renew()
    assert_error(e, "RENEW_OWNER")


def test_renew_finds_a_record_it_did_not_write(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    disk.update_delta(3, timestamp=4242)
    with pytest.raises(LockError) as e:
        h.lease.renew()
    assert_error(e, "RENEW_DIFF")
    assert not h.writes()


def test_after_a_failed_renewal_the_next_one_skips_the_identity_check(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.clock.now += 2
    # the new leader lands whole, the bitmap only in part, and the device says EIO
    h.storage.inject(Fault("torn", "write", cut=LEADER_SIZE + 20))
    with pytest.raises(OSError):
        h.lease.renew()
    h.clock.now += 0.5
    assert disk.delta(3).leader.timestamp == 1004  # the torn write's new leader is on disk
    h.clock.now += 1
    h.lease.renew()  # the record is ours but not byte-identical to our last good write: allowed now
    assert disk.delta(3).leader.timestamp == 1005


def test_torn_renewal_leaves_a_record_that_fails_validation(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.clock.now += 2
    h.storage.inject(Fault("torn", "write", cut=160))  # new timestamp, old checksum
    with pytest.raises(OSError):
        h.lease.renew()
    with pytest.raises(LockError) as e:
        h.lease.renew()
    assert_error(e, "LEADER_CHECKSUM")


# --------------------------------------------------------------------------- release


def test_release_zeroes_the_timestamp_and_bitmap_and_keeps_the_rest(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.lease.set_event(5, generation=1, event=2, data=3)
    h.lease.renew()
    h.lease.release()
    rec = disk.delta(3)
    ld = rec.leader
    assert ld.timestamp == 0
    assert (ld.owner_id, ld.owner_generation, ld.resource_name, ld.io_timeout) == (3, 1, "h3", IO)
    assert (ld.write_id, ld.write_generation, ld.write_timestamp) == (1, 2, 3)
    assert rec.bitmap == bytes(BITMAP_SIZE)
    h.log.clear()
    h.lease.release()  # nothing held any more: nothing to do
    assert not h.log


def test_release_of_a_slot_no_longer_ours_writes_nothing(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    disk.put_delta(3, held_by("thief", 3, gen=2))
    with pytest.raises(LockError) as e:
        h.lease.release()
    assert_error(e, "RENEW_OWNER")
    assert not h.writes()
    assert disk.delta(3).leader.resource_name == "thief"


def rejoin(hosts: list[Host], path: Path, old: Host) -> Host:
    """A new DeltaLease for the same slot and name, as the daemon's next join makes it."""
    h = host(hosts, path, old.lease.host_id, old.lease.host_name)
    h.lease.released = old.lease.released
    h.clock.now = old.clock.now
    return h


def test_a_clean_release_is_rejoined_without_the_busy_wait(disk: Disk, hosts: list[Host], path: Path) -> None:
    """The record our own clean release left, still on disk byte for byte: nobody has written the
    slot since, so the rejoin is the race for a never-acquired slot (2·io)."""
    h = acquired(hosts, path)
    h.lease.release()
    assert h.lease.released == disk.st.read(disk.geometry.host_offset(3) + LS_OFFSET, G.sector_size, 1)
    again = rejoin(hosts, path, h)
    again.lease.acquire()
    assert again.clock.sleeps == [(2 * IO, "acquire host id")]
    assert again.lease.generation == 2 and again.lease.released is None  # one use


def test_a_rejoin_waits_once_anything_wrote_the_slot(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = acquired(hosts, path)
    h.lease.release()
    disk.update_delta(3, write_timestamp=9)  # any change at all (here: only the event fields)
    again = rejoin(hosts, path, h)
    again.lease.acquire()
    busy = Timeouts(IO, FIRE).delta_acquire_busy_wait
    assert again.clock.sleeps == [(busy, "acquire host id"), (2 * IO, "acquire host id")]


def test_a_release_after_the_lease_expired_leaves_no_fast_rejoin(disk: Disk, hosts: list[Host], path: Path) -> None:
    """Another host may have taken the id and been overwritten by this late release: wait."""
    h = acquired(hosts, path)
    h.clock.now = Timeouts(IO, FIRE).expiry(h.lease.last_success)
    h.lease.release()
    assert disk.delta(3).leader.timestamp == 0 and h.lease.released is None
    again = rejoin(hosts, path, h)
    again.lease.acquire()
    assert len(again.clock.sleeps) == 2


@pytest.mark.parametrize("kind", ["eio", "hang"])
def test_a_release_whose_write_failed_leaves_no_fast_rejoin(disk: Disk, hosts: list[Host], path: Path,
                                                            kind: str) -> None:
    """The record may still land, late, over a newer holder's: nothing is remembered."""
    h = acquired(hosts, path)
    h.storage.inject(Fault(kind, "write", lands=True))  # type: ignore[arg-type]
    with pytest.raises((LockError, OSError)):
        h.lease.release()
    assert h.lease.released is None
    again = rejoin(hosts, path, h)
    again.lease.acquire()
    assert len(again.clock.sleeps) == 2


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"io_timeout": 0}, "io_timeout"), ({"io_timeout": 256}, "io_timeout"), ({"host_id": 0}, "host_id"),
     ({"host_id": 2001}, "host_id"), ({"offset": 512}, "offset"), ({"host_name": "a:b"}, "host_name")],
)
def test_bad_input_names_the_field_and_writes_nothing(disk: Disk, path: Path, kw: dict[str, object], field: str) -> None:
    before = disk.lockspace_bytes()
    args: dict[str, object] = {"host_id": 3, "offset": LS_OFFSET, "host_name": "h3", "io_timeout": IO, **kw}
    with DirectStorage(str(path)) as st, pytest.raises(InputError) as e:
        DeltaLease(st, LS, args["host_id"], args["offset"], host_name=args["host_name"],  # type: ignore[arg-type]
                   io_timeout=args["io_timeout"], geometry=G)  # type: ignore[arg-type]
    assert e.value.field == field
    assert disk.lockspace_bytes() == before


def test_geometry_comes_from_host_one_record(tmp_path: Path) -> None:
    p = tmp_path / "g4k.img"
    g4 = Geometry(4096, 1 << 20)
    make_disk(p, g4)
    with DirectStorage(str(p)) as st:
        assert read_lockspace_geometry(st, LS_OFFSET, LS, 1) == g4
        with pytest.raises(LockError) as e:
            read_lockspace_geometry(st, LS_OFFSET, "OTHER", 1)
        assert_error(e, "LEADER_LOCKSPACE")
        lease = DeltaLease(st, LS, 2, LS_OFFSET, host_name="h2", io_timeout=IO, clock=FakeClock(), sleep=FakeClock().sleep)
        assert lease.geometry == g4 and lease.slot_offset == 4096


# --------------------------------------------------------------------------- host table


def area_with(*records: tuple[int, Leader], bitmaps: dict[int, bytes] | None = None) -> bytes:
    area = bytearray(lockspace_area(LS, G, IO))
    area[:LEADER_SIZE] = new_delta_leader(LS, G, IO).encode()
    for host_id, ld in records:
        off = G.host_offset(host_id)
        area[off : off + LEADER_SIZE] = ld.encode()
        bm = (bitmaps or {}).get(host_id)
        if bm is not None:
            area[off + BITMAP_OFFSET : off + BITMAP_OFFSET + BITMAP_SIZE] = bm
    return bytes(area)


def test_host_table_states_follow_our_own_observation_times() -> None:
    t = HostTable(LS, G, our_host_id=1, fire_timeout=FIRE, our_io_timeout=IO)
    assert t.state(2, 0.0) == "UNKNOWN"  # nothing read yet
    me = held_by("me", 1, gen=1, ts=10)
    t.observe(area_with((1, me), (2, held_by("b", 2, ts=50)), (3, held_by("c", 3, ts=0))), 100.0)
    assert t.state(1, 100.0) == "LIVE"  # our own id
    assert t.state(2, 100.0) == "UNKNOWN"  # seen once, no change yet
    assert t.state(3, 100.0) == "FREE"  # timestamp 0
    assert t.state(4, 100.0) == "FREE"  # never acquired
    t.observe(area_with((1, me), (2, held_by("b", 2, ts=52)), (3, held_by("c", 3, ts=0))), 102.0)
    assert t.state(2, 102.0) == "LIVE"
    assert t.state(2, 102.0 + 8 * IO) == "LIVE"
    assert t.state(2, 102.0 + 8 * IO + 0.1) == "FAIL"
    assert t.state(2, 102.0 + 8 * IO + FIRE) == "FAIL"
    assert t.state(2, 102.0 + 8 * IO + FIRE + 0.1) == "DEAD"
    info = t.info(2)
    assert info is not None and (info.last_live, info.timestamp, info.host_name) == (102.0, 52, "b")
    states = {h.host_id: h.state for h in t.hosts(102.0 + 9 * IO)}
    assert states == {1: "LIVE", 2: "FAIL", 3: "FREE"}


def test_host_table_uses_each_hosts_own_io_timeout() -> None:
    t = HostTable(LS, G, our_host_id=1, fire_timeout=FIRE, our_io_timeout=IO)
    t.observe(area_with((2, held_by("slow", 2, ts=50, io=3))), 0.0)
    t.observe(area_with((2, held_by("slow", 2, ts=56, io=3))), 6.0)
    assert t.state(2, 6.0 + 8 * 3 - 0.1) == "LIVE"
    assert t.state(2, 6.0 + 8 * 3 + 0.1) == "FAIL"
    assert t.state(2, 6.0 + 8 * 3 + FIRE + 0.1) == "DEAD"


def test_host_table_sees_a_generation_change_as_life() -> None:
    t = HostTable(LS, G, our_host_id=1, fire_timeout=FIRE, our_io_timeout=IO)
    t.observe(area_with((2, held_by("b", 2, gen=1, ts=50))), 0.0)
    t.observe(area_with((2, held_by("b", 2, gen=2, ts=50))), 20.0)
    assert t.state(2, 20.0) == "LIVE"


def test_host_table_never_reports_an_invalid_record_as_free() -> None:
    """A slot whose record fails validation (torn, foreign) is not free: it may be held by a live
    host whose last write was torn, and a host-id assignment that trusted FREE would collide."""
    t = HostTable(LS, G, our_host_id=1, fire_timeout=FIRE, our_io_timeout=IO)
    area = bytearray(area_with((1, held_by("me", 1, ts=10)), (3, held_by("c", 3, ts=70))))
    area[G.host_offset(3) + 40] ^= 0x01  # break slot 3's checksum
    t.observe(bytes(area), 100.0)
    assert t.state(3, 100.0) != "FREE"


def test_host_table_keeps_the_last_good_view_of_a_slot_that_turns_invalid() -> None:
    t = HostTable(LS, G, our_host_id=1, fire_timeout=FIRE, our_io_timeout=IO)
    t.observe(area_with((3, held_by("c", 3, ts=70))), 0.0)
    t.observe(area_with((3, held_by("c", 3, ts=72))), 2.0)
    area = bytearray(area_with((3, held_by("c", 3, ts=74))))
    area[G.host_offset(3) + 40] ^= 0x01
    t.observe(bytes(area), 4.0)
    info = t.info(3)
    assert info is not None and info.timestamp == 72 and info.last_live == 2.0
    assert t.state(3, 4.0) == "LIVE"


def test_host_table_reports_our_bit_in_other_hosts_bitmaps_as_events() -> None:
    t = HostTable(LS, G, our_host_id=4, fire_timeout=FIRE, our_io_timeout=IO)
    sender = replace(held_by("s", 2, ts=50), write_id=7, write_generation=8, write_timestamp=9)
    other = held_by("o", 3, ts=50)
    me = held_by("me", 4, ts=50)
    events = t.observe(
        area_with((2, sender), (3, other), (4, me), bitmaps={2: bitmap_with({4}), 3: bitmap_with({5}), 4: bitmap_with({4})}),
        1.0,
    )
    assert events == [HostEvent(2, 7, 8, 9)]
    # the same records again: nothing new to report
    assert t.observe(area_with((2, sender), (3, other), (4, me), bitmaps={2: bitmap_with({4})}), 2.0) == []
