"""lockengine/convert.py on a real file with O_DIRECT I/O, through the production PaxosLease: what each
direction leaves on disk, that a conversion to exclusive is refused while another host shares the lease
(and then both still share it), that no other host can take the lease at any point, and that a failed
conversion (an I/O error at each write it makes) leaves us holding the lease shared on disk."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockengine.convert import to_exclusive, to_shared
from lockengine.errors import LockError
from tests.support.leasekit import Disk
from tests.unit.test_paxos import G512, Host, host


@pytest.fixture
def path(tmp_path: Path) -> Path:
    from tests.support.testdisk import make_disk

    p = tmp_path / "convert.img"
    make_disk(p, G512)
    return p


@pytest.fixture
def disk(path: Path) -> Iterator[Disk]:
    d = Disk(path, G512)
    yield d
    d.close()


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for h in made:
        h.close()


def shared_on_disk(disk: Disk, host_id: int) -> bool:
    slot = disk.slots().get(host_id)
    return slot is not None and slot.mblock.shared


def test_both_directions_on_disk(disk: Disk, hosts: list[Host], path: Path) -> None:
    a, b = host(hosts, path, 1), host(hosts, path, 2)
    a.lease.acquire()
    to_shared(a.lease)
    assert a.lease.shared and disk.leader().timestamp == 0 and shared_on_disk(disk, 1)
    with pytest.raises(LockError) as exc:  # b may not have it exclusively: a shares it
        b.lease.acquire()
    assert exc.value.name == "EAGAIN"
    to_exclusive(a.lease)
    ld = disk.leader()
    assert not a.lease.shared and ld.owner_id == 1 and ld.timestamp != 0 and not shared_on_disk(disk, 1)
    with pytest.raises(LockError) as exc:  # held exclusively by a live host
        b.lease.acquire(shared=True)
    assert exc.value.name in ("ACQUIRE_IDLIVE", "ACQUIRE_SHRETRY")
    a.lease.release()
    assert disk.leader().timestamp == 0 and not shared_on_disk(disk, 1)


def test_to_exclusive_refused_while_another_host_shares(disk: Disk, hosts: list[Host], path: Path) -> None:
    a, b = host(hosts, path, 1), host(hosts, path, 2)
    a.lease.acquire(shared=True)
    b.lease.acquire(shared=True)
    with pytest.raises(LockError) as exc:
        to_exclusive(a.lease)
    assert exc.value.name == "EAGAIN"
    # Both still share it, on disk and in memory; nobody owns the leader.
    assert a.lease.shared and a.lease.leader is not None
    assert shared_on_disk(disk, 1) and shared_on_disk(disk, 2) and disk.leader().timestamp == 0
    with pytest.raises(LockError):
        to_exclusive(b.lease)
    assert shared_on_disk(disk, 1) and shared_on_disk(disk, 2) and disk.leader().timestamp == 0


class FailNthWrite:
    """A FaultyStorage gate: EIO (nothing written) at the n-th write from when it is armed."""

    def __init__(self) -> None:
        self.armed: int | None = None
        self.seen = 0

    def __call__(self, op: str, offset: int, length: int) -> None:
        if op != "write" or self.armed is None:
            return
        self.seen += 1
        if self.seen == self.armed + 1:
            raise OSError(errno.EIO, "injected", "convert.img")


@pytest.mark.parametrize("nth_write", [0, 1, 2, 3])
def test_a_failed_conversion_to_exclusive_keeps_the_shared_lease(disk: Disk, hosts: list[Host], path: Path,
                                                                   nth_write: int) -> None:
    """An EIO at the conversion's n-th write: phase 1, phase 2, the leader commit, the mode-block clear."""
    gate = FailNthWrite()
    a = host(hosts, path, 1, gate=gate)  # type: ignore[arg-type]
    b = host(hosts, path, 2)
    a.lease.acquire(shared=True)
    gate.armed = nth_write
    try:
        to_exclusive(a.lease)
    except (LockError, OSError):
        converted = False
    else:
        converted = True
    assert gate.seen > nth_write  # the failure was injected
    if converted:  # only the final mode-block clear may fail and still convert (as sanlock)
        assert nth_write == 3 and not a.lease.shared
        assert disk.leader().owner_id == 1 and disk.leader().timestamp != 0
    else:
        assert a.lease.shared and a.lease.leader is not None
        assert shared_on_disk(disk, 1)  # still a sharer on disk: nobody may take it exclusively
        with pytest.raises(LockError):
            b.lease.acquire()
    gate.armed = None
    a.lease.release()  # and it can still be given back cleanly: then b takes it at once
    assert not shared_on_disk(disk, 1)
    # (b's refused ballot may have committed a's proposal for a — ACQUIRE_OTHER — while a still shared
    # it: a's RELEASED dblock then frees it, as for any release.)
    assert b.lease.acquire().owner_id == 2
