"""Disk Paxos resource leases (sanlock-facts §3, §8): ballot numbering and abort rules, commit,
release, shared leases, and the request record — each on a real file with O_DIRECT I/O, with other
hosts' records placed on disk at exact points through the FaultyStorage gate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devkit.faults import Fault, FaultyStorage, IoRecord
from lockengine.clock import monotime
from lockengine.errors import CODES, InputError, LockError
from lockengine.liveness import ALIVE, RUN
from lockengine.ondisk import (
    DBLOCK_FL_RELEASED,
    LFL_SHORT_HOLD,
    MBLOCK_SHARED,
    DBlock,
    Geometry,
    ModeBlock,
    RequestRecord,
    decode_leader,
)
from lockengine.paxos import SH_RETRIES, PaxosLease, read_request, request
from lockengine.storage import DirectStorage
from tests.support.leasekit import Disk, FakeClock, Interleave, NoLiveness, StubLiveness
from tests.support.testdisk import LS, RES, RES_OFFSET, make_disk

G512 = Geometry(512, 1 << 20)
G4K = Geometry(4096, 1 << 20)
START = 1000.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "paxos.img"
    make_disk(p, G512)
    return p


@pytest.fixture
def disk(path: Path) -> Iterator[Disk]:
    d = Disk(path, G512)
    yield d
    d.close()


class Host:
    """One host's view: its own fd, a FaultyStorage with a gate, a fake clock, a PaxosLease."""

    def __init__(
        self, path: Path, host_id: int, generation: int = 1, *, geometry: Geometry = G512,
        liveness: object = None, gate: Interleave | None = None,
    ) -> None:
        self.clock = FakeClock(START)
        self.gate = gate or Interleave()
        self.log: list[IoRecord] = []
        self.storage = FaultyStorage(DirectStorage(str(path)), gate=self.gate, observer=self.log.append)
        self.lease = PaxosLease(
            self.storage, LS, RES, RES_OFFSET, host_id=host_id, generation=generation, geometry=geometry,
            io_timeout=1, liveness=liveness, clock=self.clock, sleep=self.clock.sleep,  # type: ignore[arg-type]
        )

    def writes(self) -> list[IoRecord]:
        return [r for r in self.log if r.op == "write"]

    def leader_writes(self) -> list[IoRecord]:
        return [r for r in self.writes() if r.offset == RES_OFFSET]

    def close(self) -> None:
        self.storage.close()


@pytest.fixture
def hosts(path: Path) -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for h in made:
        h.close()


def host(hosts: list[Host], path: Path, host_id: int, generation: int = 1, **kw: object) -> Host:
    h = Host(path, host_id, generation, **kw)  # type: ignore[arg-type]
    hosts.append(h)
    return h


def assert_error(exc: pytest.ExceptionInfo[LockError], name: str) -> None:
    assert exc.value.name == name
    assert exc.value.code == CODES[name]


# --------------------------------------------------------------------------- ballot numbering


def test_first_ballot_uses_host_id_as_mbal_and_commits_us(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 3, generation=5)
    ld = h.lease.acquire()
    db = disk.slots()[3].dblock
    assert (db.mbal, db.bal, db.inp, db.inp2, db.inp3, db.lver) == (3, 3, 3, 5, monotime(h.clock), 1)
    on_disk = disk.leader()
    assert replace(on_disk, checksum=0) == replace(ld, checksum=0)
    assert (on_disk.owner_id, on_disk.owner_generation, on_disk.lver, on_disk.timestamp) == (3, 5, 1, 1000)
    assert (on_disk.write_id, on_disk.write_generation, on_disk.write_timestamp) == (3, 5, 1000)
    assert not on_disk.flags & LFL_SHORT_HOLD
    # facts §8: a free lease costs 3 large reads and 3 single-sector writes
    assert [r.op for r in h.log] == ["read", "write", "read", "write", "read", "write"]
    assert all(r.length == G512.sector_size for r in h.writes())


@pytest.mark.parametrize("geometry", [G512, G4K], ids=["512-1M", "4K-1M"])
def test_next_mbal_is_above_the_highest_seen_and_congruent_to_host_id(tmp_path: Path, geometry: Geometry) -> None:
    p = tmp_path / "mbal.img"
    make_disk(p, geometry)
    d = Disk(p, geometry)
    m = geometry.max_hosts
    seen = 2 * m + 5  # host 5's third ballot
    d.put_dblock(5, DBlock(mbal=seen, lver=1))
    d.put_dblock(7, DBlock(mbal=9 * m + 7, lver=1), raw_checksum=0xDEAD)  # unreadable: not counted
    h = Host(p, 2, geometry=geometry)
    try:
        h.lease.acquire()
        mine = d.slots()[2].dblock
        assert mine.mbal == seen - seen % m + m + 2 == 3 * m + 2
        assert mine.mbal % m == 2
    finally:
        h.close()
        d.close()


def test_higher_mbal_aborts_the_ballot_and_the_retry_adds_max_hosts(disk: Disk, hosts: list[Host], path: Path) -> None:
    m = G512.max_hosts
    rival = DBlock(mbal=m + 5, lver=1)  # host 5's second ballot, written while we are in phase 1
    gate = Interleave({2: lambda: disk.put_dblock(5, rival)})
    h = host(hosts, path, 2, gate=gate)
    ld = h.lease.acquire()
    retries = [s for s in h.clock.sleeps if s[1] == "ballot retry"]
    # 2 aborts (we are behind), then 2 + 2·max_hosts beats m + 5
    assert len(retries) == 2 and all(0 <= s < 1 for s, _ in retries)
    assert disk.slots()[2].dblock.mbal == 2 + 2 * m
    assert ld.owner_id == 2 and ld.lver == 1
    assert len(h.leader_writes()) == 1  # an aborted ballot never commits


def test_higher_mbal_seen_in_phase_two_aborts_too(disk: Disk, hosts: list[Host], path: Path) -> None:
    gate = Interleave({4: lambda: disk.put_dblock(5, DBlock(mbal=5, lver=1))})  # before our phase-2 read
    h = host(hosts, path, 2, gate=gate)
    h.lease.acquire()
    assert [s for s in h.clock.sleeps if s[1] == "ballot retry"]
    assert disk.slots()[2].dblock.mbal == 2 + G512.max_hosts


def test_adopts_the_highest_bal_value_and_reports_acquire_other(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_dblock(4, DBlock(mbal=4, bal=4, inp=4, inp2=7, inp3=111, lver=1))
    disk.put_dblock(5, DBlock(mbal=5, bal=5, inp=5, inp2=9, inp3=222, lver=1))
    disk.put_dblock(6, DBlock(mbal=6, bal=6, inp=6, inp2=1, inp3=333, lver=0))  # an older version: ignored
    disk.put_dblock(7, DBlock(mbal=7, bal=7, inp=7, inp2=1, inp3=444, lver=1), raw_checksum=1)  # bad: ignored
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_OTHER")
    mine = disk.slots()[2].dblock
    assert (mine.inp, mine.inp2, mine.inp3, mine.bal) == (5, 9, 222, mine.mbal)
    ld = disk.leader()
    assert (ld.owner_id, ld.owner_generation, ld.timestamp, ld.lver) == (5, 9, 222, 1)
    assert (ld.write_id, ld.write_generation) == (2, 1)
    assert h.lease.leader is None


def test_dblock_at_a_later_lver_aborts_with_dblock_lver(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_dblock(4, DBlock(mbal=4, lver=3))
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "DBLOCK_LVER")
    assert not h.leader_writes()


def test_required_lver_must_match(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire(lver=5)
    assert_error(e, "ACQUIRE_LVER")
    assert not h.writes()
    h.lease.acquire(lver=0)  # 0 means "any version"
    h.lease.release()
    assert h.lease.acquire(lver=1).lver == 2  # the required version is the current one, the new is +1


def test_another_host_committing_the_next_version_gives_acquire_owned(disk: Disk, hosts: list[Host], path: Path) -> None:
    def rival_commits() -> None:
        disk.put_dblock(5, DBlock(mbal=5 + G512.max_hosts, bal=5 + G512.max_hosts, inp=5, inp2=1, inp3=9, lver=1))
        disk.update_leader(owner_id=5, owner_generation=1, lver=1, timestamp=9, write_id=5, write_generation=1)

    h = host(hosts, path, 2, gate=Interleave({2: rival_commits}))
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_OWNED")
    assert disk.leader().owner_id == 5
    assert not h.leader_writes()


def test_another_host_committing_us_is_success_and_release_leaves_its_leader(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    def rival_commits_us() -> None:
        disk.put_dblock(5, DBlock(mbal=5 + G512.max_hosts, bal=5 + G512.max_hosts, inp=2, inp2=1, inp3=1000, lver=1))
        disk.update_leader(owner_id=2, owner_generation=1, lver=1, timestamp=1000, write_id=5, write_generation=3)

    h = host(hosts, path, 2, gate=Interleave({4: rival_commits_us}))
    ld = h.lease.acquire()
    assert (ld.owner_id, ld.write_id, ld.lver) == (2, 5, 1)
    assert not h.leader_writes()
    before = disk.leader()
    h.lease.release()
    # our RELEASED dblock tells the next acquirer; the leader the other host wrote stays as it is
    assert disk.leader() == before
    assert disk.slots()[2].dblock.released


def test_acquire_returns_the_leader_record_it_wrote(disk: Disk, hosts: list[Host], path: Path) -> None:
    """What acquire returns (and later prints, compares, releases from) is the record on disk,
    checksum included."""
    h = host(hosts, path, 3)
    ld = h.lease.acquire()
    assert ld == disk.leader()


# --------------------------------------------------------------------------- owner checks


def test_live_owner_without_liveness_gives_acquire_idlive(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=2, lver=3, timestamp=500, write_id=4)
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_IDLIVE")
    assert "host 4" in e.value.message
    assert not h.writes()


@pytest.mark.parametrize("leader_gen", [3, 2], ids=["already-local", "was-old-local"])
def test_our_own_lease_is_run_for_without_asking_liveness(
    disk: Disk, hosts: list[Host], path: Path, leader_gen: int
) -> None:
    disk.update_leader(owner_id=2, owner_generation=leader_gen, lver=4, timestamp=500, write_id=2)
    h = host(hosts, path, 2, generation=3, liveness=NoLiveness())
    ld = h.lease.acquire()
    assert (ld.owner_id, ld.owner_generation, ld.lver) == (2, 3, 5)


def test_a_newer_generation_of_our_host_id_is_another_owner(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.update_leader(owner_id=2, owner_generation=4, lver=4, timestamp=500, write_id=2)
    h = host(hosts, path, 2, generation=3)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_IDLIVE")


def test_owner_committed_by_another_host_that_released_may_be_taken(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=2, lver=3, timestamp=500, write_id=6)
    disk.put_dblock(4, replace(DBlock(mbal=4, bal=4, inp=4, inp2=2, inp3=500, lver=3), flags=DBLOCK_FL_RELEASED))
    disk.put_dblock(6, DBlock(mbal=6, bal=6, inp=4, inp2=2, inp3=500, lver=3))  # the writer adopted host 4's value
    h = host(hosts, path, 2, liveness=NoLiveness())
    assert h.lease.acquire().lver == 4


FORGED = {
    # issue 8 (3): write_id (leader bytes 176+) and the RELEASED flag (dblock byte 52) have no checksum
    "write_id of a host that never accepted the value": dict(writer=None),
    "writer accepted another value": dict(writer=DBlock(mbal=6, bal=6, inp=5, inp2=1, inp3=77, lver=3)),
    "writer's accepted value without a bal": dict(writer=DBlock(mbal=6, bal=0, inp=4, inp2=2, inp3=500, lver=3)),
    "owner's RELEASED dblock names another host": dict(owner=DBlock(mbal=4, bal=4, inp=5, inp2=1, inp3=500, lver=3)),
    "owner's RELEASED dblock of another generation": dict(owner=DBlock(mbal=4, bal=4, inp=4, inp2=1, inp3=500, lver=3)),
    "owner's RELEASED dblock of another value": dict(owner=DBlock(mbal=4, bal=4, inp=4, inp2=2, inp3=499, lver=3)),
    "leader written by its owner": dict(write_id=4),
}


@pytest.mark.parametrize("case", sorted(FORGED), ids=sorted(FORGED))
def test_fields_no_checksum_covers_never_shorten_the_owner_wait(
    disk: Disk, hosts: list[Host], path: Path, case: str
) -> None:
    """Flipping the leader's write_id and setting RELEASED in the owner's dblock flags must not let an
    acquirer skip the owner-liveness wait: both are cross-checked against checksummed fields."""
    spec = FORGED[case]
    owner_db = spec.get("owner", DBlock(mbal=4, bal=4, inp=4, inp2=2, inp3=500, lver=3))
    writer_db = spec.get("writer", DBlock(mbal=6, bal=6, inp=4, inp2=2, inp3=500, lver=3))
    disk.update_leader(owner_id=4, owner_generation=2, lver=3, timestamp=500, write_id=spec.get("write_id", 6))
    assert isinstance(owner_db, DBlock)
    disk.put_dblock(4, replace(owner_db, flags=DBLOCK_FL_RELEASED))
    if isinstance(writer_db, DBlock):
        disk.put_dblock(6, writer_db)
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_IDLIVE")
    assert not h.writes()


def test_owner_released_dblock_for_another_version_does_not_count(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=2, lver=3, timestamp=500, write_id=6)
    disk.put_dblock(4, replace(DBlock(mbal=4, bal=4, inp=4, inp2=2, inp3=400, lver=2), flags=DBLOCK_FL_RELEASED))
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_IDLIVE")


def test_owner_dblock_that_fails_its_checksum_is_not_taken_as_released(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    """A torn owner dblock may carry a stale RELEASED flag (flags are outside the checksum): a record
    that fails validation must never make a held lease look free."""
    disk.update_leader(owner_id=4, owner_generation=2, lver=3, timestamp=500, write_id=6)
    db = replace(DBlock(mbal=4, bal=4, inp=4, inp2=2, inp3=500, lver=3), flags=DBLOCK_FL_RELEASED)
    disk.put_dblock(4, db, raw_checksum=0x12345678)
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_IDLIVE")
    assert not h.writes()


def test_late_commit_of_an_older_version_does_not_wedge_a_released_lease(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    """Found by the property test (seed 4737), reduced: host 4 adopted host 3's value for lver 1 and
    its commit write was delayed (I/O latency below io_timeout). Meanwhile host 3 committed lver 1
    itself, released, and took lver 2. Host 4's write then lands: the leader says lver 1, owner
    host 3, written by host 4. When host 3 releases lver 2 it skips the leader (write_id is not
    host 3), and the next acquirer refuses the lease as held by live host 3 — for as long as host 3
    stays in the lockspace — although nobody holds it. sanlock's check of the owner's RELEASED
    dblock has no lver equality; a ballot for lver 2 would adopt host 3's value and move on."""
    owner = host(hosts, path, 3)
    first = owner.lease.acquire()
    owner.lease.release()
    assert owner.lease.acquire().lver == 2
    disk.put_leader(replace(first, write_id=4, write_generation=1))  # host 4's late commit of lver 1
    owner.lease.release()
    other = host(hosts, path, 2, liveness=StubLiveness(verdicts=[ALIVE]))  # host 3 renews: alive
    outcomes = []
    for _ in range(2):  # an ACQUIRE_OTHER round that repairs the leader is acceptable
        try:
            ld = other.lease.acquire()
        except LockError as exc:
            outcomes.append(exc.name)
            continue
        outcomes.append("acquired")
        assert ld.owner_id == 2 and ld.lver >= 3
        break
    assert outcomes[-1] == "acquired", outcomes


# --------------------------------------------------------------------------- release


def test_release_flags_our_dblock_and_frees_the_leader_keeping_the_owner(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    h = host(hosts, path, 2, generation=4)
    held = h.lease.acquire()
    before = disk.slots()[2].dblock
    h.clock.now += 7
    h.lease.release()
    after = disk.slots()[2].dblock
    assert after.flags == DBLOCK_FL_RELEASED
    assert replace(after, flags=0) == before  # same values, same checksum: flags are outside it
    ld = disk.leader()
    assert ld.timestamp == 0
    assert (ld.owner_id, ld.owner_generation, ld.lver) == (held.owner_id, held.owner_generation, held.lver)
    assert (ld.write_id, ld.write_generation, ld.write_timestamp) == (2, 4, 1007)
    assert not ld.flags & LFL_SHORT_HOLD
    assert h.lease.leader is None
    with pytest.raises(LockError) as e:
        h.lease.release()
    assert_error(e, "RELEASE_OWNER")


def test_release_refuses_when_the_version_moved(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 2)
    h.lease.acquire()
    disk.update_leader(lver=9)
    with pytest.raises(LockError) as e:
        h.lease.release()
    assert_error(e, "RELEASE_LVER")
    assert disk.leader().timestamp != 0


def test_release_refuses_when_the_owner_changed(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 2)
    h.lease.acquire()
    disk.update_leader(owner_id=3)
    with pytest.raises(LockError) as e:
        h.lease.release()
    assert_error(e, "RELEASE_OWNER")


def test_acquire_after_release_is_the_next_version(disk: Disk, hosts: list[Host], path: Path) -> None:
    a, b = host(hosts, path, 1), host(hosts, path, 2)
    assert a.lease.acquire().lver == 1
    a.lease.release()
    ld = b.lease.acquire()
    assert (ld.owner_id, ld.lver) == (2, 2)
    # b's first ballot is above a's: mbal = 1 - 1 + 2000 + 2
    assert disk.slots()[2].dblock.mbal == G512.max_hosts + 2


# --------------------------------------------------------------------------- shared leases


def test_shared_acquire_holds_briefly_with_short_hold_then_sets_its_mode_block(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    h = host(hosts, path, 2, generation=6)
    seen: list[int] = []
    h.gate.actions[6] = lambda: seen.append(disk.leader().flags)  # just before the SHARED write
    h.lease.acquire(shared=True)
    assert seen and seen[0] & LFL_SHORT_HOLD
    slot = disk.slots()[2]
    assert slot.dblock.released
    assert (slot.mblock.flags, slot.mblock.generation) == (MBLOCK_SHARED, 6)
    ld = disk.leader()
    assert ld.timestamp == 0 and not ld.flags & LFL_SHORT_HOLD
    assert h.lease.shared


def test_two_shared_holders_coexist_and_release_clears_the_mode_block(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    a, b = host(hosts, path, 2), host(hosts, path, 3)
    a.lease.acquire(shared=True)
    b.lease.acquire(shared=True)
    slots = disk.slots()
    assert slots[2].mblock.shared and slots[3].mblock.shared
    a.lease.release()
    slots = disk.slots()
    assert not slots[2].mblock.shared and slots[2].dblock.released
    assert slots[3].mblock.shared


def test_exclusive_against_a_live_sharer_gets_eagain_and_still_moves_lver(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    sharer = host(hosts, path, 2, generation=3)
    sharer.lease.acquire(shared=True)
    lver = disk.leader().lver
    live = StubLiveness(verdicts=[ALIVE])
    ex = host(hosts, path, 3, liveness=live)
    with pytest.raises(LockError) as e:
        ex.lease.acquire()
    assert_error(e, "EAGAIN")
    assert e.value.code == -11
    assert live.asked_dead == [(2, 3)]
    ld = disk.leader()
    assert ld.lver == lver + 1 and ld.timestamp == 0  # a full ballot, then released
    assert disk.slots()[2].mblock.shared
    assert ex.lease.leader is None


def test_exclusive_committed_by_another_host_still_checks_live_sharers(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    """Found by the property test (seed 517): host 2 proposes itself, host 3 adopts that value and
    commits it (host 3 gets ACQUIRE_OTHER and checks no mode blocks), host 2's ballot aborts on
    host 3's higher mbal, then host 2 finds itself committed and returned success while host 1
    still held the lease shared. An exclusive acquire must check for live sharers on every path
    that ends in success."""
    sharer = host(hosts, path, 1)
    sharer.lease.acquire(shared=True)
    lver = disk.leader().lver
    m = G512.max_hosts

    def host3_adopts_and_commits_host2() -> None:
        mine = disk.slots()[2].dblock  # host 2's phase-2 dblock, just written
        mbal = mine.mbal - mine.mbal % m + m + 3
        disk.put_dblock(3, replace(mine, mbal=mbal, bal=mbal))
        disk.update_leader(
            lver=lver + 1, owner_id=2, owner_generation=1, timestamp=mine.inp3, write_id=3, write_generation=1,
        )

    live = StubLiveness(verdicts=[ALIVE])
    ex = host(hosts, path, 2, liveness=live, gate=Interleave({4: host3_adopts_and_commits_host2}))
    with pytest.raises(LockError) as e:
        ex.lease.acquire()
    assert_error(e, "EAGAIN")
    assert live.asked_dead == [(1, 1)]
    assert disk.slots()[1].mblock.shared
    assert ex.lease.leader is None


def test_exclusive_without_liveness_treats_sharers_as_live(disk: Disk, hosts: list[Host], path: Path) -> None:
    host(hosts, path, 2).lease.acquire(shared=True)
    with pytest.raises(LockError) as e:
        host(hosts, path, 3).lease.acquire()
    assert_error(e, "EAGAIN")


def test_exclusive_clears_a_dead_sharer_and_holds(disk: Disk, hosts: list[Host], path: Path) -> None:
    host(hosts, path, 2, generation=3).lease.acquire(shared=True)
    ex = host(hosts, path, 3, liveness=StubLiveness(verdicts=[ALIVE], dead={2}))
    ld = ex.lease.acquire()
    assert disk.host_sector(2) == bytes(G512.sector_size)
    assert disk.leader().lver == ld.lver and ld.owner_id == 3 and ld.timestamp != 0


def test_shared_acquire_retries_a_short_hold_owner_then_gives_shretry(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    disk.update_leader(owner_id=4, owner_generation=1, lver=2, timestamp=77, write_id=4, flags=G512.align_flag | LFL_SHORT_HOLD)
    h = host(hosts, path, 2, liveness=StubLiveness(verdicts=[ALIVE]))
    with pytest.raises(LockError) as e:
        h.lease.acquire(shared=True)
    assert_error(e, "ACQUIRE_SHRETRY")
    retries = [s for s, what in h.clock.sleeps if what == "shared acquire"]
    assert len(retries) == SH_RETRIES and all(0 <= s < 1 for s in retries)
    assert not h.writes()


def test_shared_acquire_against_an_exclusive_owner_is_idlive_at_once(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    host(hosts, path, 4).lease.acquire()
    h = host(hosts, path, 2, liveness=StubLiveness(verdicts=[ALIVE]))
    with pytest.raises(LockError) as e:
        h.lease.acquire(shared=True)
    assert_error(e, "ACQUIRE_IDLIVE")
    assert not [w for w in h.clock.sleeps if w[1] == "shared acquire"]


def test_dead_owner_is_taken_over_after_liveness_says_run(disk: Disk, hosts: list[Host], path: Path) -> None:
    host(hosts, path, 4).lease.acquire()
    live = StubLiveness(verdicts=["WAIT", "WAIT", RUN])
    h = host(hosts, path, 2, liveness=live)
    ld = h.lease.acquire()
    assert live.checks == 3
    assert [s for s in h.clock.sleeps if s[1] == "acquire"] == [(1.0, "acquire"), (1.0, "acquire")]
    assert (ld.owner_id, ld.lver) == (2, 2)


def test_owner_nowait_gives_acquire_owned_retry(disk: Disk, hosts: list[Host], path: Path) -> None:
    host(hosts, path, 4).lease.acquire()
    h = host(hosts, path, 2, liveness=StubLiveness(verdicts=["WAIT"]))
    with pytest.raises(LockError) as e:
        h.lease.acquire(nowait=True)
    assert_error(e, "ACQUIRE_OWNED_RETRY")
    assert not h.writes()


# --------------------------------------------------------------------------- requests


def _st(path: Path, log: list[IoRecord]) -> FaultyStorage:
    return FaultyStorage(DirectStorage(str(path)), observer=log.append)


def test_request_on_a_free_lease_writes_nothing(disk: Disk, path: Path) -> None:
    log: list[IoRecord] = []
    st = _st(path, log)
    try:
        ld = request(st, RES_OFFSET, LS, RES, None, 1, io_timeout=1)
    finally:
        st.close()
    assert ld.timestamp == 0
    assert not [r for r in log if r.op == "write"]
    assert disk.request() == RequestRecord()


def test_request_writes_the_next_version_and_mode(disk: Disk, path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=1, lver=6, timestamp=50, write_id=4)
    log: list[IoRecord] = []
    st = _st(path, log)
    try:
        ld = request(st, RES_OFFSET, LS, RES, None, 2, io_timeout=1)
        assert ld.owner_id == 4
        assert read_request(st, RES_OFFSET, G512, 1) == RequestRecord(lver=7, force_mode=2)
        request(st, RES_OFFSET, LS, RES, 9, 1, io_timeout=1)
        assert disk.request() == RequestRecord(lver=9, force_mode=1)
    finally:
        st.close()
    assert [r.offset for r in log if r.op == "write"] == [RES_OFFSET + 512, RES_OFFSET + 512]


def test_request_for_a_version_not_above_the_current_is_request_old(disk: Disk, path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=1, lver=6, timestamp=50, write_id=4)
    log: list[IoRecord] = []
    st = _st(path, log)
    try:
        for lver in (6, 3):
            with pytest.raises(LockError) as e:
                request(st, RES_OFFSET, LS, RES, lver, 1, io_timeout=1)
            assert_error(e, "REQUEST_OLD")
    finally:
        st.close()
    assert not [r for r in log if r.op == "write"]


def test_request_below_a_pending_one_is_request_lver_and_zero_clears(disk: Disk, path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=1, lver=6, timestamp=50, write_id=4)
    disk.put_request(RequestRecord(lver=10, force_mode=1))
    st = _st(path, [])
    try:
        with pytest.raises(LockError) as e:
            request(st, RES_OFFSET, LS, RES, 8, 2, io_timeout=1)
        assert_error(e, "REQUEST_LVER")
        assert disk.request() == RequestRecord(lver=10, force_mode=1)
        request(st, RES_OFFSET, LS, RES, 10, 2, io_timeout=1)  # the same version may be asked again
        assert disk.request() == RequestRecord(lver=10, force_mode=2)
        request(st, RES_OFFSET, LS, RES, 0, 0, io_timeout=1)  # LVER 0 and -f 0 clear it
        assert disk.request() == RequestRecord(lver=0, force_mode=0)
    finally:
        st.close()


def test_request_checks_the_record_magic_and_the_mode(disk: Disk, path: Path) -> None:
    disk.update_leader(owner_id=4, owner_generation=1, lver=6, timestamp=50, write_id=4)
    disk.put_request(RequestRecord(magic=0xBADBAD))
    log: list[IoRecord] = []
    st = _st(path, log)
    try:
        with pytest.raises(LockError) as e:
            request(st, RES_OFFSET, LS, RES, None, 1, io_timeout=1)
        assert_error(e, "REQUEST_MAGIC")
        with pytest.raises(InputError) as ie:
            request(st, RES_OFFSET, LS, RES, None, 3, io_timeout=1)
        assert ie.value.field == "force_mode"
    finally:
        st.close()
    assert not [r for r in log if r.op == "write"]


# --------------------------------------------------------------------------- input and validation


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"host_id": 0}, "host_id"), ({"generation": 0}, "generation"), ({"offset": 4096}, "offset")],
)
def test_bad_input_names_the_field_and_writes_nothing(path: Path, disk: Disk, kw: dict[str, int], field: str) -> None:
    before = disk.resource_bytes()
    args: dict[str, int] = {"host_id": 2, "generation": 1, "offset": RES_OFFSET, **kw}
    with DirectStorage(str(path)) as st, pytest.raises(InputError) as e:
        PaxosLease(st, LS, RES, args["offset"], host_id=args["host_id"], generation=args["generation"], geometry=G512)
    assert e.value.field == field
    assert disk.resource_bytes() == before


def test_wrong_resource_name_or_cleared_leader_is_refused(disk: Disk, path: Path) -> None:
    with DirectStorage(str(path)) as st:
        lease = PaxosLease(st, LS, "OTHER", RES_OFFSET, host_id=2, generation=1, geometry=G512, io_timeout=1)
        with pytest.raises(LockError) as e:
            lease.acquire()
        assert_error(e, "LEADER_RESOURCE")
    disk.update_leader(magic=0x11282016)
    with DirectStorage(str(path)) as st:
        lease = PaxosLease(st, LS, RES, RES_OFFSET, host_id=2, generation=1, geometry=G512, io_timeout=1)
        with pytest.raises(LockError) as e:
            lease.acquire()
        assert_error(e, "LEADER_MAGIC")
    raw = disk.resource_bytes()
    assert decode_leader(raw, 0).timestamp == 0 and raw[2 * 512 : 4 * 512] == bytes(1024)


def test_num_hosts_below_our_host_id_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "few.img"
    make_disk(p, G512, num_hosts=4)
    with DirectStorage(str(p)) as st:
        lease = PaxosLease(st, LS, RES, RES_OFFSET, host_id=5, generation=1, geometry=G512, io_timeout=1)
        with pytest.raises(LockError) as e:
            lease.acquire()
        assert_error(e, "LEADER_NUMHOSTS")
        ok = PaxosLease(st, LS, RES, RES_OFFSET, host_id=4, generation=1, geometry=G512, io_timeout=1)
        assert ok.acquire().owner_id == 4


def test_geometry_is_probed_from_the_leader(tmp_path: Path) -> None:
    p = tmp_path / "probe.img"
    make_disk(p, G4K)
    with DirectStorage(str(p)) as st:
        lease = PaxosLease(st, LS, RES, RES_OFFSET, host_id=2, generation=1, io_timeout=1)
        assert lease.geometry == G4K
        lease.acquire()
    d = Disk(p, G4K)
    try:
        assert d.slots()[2].dblock.mbal == 2
        assert d.host_sector(2)[:8] == (2).to_bytes(8, "little")
    finally:
        d.close()


def test_mode_block_generation_is_our_delta_generation(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 9, generation=12)
    h.lease.acquire(shared=True)
    assert disk.slots()[9].mblock == ModeBlock(MBLOCK_SHARED, 12)


# --------------------------------------------------------------------------- issue 8 regressions


def test_phase_one_keeps_the_value_we_accepted_for_that_version(disk: Disk, hosts: list[Host], path: Path) -> None:
    """Disk Paxos's StartBallot changes only mbal: a host that accepted a value for lver 1 (here in
    an earlier process: its own dblock on disk) keeps bal/inp in its phase-1 write. sanlock zeroes
    them, which can erase the last copy of a chosen value (issue 8)."""
    accepted = DBlock(mbal=2, bal=2, inp=5, inp2=3, inp3=77, lver=1)
    disk.put_dblock(2, accepted)
    seen: list[DBlock] = []
    h = host(hosts, path, 2, gate=Interleave({2: lambda: seen.append(disk.slots()[2].dblock)}))
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_OTHER")  # the value we had accepted (host 5's) is committed again
    phase1 = seen[0]
    assert phase1.mbal > accepted.mbal
    assert (phase1.bal, phase1.inp, phase1.inp2, phase1.inp3, phase1.lver) == (2, 5, 3, 77, 1)
    assert (disk.leader().owner_id, disk.leader().owner_generation) == (5, 3)


def test_an_inp_without_a_bal_is_never_adopted(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_dblock(4, DBlock(mbal=4, bal=0, inp=4, inp2=1, inp3=9, lver=1))  # valid CRC, never accepted
    h = host(hosts, path, 2)
    ld = h.lease.acquire()
    assert (ld.owner_id, ld.lver) == (2, 1)


def test_dblock_lver_restarts_from_a_fresh_read(disk: Disk, hosts: list[Host], path: Path) -> None:
    """A dblock already at lver 2 while the leader we read says 0: the commit of lver 1 is landing.
    sanlock restarts the acquire; so do we (a bounded number of times)."""
    disk.put_dblock(4, DBlock(mbal=4, bal=4, inp=4, inp2=1, inp3=9, lver=2))
    h = host(hosts, path, 2)
    h.clock.on_sleep = lambda _s, what: (
        disk.update_leader(owner_id=4, owner_generation=1, lver=1, timestamp=0, write_id=4) if what == "ballot restart" else None
    )
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "ACQUIRE_OTHER")  # lver 2's ballot adopts the value host 4 accepted for it
    assert [w for _s, w in h.clock.sleeps] == ["ballot restart"]
    ld = disk.leader()
    assert (ld.lver, ld.owner_id, ld.write_id) == (2, 4, 2)


def test_dblock_lver_still_fails_when_the_dblock_stays_ahead(disk: Disk, hosts: list[Host], path: Path) -> None:
    disk.put_dblock(4, DBlock(mbal=4, lver=3))
    h = host(hosts, path, 2)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "DBLOCK_LVER")
    assert [w for _s, w in h.clock.sleeps] == ["ballot restart"] * 3


def test_committed_for_us_needs_a_value_this_acquire_proposed(disk: Disk, hosts: list[Host], path: Path) -> None:
    """After an aborted ballot the leader names us at next_lver, but with a timestamp we never
    proposed: not trusted blindly; the acquire starts over from a fresh read."""
    m = G512.max_hosts

    def forged_commit_and_abort() -> None:
        disk.update_leader(owner_id=2, owner_generation=1, lver=1, timestamp=4242, write_id=5, write_generation=1)
        disk.put_dblock(5, DBlock(mbal=5 + 2 * m, lver=1))

    h = host(hosts, path, 2, gate=Interleave({4: forged_commit_and_abort}))  # before our phase-2 read
    ld = h.lease.acquire()
    assert ld.lver == 2 and ld.timestamp != 4242  # "already local": a new ballot for the next version


def test_abort_is_honoured_before_every_write(disk: Disk, hosts: list[Host], path: Path) -> None:
    import threading

    abort = threading.Event()
    h = host(hosts, path, 2, gate=Interleave({2: abort.set}))  # set after phase 1's write, before its read
    with pytest.raises(LockError) as e:
        h.lease.acquire(abort=abort)
    assert_error(e, "ERROR")
    assert len(h.writes()) == 1  # phase 1 only: no phase 2, no commit, no retract


def test_failed_phase_two_read_retracts_so_a_later_commit_for_us_is_not_held(
    disk: Disk, hosts: list[Host], path: Path
) -> None:
    """Our phase 2 wrote our value, then the read failed: our value may still be chosen. Without a
    retract, a host that adopts and commits it leaves the lease owned by us (alive) until our
    generation changes; with it, our dblock says RELEASED (value kept) and the next acquirer may take it."""
    h = host(hosts, path, 2)
    h.gate.actions[3] = lambda: h.storage.inject(Fault("eio", "read"))  # the next read: phase 2's
    with pytest.raises(OSError):
        h.lease.acquire()
    mine = disk.slots()[2].dblock
    assert mine.released and (mine.inp, mine.bal) == (2, mine.mbal)
    other = host(hosts, path, 3, liveness=StubLiveness(verdicts=[ALIVE]))
    with pytest.raises(LockError) as e:
        other.lease.acquire()
    assert_error(e, "ACQUIRE_OTHER")  # host 3 adopted our value and committed it for us
    ld = other.lease.acquire()  # the RELEASED shortcut: no wait for live host 2
    assert (ld.owner_id, ld.lver) == (3, 2)


def test_failed_commit_retracts_and_frees_a_leader_that_landed(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 2)
    h.gate.actions[4] = lambda: h.storage.inject(Fault("hang", "write", offset=RES_OFFSET, lands=True))  # commit
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert_error(e, "AIO_TIMEOUT")
    ld = disk.leader()
    assert (ld.owner_id, ld.lver, ld.timestamp) == (2, 1, 0)  # landed, then freed by the retract
    assert disk.slots()[2].dblock.released
    assert h.lease.leader is None


def test_failed_shared_mode_block_write_leaves_nothing_held(disk: Disk, hosts: list[Host], path: Path) -> None:
    h = host(hosts, path, 2)
    own = RES_OFFSET + G512.dblock_offset(2)
    h.gate.actions[5] = lambda: h.storage.inject(Fault("hang", "write", offset=own, lands=True))  # SHARED mode block
    with pytest.raises(LockError) as e:
        h.lease.acquire(shared=True)
    assert_error(e, "AIO_TIMEOUT")
    slot = disk.slots()[2]
    assert not slot.mblock.shared and slot.dblock.released
    assert disk.leader().timestamp == 0
    assert h.lease.leader is None


def test_a_failed_leader_write_in_release_is_retried(disk: Disk, hosts: list[Host], path: Path) -> None:
    """A release whose leader write fails once must not leave the lease owned on disk by this live
    host: it retries from a fresh read."""
    h = host(hosts, path, 2)
    h.lease.acquire()
    h.storage.inject(Fault("eio", "write", offset=RES_OFFSET))
    h.lease.release()
    assert disk.leader().timestamp == 0
    assert h.lease.leader is None
