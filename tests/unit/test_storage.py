"""DirectStorage on real loop devices: O_DIRECT, sector sizes, alignment, per-I/O timeouts."""

from __future__ import annotations

import os
import threading

import pytest

from lockengine import storage
from lockengine.errors import InputError, LockError
from lockengine.storage import DirectStorage, device_sector_size, device_size
from tests.conftest import LoopFactory


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_sector_size_and_size_from_the_device(loop_device: LoopFactory, sector_size: int) -> None:
    dev = loop_device(size=8 << 20, sector_size=sector_size)
    assert device_sector_size(dev.path) == sector_size
    assert device_size(dev.path) == 8 << 20
    with DirectStorage(dev.path) as st:
        assert st.sector_size == sector_size
        assert st.size() == 8 << 20


def test_regular_files_count_as_512(loop_device: LoopFactory) -> None:
    dev = loop_device(size=4 << 20, sector_size=4096)
    # sanlock treats every regular file as 512-byte sectors, whatever the device under it
    assert device_sector_size(str(dev.backing)) == 512
    assert device_size(str(dev.backing)) == 4 << 20


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_write_then_read_back_through_the_backing_file(loop_device: LoopFactory, sector_size: int) -> None:
    dev = loop_device(size=8 << 20, sector_size=sector_size)
    data = os.urandom(3 * sector_size)
    with DirectStorage(dev.path) as st:
        st.write(2 * sector_size, data, 5)
        assert st.read(2 * sector_size, 3 * sector_size, 5) == data
        assert st.read(0, 2 * sector_size, 5) == bytes(2 * sector_size)
        big = st.read(0, 1 << 20, 5)  # one whole-area read, as a renewal or ballot does
        assert big[2 * sector_size : 5 * sector_size] == data
    # O_SYNC|O_DIRECT writes are on the device when write() returns: a second loop device over the
    # same file (another "host") sees them at once.
    other = loop_device(backing=dev.backing, sector_size=sector_size)
    with DirectStorage(other.path, readonly=True) as st2:
        assert st2.read(2 * sector_size, 3 * sector_size, 5) == data


@pytest.mark.parametrize(("offset", "length"), [(100, 512), (0, 100), (512, 0), (0, 16 << 20)])
def test_unaligned_io_is_refused_before_any_write(loop_device: LoopFactory, offset: int, length: int) -> None:
    dev = loop_device(size=4 << 20)
    with DirectStorage(dev.path) as st:
        with pytest.raises(InputError) as e:
            st.write(offset, b"\xff" * length, 5)
        assert e.value.field == "offset/length"
        assert f"{offset}/{length}" in str(e.value)
        with pytest.raises(InputError):
            st.read(offset, length, 5)
        assert st.read(0, 1 << 20, 5) == bytes(1 << 20)


def test_4k_device_refuses_512_byte_io(loop_device: LoopFactory) -> None:
    dev = loop_device(size=4 << 20, sector_size=4096)
    with DirectStorage(dev.path) as st, pytest.raises(InputError) as e:
        st.write(512, bytes(512), 5)
    assert "4096" in str(e.value)


def test_readonly_storage_cannot_write(loop_device: LoopFactory) -> None:
    dev = loop_device(size=4 << 20)
    with DirectStorage(dev.path, readonly=True) as st, pytest.raises(OSError):
        st.write(0, b"\x01" * 512, 5)


def test_missing_path_names_the_field(disk_dir: object) -> None:
    with pytest.raises(InputError) as e:
        DirectStorage("/dev/does-not-exist-lockengine")
    assert e.value.field == "path"


def test_reading_past_the_end_fails(loop_device: LoopFactory) -> None:
    dev = loop_device(size=2 << 20)
    with DirectStorage(dev.path) as st, pytest.raises(OSError):
        st.read(2 << 20, 512, 5)


def test_a_hung_io_is_abandoned_and_the_next_one_works(loop_device: LoopFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel cannot be made to hang a loop device here (no device-mapper), so the syscall itself
    is held: the storage's contract is that the caller gets AIO_TIMEOUT and the next I/O a new fd."""
    dev = loop_device(size=2 << 20)
    release = threading.Event()
    real_preadv = os.preadv
    calls = {"n": 0}

    def hanging_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            release.wait(30)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", hanging_preadv)  # storage.py calls os.preadv at call time
    st = DirectStorage(dev.path)
    try:
        with pytest.raises(LockError) as e:
            st.read(0, 512, 0.2)
        assert e.value.name == "AIO_TIMEOUT"
        assert st.abandoned == 1
        assert st.read(0, 512, 5) == bytes(512)
    finally:
        release.set()
        st.close()


def test_an_io_in_flight_does_not_hold_up_another_threads_io(loop_device: LoopFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One handle serves the daemon's lease operations on a path: while one read is held in the kernel,
    another thread's read on the same handle completes (it used to wait behind a lock held across I/O)."""
    dev = loop_device(size=2 << 20)
    held, release = threading.Event(), threading.Event()
    real_preadv = os.preadv

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        if offset == 512:
            held.set()
            release.wait(30)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    st = DirectStorage(dev.path)
    try:
        slow = threading.Thread(target=st.read, args=(512, 512, 60))
        slow.start()
        assert held.wait(10)
        assert st.read(0, 512, 10) == bytes(512)  # would time out waiting for the held read before
        assert slow.is_alive()
        release.set()
        slow.join(10)
        assert not slow.is_alive()
    finally:
        release.set()
        st.close()


AREA = 256 << 10  # above storage.POOL_MIN: served from reused buffers


def _fill(st: DirectStorage, offset: int, byte: int) -> bytes:
    data = bytes([byte]) * AREA
    st.write(offset, data, 5)
    return data


def test_a_reused_read_buffer_goes_to_one_caller_at_a_time(loop_device: LoopFactory) -> None:
    """read_reused hands a buffer out again only once its caller dropped it: a caller still holding
    one (or a view of it) never sees another read's bytes land in it."""
    dev = loop_device(size=4 << 20)
    with DirectStorage(dev.path) as st:
        a_data, b_data = _fill(st, 0, 0xAA), _fill(st, 1 << 20, 0xBB)
        a = st.read_reused(0, AREA, 5)
        b = st.read_reused(1 << 20, AREA, 5)
        assert a is not b
        assert a == a_data and b == b_data
        a_id = id(a)
        del a
        c = st.read_reused(0, AREA, 5)
        assert id(c) == a_id  # the pool kept it alive, so the same id is the same buffer: reused
        assert c == a_data and b == b_data
        view = memoryview(b)
        del b
        d = st.read_reused(0, AREA, 5)
        assert d is not view.obj  # a view keeps its buffer out of the pool
        assert view == b_data and c == a_data and d == a_data
        view.release()


def test_a_timed_out_reused_read_never_lands_in_another_callers_buffer(
    loop_device: LoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read abandoned at its timeout still copies into its result buffer when the kernel returns;
    that buffer is not handed to the next read until then, so the late bytes reach nobody."""
    dev = loop_device(size=4 << 20)
    release = threading.Event()
    real_preadv = os.preadv
    calls = {"n": 0}

    def hanging_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            release.wait(30)
        return real_preadv(fd, buffers, offset)

    st = DirectStorage(dev.path)
    try:
        a_data, b_data = _fill(st, 0, 0xAA), _fill(st, 1 << 20, 0xBB)
        hung = [t for t in threading.enumerate() if t.name == f"io:{dev.path}"]
        assert len(hung) == 1  # the handle's one idle worker: the next I/O runs there
        monkeypatch.setattr(os, "preadv", hanging_preadv)
        with pytest.raises(LockError) as e:
            st.read_reused(0, AREA, 0.2)
        assert e.value.name == "AIO_TIMEOUT"
        late_id = id(st._pool[0])  # no reference kept: the abandoned job's is the only other one
        b = st.read_reused(1 << 20, AREA, 5)
        assert id(b) != late_id
        release.set()
        hung[0].join(30)
        assert not hung[0].is_alive()
        assert b == b_data  # the late read (of a_data) landed elsewhere
        del b
        c = st.read_reused(1 << 20, AREA, 5)  # both buffers are free again; either may come back
        assert c == b_data
        assert a_data != b_data
    finally:
        release.set()
        st.close()


def test_the_read_buffer_pool_is_let_go_after_an_idle_spell(loop_device: LoopFactory) -> None:
    """A burst of large reads leaves no buffers behind: the first I/O after POOL_IDLE seconds without
    one empties the pool; a buffer a caller still holds stays the caller's, never handed out again."""
    dev = loop_device(size=4 << 20)
    now = [1000.0]
    with DirectStorage(dev.path) as st:
        st.clock = lambda: now[0]
        a_data = _fill(st, 0, 0xAA)
        held = st.read_reused(0, AREA, 5)
        dropped = st.read_reused(0, AREA, 5)
        del dropped
        assert len(st._pool) == 2
        now[0] += storage.POOL_IDLE / 2
        st.read(0, 512, 5)
        assert len(st._pool) == 2  # not idle long enough
        now[0] += storage.POOL_IDLE
        st.read(0, 512, 5)
        assert st._pool == []
        fresh = [st.read_reused(1 << 20, AREA, 5) for _ in range(2)]
        assert all(f is not held for f in fresh)
        assert held == a_data
