"""Aligned O_DIRECT sector I/O on block devices and files, every I/O bounded by a timeout.

A blocked read or write cannot be interrupted from Python, so each I/O runs on a worker thread
that owns its own file descriptor and page-aligned buffer. The caller waits at most ``timeout``
seconds; on expiry the worker is abandoned (it keeps its fd until the kernel returns) and the next
I/O gets a fresh worker with a fresh fd. A hung path therefore costs one parked thread, never a
hung lease holder — the same contract as sanlock's AIO timeouts.

One handle serves many callers at once (the daemon shares one per path between all its lease
operations): each I/O borrows an idle worker, or starts one, and gives it back afterwards, so I/O for
different resources never waits for another's. No lock is held while an I/O is in flight; ordering
between the I/Os of one resource is its caller's business (a lease's operations run one at a time).
At most MAX_IDLE workers wait idle per handle; more are stopped when their I/O returns.

Large reads (a resource area, a ballot's phase read: 1 MiB each with the default geometry) can go
into result buffers the handle reuses (``read_reusing``): a fresh 1 MiB ``bytes`` per read costs a
fresh mapping, its page faults and an unmap in the daemon (its malloc serves every buffer above
128 KiB with mmap: daemon/main.py), ~0.5 ms of CPU each, more than half of an acquire's CPU. A
pooled buffer is handed out again only once nothing but the pool refers to it (CPython's reference
count; a caller that keeps the buffer keeps it to itself). The pool grows with the number of large
reads in flight or held at once (a burst of 32 acquires holds up to 64), and is let go by the first
I/O after POOL_IDLE seconds without a large read (a renewal), so a burst leaves no memory behind.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .errors import InputError, LockError, StorageIOError

BLKSSZGET = 0x1268
BLKGETSIZE64 = 0x80081272
MAX_IO = 8 << 20
MAX_IDLE = 8  # idle workers kept per handle (each is a thread, an fd and a buffer)
POOL_MIN = 128 << 10  # reads from this size on may use reused result buffers (read_reusing)
MAX_POOLED = 64  # reused result buffers kept per handle
POOL_IDLE = 10.0  # seconds without a large read after which the next I/O lets the pool go


def _refs(pool: list[bytearray], i: int) -> int:
    return sys.getrefcount(pool[i])


# What _refs counts for a pooled buffer nobody else refers to (the pool's reference and the
# call's own), measured the same way rather than assumed. Pooling is off where reference counts
# are not exact at the moment they are read (a free-threaded interpreter).
_FREE_REFS = _refs([bytearray(1)], 0)
_POOLING = bool(getattr(sys, "_is_gil_enabled", lambda: True)())


T = TypeVar("T")


class Storage(Protocol):
    """The seam every lease algorithm talks through; tests wrap it to inject faults."""

    path: str
    sector_size: int

    def read(self, offset: int, length: int, timeout: float) -> bytes: ...

    def write(self, offset: int, data: bytes, timeout: float) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


def device_sector_size(path: str) -> int:
    """Logical sector size: BLKSSZGET for a block device; sanlock treats regular files as 512."""
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        return 512
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4)
        return int(struct.unpack("<i", buf)[0])
    finally:
        os.close(fd)


def device_size(path: str) -> int:
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        return st.st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8)
        return int(struct.unpack("<Q", buf)[0])
    finally:
        os.close(fd)


class _Worker:
    """One thread, one O_DIRECT fd, one aligned buffer."""

    def __init__(self, path: str, flags: int) -> None:
        self.fd = os.open(path, flags)
        self.buf = mmap.mmap(-1, 1 << 20)
        self.jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self.replies: queue.SimpleQueue[tuple[bool, object]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"io:{path}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                break
            try:
                self.replies.put((True, job()))
            except BaseException as exc:  # handed to the waiting caller
                self.replies.put((False, exc))
        os.close(self.fd)
        self.buf.close()

    def ensure_buffer(self, length: int) -> memoryview:
        if len(self.buf) < length:
            self.buf.close()
            self.buf = mmap.mmap(-1, length)
        return memoryview(self.buf)[:length]

    def stop(self) -> None:
        self.jobs.put(None)


class DirectStorage:
    """O_DIRECT|O_SYNC access to one device or file; safe to use from many threads at once."""

    def __init__(self, path: str, sector_size: int | None = None, readonly: bool = False) -> None:
        if not os.path.exists(path):
            raise InputError("path", path, "give an existing block device or file")
        self.path = path
        self.sector_size = sector_size or device_sector_size(path)
        if self.sector_size not in (512, 4096):
            raise InputError("sector_size", self.sector_size, "use 512 or 4096")
        self._flags = os.O_DIRECT | (os.O_RDONLY if readonly else os.O_RDWR | os.O_SYNC)
        self._lock = threading.Lock()  # guards _idle and _closed only; never held across an I/O
        first = _Worker(path, self._flags)  # fails here, not at the first I/O, when the path cannot be opened
        self._idle: list[_Worker] = [first]
        self._stat_fd: int | None = os.dup(first.fd)  # what stat() reports, whichever worker is busy
        self._closed = False
        self._pool: list[bytearray] = []  # result buffers of large reads (read_reused); under _lock
        self._pool_used = 0.0  # when a large read last took a buffer
        self.clock: Callable[[], float] = time.monotonic
        self.abandoned = 0

    def size(self) -> int:
        return device_size(self.path)

    def _check_aligned(self, offset: int, length: int) -> None:
        s = self.sector_size
        if offset % s or length % s or length <= 0 or length > MAX_IO:
            raise InputError(
                "offset/length", f"{offset}/{length}",
                f"I/O must be whole {s}-byte sectors at a multiple of {s}, at most {MAX_IO} bytes",
            )

    def _borrow(self, op: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise LockError("ERROR", f"{self.path}: storage is closed")
            if self._idle:
                return self._idle.pop()
        try:
            return _Worker(self.path, self._flags)
        except OSError as exc:
            raise StorageIOError(exc.errno or errno.EIO, exc.strerror or str(exc), self.path, op, 0, 0) from None

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(worker)
                return
        worker.stop()

    def _submit(self, make_job: Callable[[_Worker], Callable[[], object]], timeout: float, what: str) -> object:
        if self._pool and self.clock() - self._pool_used > POOL_IDLE:
            with self._lock:  # buffers still held by callers are theirs; they just go back to nobody
                self._pool = []
        worker = self._borrow(what.split(" ", 1)[0])  # "read" or "write"
        worker.jobs.put(make_job(worker))
        try:
            ok, value = worker.replies.get(timeout=timeout)
        except queue.Empty:
            # Abandon the hung I/O: its thread keeps its fd; the next I/O gets another worker.
            worker.stop()
            with self._lock:
                self.abandoned += 1
            raise LockError("AIO_TIMEOUT", f"{what} on {self.path} did not complete in {timeout:g} s") from None
        self._give_back(worker)
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value

    def _pread(self, fd: int, view: memoryview, offset: int, length: int) -> None:
        """One whole read into ``view`` (on an I/O worker); a failure or a short read names the I/O
        (errors.storage_error). Callers hold the view in a ``with``, so it is released before any
        exception leaves and the mmap can be closed."""
        try:
            n = os.preadv(fd, [view], offset)
        except OSError as exc:
            raise StorageIOError(exc.errno or errno.EIO, exc.strerror or str(exc), self.path, "read",
                                 offset, length) from None
        if n != length:
            raise StorageIOError(errno.EIO, f"short read: {n} of {length} bytes at {offset}", self.path,
                                 "read", offset, length)

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        self._check_aligned(offset, length)

        def job_for(w: _Worker) -> Callable[[], object]:
            def job() -> bytes:
                # The view is released before any exception leaves, so the mmap can be closed.
                with w.ensure_buffer(length) as view:
                    self._pread(w.fd, view, offset, length)
                    return bytes(view)

            return job

        result = self._submit(job_for, timeout, f"read of {length} bytes at {offset}")
        assert isinstance(result, bytes)
        return result

    def _result_buffer(self, length: int) -> bytearray:
        """A buffer of ``length`` bytes nobody else refers to: a pooled one, or a new one."""
        if length < POOL_MIN or not _POOLING:
            return bytearray(length)
        with self._lock:  # every hand-out happens here: a free buffer goes to one caller only
            self._pool_used = self.clock()
            pool = self._pool
            spare = -1
            for i in range(len(pool)):
                if _refs(pool, i) == _FREE_REFS:
                    if len(pool[i]) == length:
                        return pool[i]
                    spare = i
            buf = bytearray(length)
            if len(pool) < MAX_POOLED:
                pool.append(buf)
            elif spare >= 0:
                pool[spare] = buf  # a free buffer of another size makes room
            return buf

    def read_reused(self, offset: int, length: int, timeout: float) -> bytearray:
        """``read``, into a buffer this handle hands out again once the caller has dropped it.

        The caller owns the buffer while it refers to it. A read that times out keeps its buffer
        until its abandoned I/O returns (the job refers to it), so a late landing never writes into
        a buffer another read was given."""
        self._check_aligned(offset, length)
        out = self._result_buffer(length)

        def job_for(w: _Worker) -> Callable[[], object]:
            def job() -> None:
                with w.ensure_buffer(length) as view:
                    self._pread(w.fd, view, offset, length)
                    memoryview(out)[:] = view

            return job

        self._submit(job_for, timeout, f"read of {length} bytes at {offset}")
        return out

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        length = len(data)
        self._check_aligned(offset, length)

        def job_for(w: _Worker) -> Callable[[], object]:
            def job() -> None:
                with w.ensure_buffer(length) as view:
                    view[:] = data
                    try:
                        n = os.pwritev(w.fd, [view], offset)
                    except OSError as exc:  # name the path: "PATH is read-only" (errors.read_only_error)
                        raise StorageIOError(exc.errno or errno.EIO, exc.strerror or str(exc), self.path, "write",
                                             offset, length) from None
                if n != length:
                    raise StorageIOError(errno.EIO, f"short write: {n} of {length} bytes at {offset}", self.path,
                                         "write", offset, length)

            return job

        self._submit(job_for, timeout, f"write of {length} bytes at {offset}")

    def stat(self) -> os.stat_result:
        """What the open handle refers to (the daemon compares it with a client's access check)."""
        with self._lock:
            if self._stat_fd is None:
                raise LockError("ERROR", f"{self.path}: storage is closed")
            return os.fstat(self._stat_fd)

    def close(self) -> None:
        """Stop the idle workers; a busy one stops when its I/O returns (it is not given back)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            if self._stat_fd is not None:
                os.close(self._stat_fd)
                self._stat_fd = None
            self._pool = []
        for worker in idle:
            worker.stop()

    def __enter__(self) -> DirectStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_with(self, offset: int, length: int, timeout: float, use: Callable[[memoryview], T]) -> T:
        """Like read(), but hand the I/O worker's aligned buffer to ``use`` in the calling thread instead
        of copying it into new bytes (a renewal compares its 1 MiB area with the last one in place). The
        view is valid only during ``use``; a timed-out read's buffer is never handed out."""
        self._check_aligned(offset, length)
        worker = self._borrow("read")

        def job() -> None:
            with worker.ensure_buffer(length) as view:
                self._pread(worker.fd, view, offset, length)

        worker.jobs.put(job)
        try:
            ok, value = worker.replies.get(timeout=timeout)
        except queue.Empty:
            worker.stop()  # abandoned with its fd and buffer, as in _submit
            with self._lock:
                self.abandoned += 1
            raise LockError("AIO_TIMEOUT", f"read of {length} bytes at {offset} on {self.path} did not complete "
                                           f"in {timeout:g} s") from None
        try:
            if not ok:
                assert isinstance(value, BaseException)
                raise value
            with memoryview(worker.buf)[:length] as view:
                return use(view)
        finally:
            self._give_back(worker)


class Borrowed:
    """A view of a shared Storage whose ``close`` ends only the view (the owner closes the storage).

    The daemon's lockspaces renew through the handle its lease operations use (one per path, see
    DirectStorage: no I/O waits for another's), instead of a handle, a thread and a 1 MiB buffer each.
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.path = inner.path
        self.sector_size = inner.sector_size
        self.closed = False

    def _check(self) -> Storage:
        if self.closed:
            raise LockError("ERROR", f"{self.path}: storage is closed")
        return self.inner

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        return self._check().read(offset, length, timeout)

    def read_reused(self, offset: int, length: int, timeout: float) -> bytes | bytearray:
        return read_reusing(self._check(), offset, length, timeout)

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        self._check().write(offset, data, timeout)

    def size(self) -> int:
        return self._check().size()

    def close(self) -> None:
        self.closed = True

    def read_with(self, offset: int, length: int, timeout: float, use: Callable[[memoryview], T]) -> T:
        return read_using(self._check(), offset, length, timeout, use)


def read_using(storage: Storage, offset: int, length: int, timeout: float, use: Callable[[memoryview], T]) -> T:
    """``use`` the bytes read: from the storage's own buffer where it can lend one (read_with), else
    from a read() copy (fault-injecting and simulated storages)."""
    lend = getattr(storage, "read_with", None)
    if lend is not None:
        result: T = lend(offset, length, timeout, use)
        return result
    return use(memoryview(storage.read(offset, length, timeout)))


def read_reusing(storage: Storage, offset: int, length: int, timeout: float) -> bytes | bytearray:
    """A large read that may come in a buffer the storage reuses once the caller drops it
    (DirectStorage.read_reused); any other Storage (a fault-injecting wrapper, a simulated disk)
    serves it with its own ``read``, so no seam is bypassed."""
    if isinstance(storage, (DirectStorage, Borrowed)):
        return storage.read_reused(offset, length, timeout)
    return storage.read(offset, length, timeout)
