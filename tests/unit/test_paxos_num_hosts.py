"""num_hosts on acquire (sanlock's SANLK_RES_NUM_HOSTS) in PaxosLease: what the winner writes, what it
refuses (field named, nothing written), and that our ballots judge dblocks beyond num_hosts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devkit.faults import FaultyStorage, IoRecord
from lockengine.errors import CODES, InputError, LockError
from lockengine.ondisk import MBLOCK_SHARED, DBlock, Geometry, ModeBlock
from lockengine.paxos import PaxosLease
from lockengine.storage import DirectStorage
from tests.support.leasekit import Disk, FakeClock, Interleave
from tests.support.testdisk import LS, RES, RES_OFFSET, make_disk

G = Geometry(512, 1 << 20)
OPEN: list[FaultyStorage] = []


class Host:
    def __init__(self, path: Path, host_id: int, gate: Interleave | None = None) -> None:
        self.log: list[IoRecord] = []
        self.clock = FakeClock(1000.0)
        self.storage = FaultyStorage(DirectStorage(str(path)), gate=gate or Interleave(), observer=self.log.append)
        OPEN.append(self.storage)
        self.lease = PaxosLease(self.storage, LS, RES, RES_OFFSET, host_id=host_id, generation=1, geometry=G,
                                io_timeout=1, clock=self.clock, sleep=self.clock.sleep)  # type: ignore[arg-type]

    def writes(self) -> list[IoRecord]:
        return [r for r in self.log if r.op == "write"]


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    p = tmp_path / "nh.img"
    make_disk(p, G)
    yield p
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def disk(path: Path) -> Iterator[Disk]:
    d = Disk(path, G)
    yield d
    d.close()


def test_the_winner_writes_num_hosts_and_the_release_keeps_it(path: Path, disk: Disk) -> None:
    h = Host(path, 3)
    ld = h.lease.acquire(num_hosts=8)
    assert (ld.num_hosts, disk.leader().num_hosts, disk.leader().owner_id) == (8, 8, 3)
    h.lease.release()
    assert (disk.leader().num_hosts, disk.leader().timestamp) == (8, 0)
    assert h.lease.acquire().num_hosts == 8  # 0: keep
    h.lease.release()
    assert h.lease.acquire(num_hosts=2000).num_hosts == 2000  # raising is served too
    h.lease.release()


def test_a_host_above_num_hosts_is_refused_without_writing(path: Path, disk: Disk) -> None:
    Host(path, 1).lease.acquire(num_hosts=2)
    before = disk.resource_bytes()
    h = Host(path, 3)
    with pytest.raises(LockError) as e:
        h.lease.acquire()
    assert (e.value.name, e.value.code) == ("LEADER_NUMHOSTS", CODES["LEADER_NUMHOSTS"])
    assert h.writes() == [] and disk.resource_bytes() == before


@pytest.mark.parametrize(("host_id", "value", "fix"), [
    (1, 2001, "use 1..2000"), (1, -1, "use 1..2000"), (5, 4, "use at least 5"),
])
def test_bad_num_hosts_names_the_field_and_does_no_io(path: Path, disk: Disk, host_id: int, value: int,
                                                      fix: str) -> None:
    before = disk.resource_bytes()
    h = Host(path, host_id)
    with pytest.raises(InputError) as e:
        h.lease.acquire(num_hosts=value)
    assert e.value.field == "num_hosts" and fix in str(e.value)
    assert h.log == [] and disk.resource_bytes() == before


def test_no_lowering_below_a_shared_holder(path: Path, disk: Disk) -> None:
    sharer = Host(path, 3)
    sharer.lease.acquire(shared=True)
    h = Host(path, 1)
    with pytest.raises(LockError) as e:
        h.lease.acquire(shared=True, num_hosts=2)
    assert (e.value.name, e.value.field) == ("EBUSY", "num_hosts") and "[3]" in str(e.value)
    assert h.writes() == [] and disk.leader().num_hosts == 2000  # refused before any write
    assert h.lease.acquire(shared=True, num_hosts=3).num_hosts == 3  # not below it: served
    assert disk.leader().num_hosts == 3 and disk.slots()[3].mblock.shared


def test_a_sharer_seen_only_by_the_ballot_stops_the_commit(path: Path, disk: Disk) -> None:
    """Host 3's SHARED mode block lands after our first read: the ballot's read sees it, the leader is
    never written, and our proposal is retracted (RELEASED)."""
    gate = Interleave({2: lambda: disk.put_dblock(3, DBlock(), ModeBlock(MBLOCK_SHARED, 1))})
    h = Host(path, 1, gate)
    with pytest.raises(LockError) as e:
        h.lease.acquire(shared=True, num_hosts=2)
    assert e.value.name == "EBUSY"
    assert all(r.offset != RES_OFFSET for r in h.writes())
    assert (disk.leader().lver, disk.leader().num_hosts) == (0, 2000)
    assert disk.slots()[1].dblock.released


def test_ballots_judge_dblocks_beyond_num_hosts(path: Path, disk: Disk) -> None:
    """The leader says num_hosts 2, but host 5 accepted a value for lver 1 (it balloted with an older
    view): our ballot must see and adopt it (sanlock would read dblocks 1..2 only and choose itself)."""
    disk.put_leader(replace(disk.leader(), num_hosts=2).with_checksum())
    disk.put_dblock(5, DBlock(mbal=5, bal=5, inp=5, inp2=1, inp3=77, lver=1))
    h = Host(path, 1)
    with pytest.raises(LockError) as e:
        h.lease.acquire(num_hosts=1)
    assert e.value.name == "ACQUIRE_OTHER"
    ld = disk.leader()
    # Another host's value committed: our num_hosts is not applied (stricter than sanlock).
    assert (ld.owner_id, ld.timestamp, ld.lver, ld.num_hosts) == (5, 77, 1, 2)
