"""A renewal reads the lockspace into one AreaImage; the host table judges only the runs that changed.

The skip must never hide a change: every changed sector is judged again, including changes that keep
the timestamp (another generation, another owner), a corrupt checksum and a bitmap bit. The checker
below runs the production HostTable through bytes, through an AreaImage, and through DeltaLease.renew
on real O_DIRECT storage (storage.read_with); it is shown to catch two deliberately broken caches.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lockengine.delta import DeltaLease, HostEvent, HostTable
from lockengine.errors import InputError, LockError
from lockengine.ondisk import AREA_RUN, LEADER_CHECKSUM_LEN, AreaImage, bitmap_with
from lockengine.storage import DirectStorage
from tests.support.leasekit import FakeClock
from tests.support.testdisk import LS_OFFSET, make_disk
from tests.unit.test_delta import FIRE, IO, LS, G, area_with, held_by

ME, OTHER, NEVER = 1, 2, 5
TS = 152  # the leader's timestamp field (ondisk._LEADER)

Feed = Callable[[bytes, float], list[HostEvent]]


def _base() -> bytes:
    return area_with((ME, held_by("me", ME, gen=1, ts=10)), (OTHER, held_by("b", OTHER, gen=4, ts=500)))


def _patch(area: bytes, host_id: int, raw: bytes) -> bytes:
    out = bytearray(area)
    off = G.host_offset(host_id)
    out[off : off + len(raw)] = raw
    return bytes(out)


def _new_generation(area: bytes) -> bytes:
    return _patch(area, OTHER, held_by("b", OTHER, gen=5, ts=500).encode())  # same timestamp


def _other_owner(area: bytes) -> bytes:
    return _patch(area, OTHER, held_by("c", 3, gen=4, ts=500).encode())  # same timestamp and generation


def _corrupt_checksum(area: bytes) -> bytes:
    off = G.host_offset(NEVER) + LEADER_CHECKSUM_LEN
    return _patch(area, NEVER, area[G.host_offset(NEVER) : off] + bytes([area[off] ^ 0xFF]))


def _our_bit(area: bytes) -> bytes:
    return area_with((ME, held_by("me", ME, gen=1, ts=10)), (OTHER, held_by("b", OTHER, gen=4, ts=500)),
                     bitmaps={OTHER: bitmap_with({ME})})


# name: (the change, is it judged? given the table, the events and the time of the observation)
CASES: dict[str, tuple[Callable[[bytes], bytes], Callable[[HostTable, list[HostEvent], float], bool]]] = {
    "same timestamp, new generation": (
        _new_generation, lambda t, _ev, now: (t.info(OTHER) or _none()).generation == 5
        and (t.info(OTHER) or _none()).last_live == now),
    "same timestamp, other owner": (_other_owner, lambda t, _ev, _now: (t.info(OTHER) or _none()).owner_id == 3),
    "corrupt checksum": (_corrupt_checksum, lambda t, _ev, now: t.state(NEVER, now) == "UNKNOWN"),
    "our bit set": (_our_bit, lambda _t, ev, _now: [e.host_id for e in ev] == [OTHER]),
}


def _none() -> object:
    raise AssertionError("host not in the table")


def missed(make_feed: Callable[[HostTable], Feed]) -> list[str]:
    """The cases whose change the table did not judge, fed through ``make_feed``."""
    out = []
    for name, (change, judged) in CASES.items():
        table = HostTable(LS, G, our_host_id=ME, fire_timeout=FIRE, our_io_timeout=IO)
        feed = make_feed(table)
        base = _base()
        feed(base, 0.0)
        feed(base, 2.0)  # unchanged: nothing to judge
        assert table.state(NEVER, 2.0) == "FREE"
        events = feed(change(base), 4.0)
        if not judged(table, events, 4.0):
            out.append(name)
    return out


def as_bytes(table: HostTable) -> Feed:
    return lambda area, now: table.observe(area, now)


def as_image(table: HostTable) -> Feed:
    image = AreaImage(len(_base()), G.sector_size)

    def feed(area: bytes, now: float) -> list[HostEvent]:
        image.update(area)
        return table.observe(image, now)

    return feed


@pytest.mark.parametrize("make_feed", [as_bytes, as_image])
def test_every_changed_sector_is_judged_again(make_feed: Callable[[HostTable], Feed]) -> None:
    assert missed(make_feed) == []


def _update_without_versions(self: AreaImage, data: bytes | bytearray | memoryview) -> int:
    """Broken: copies the changes in but never moves a version."""
    self[:] = data
    return 0


def _update_by_timestamp(self: AreaImage, data: bytes | bytearray | memoryview) -> int:
    """Broken: a run counts as changed only when a sector's timestamp changed (the tempting shortcut)."""
    view, s = memoryview(data), self.run_size // AREA_RUN
    for run in range(len(self.versions)):
        a = run * self.run_size
        stamps = [bytes(view[o + TS : o + TS + 8]) != bytes(self[o + TS : o + TS + 8])
                  for o in range(a, a + self.run_size, s)]
        self[a : a + self.run_size] = view[a : a + self.run_size]
        if any(stamps):
            self.versions[run] += 1
    return 0


@pytest.mark.parametrize("broken", [_update_without_versions, _update_by_timestamp])
@pytest.mark.parametrize("make_feed", [as_bytes, as_image])
def test_the_checker_catches_a_broken_cache(
    make_feed: Callable[[HostTable], Feed], broken: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AreaImage, "update", broken)
    assert missed(make_feed) != []


def test_the_image_equals_each_read_and_moves_only_changed_runs() -> None:
    image = AreaImage(G.align_size, G.sector_size)
    first = _base()
    assert image.update(first) > 0
    assert bytes(image) == first
    before = list(image.versions)
    assert image.update(first) == 0
    assert image.versions == before
    changed = _new_generation(first)
    assert image.update(changed) == 1
    run = G.host_offset(OTHER) // image.run_size
    assert [i for i, (a, b) in enumerate(zip(before, image.versions, strict=True)) if a != b] == [run]
    assert bytes(image) == changed
    with pytest.raises(ValueError):
        image.update(first[:-512])


# ------------------------------------------------------------------ the daemon's path: renew on real storage


def _write_area(path: Path, area: bytes) -> None:
    with DirectStorage(str(path)) as st:
        st.write(LS_OFFSET + G.host_offset(OTHER), area[G.host_offset(OTHER) : G.host_offset(OTHER) + 512], 5)
        st.write(LS_OFFSET + G.host_offset(NEVER), area[G.host_offset(NEVER) : G.host_offset(NEVER) + 512], 5)


@pytest.mark.parametrize("name", list(CASES))
def test_renewals_through_read_with_judge_every_change(tmp_path: Path, name: str) -> None:
    """DeltaLease.renew over DirectStorage (it lends its buffer: read_with) into the lease's image."""
    path = tmp_path / "ls.img"
    make_disk(path, G)
    _write_area(path, _base())
    clock = FakeClock()
    with DirectStorage(str(path)) as st:
        assert hasattr(st, "read_with")
        lease = DeltaLease(st, LS, ME, LS_OFFSET, host_name="me", io_timeout=IO, fire_timeout=FIRE, clock=clock,
                           sleep=clock.sleep)
        lease.acquire()
        table = HostTable(LS, G, our_host_id=ME, fire_timeout=FIRE, our_io_timeout=IO)
        first = lease.renew()
        table.observe(first, clock())
        assert lease.renew() is first  # one image per lease, updated in place
        change, judged = CASES[name]
        _write_area(path, change(bytes(first)))
        clock.sleep(2)
        events = table.observe(lease.renew(), clock())
        assert judged(table, events, clock())


def test_read_with_lends_the_bytes_read_and_never_a_timed_out_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ls.img"
    make_disk(path, G)
    release = threading.Event()
    real_preadv = os.preadv
    calls = {"n": 0}

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            release.wait(30)
        return real_preadv(fd, buffers, offset)

    used: list[bytes] = []
    with DirectStorage(str(path)) as st:
        expected = st.read(LS_OFFSET, G.align_size, 5)
        monkeypatch.setattr(os, "preadv", preadv)
        assert st.read_with(LS_OFFSET, G.align_size, 5, lambda v: used.append(bytes(v)) or len(v)) == G.align_size
        assert used == [expected]
        with pytest.raises(LockError) as e:
            st.read_with(LS_OFFSET, G.align_size, 0.2, lambda v: used.append(bytes(v)))
        assert e.value.name == "AIO_TIMEOUT" and st.abandoned == 1
        assert len(used) == 1  # the hung read's buffer was never handed out
        release.set()
        assert st.read_with(LS_OFFSET, 512, 5, bytes) == expected[:512]
        with pytest.raises(InputError):
            st.read_with(LS_OFFSET, 100, 5, bytes)  # unaligned: refused like read()
