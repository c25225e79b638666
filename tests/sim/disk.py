"""A simulated shared disk (in memory, sector-atomic writes) and each host's view of it with faults.

Every read and write yields to the scheduler for its latency, so all I/O of all hosts interleaves in
the seed's order. A host's storage faults: extra latency, EIO, a hung I/O (the call times out after
its timeout, as DirectStorage abandons it), a write that lands late (inside its timeout: the call
returns when it lands; after it: the call has already failed with AIO_TIMEOUT when the data lands),
read-only storage (writes fail with EPERM) and lost storage (every I/O hangs). Pending late writes
are dropped when the host is reset (power is gone) but not when only its daemon dies.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass

from lockengine.errors import LockError

from .sched import Scheduler, SimAbort

LARGE = 64 << 10


class SimDisk:
    def __init__(self, path: str, size: int, sector_size: int) -> None:
        self.path = path
        self.sector_size = sector_size
        self.data = bytearray(size)
        self.writes = 0

    def land(self, offset: int, data: bytes) -> None:
        self.data[offset:offset + len(data)] = data
        self.writes += 1


@dataclass
class IoFaults:
    """What one host's path to the disk does now (changed by the fault schedule)."""

    mode: str = "ok"  # ok | readonly | hung
    slow: float = 0.0  # extra latency per I/O, seconds
    eio: float = 0.0  # probability of EIO per I/O
    hang: float = 0.0  # probability that one I/O hangs
    late: float = 0.0  # probability that a write lands late
    hang_large: float = 0.0  # probability that a large I/O (a renewal's area read) hangs: a congested path
    hang_area: int = -1  # >= 0: every large read at this offset hangs (one area's blocks unreachable)


class HostIo:
    """One host's path to the shared disks: its fault state and its writes still in flight."""

    def __init__(self, sched: Scheduler, rng: random.Random) -> None:
        self.sched = sched
        self.rng = rng
        self.faults = IoFaults()
        self.epoch = 0  # bumped at a reset: late writes of an earlier epoch never land
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def reset(self) -> None:
        self.epoch += 1
        self.faults = IoFaults()


class SimStorage:
    """lockengine.storage.Storage over a SimDisk for one host (the runtime's storage opener)."""

    def __init__(self, disk: SimDisk, io: HostIo) -> None:
        self.disk = disk
        self.io = io
        self.path = disk.path
        self.sector_size = disk.sector_size
        self.closed = False

    def size(self) -> int:
        return len(self.disk.data)

    def close(self) -> None:
        self.closed = True

    def _latency(self) -> float:
        return self.io.rng.uniform(0.0005, 0.02) + self.io.faults.slow

    def _check(self, offset: int, length: int) -> None:
        s = self.sector_size
        assert offset % s == 0 and length % s == 0 and length > 0, (offset, length)
        actor = self.io.sched.current()
        if actor is None or actor.killed:
            raise SimAbort("I/O from a dead process")

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        self._check(offset, length)
        f, sched, rng = self.io.faults, self.io.sched, self.io.rng
        if f.mode == "hung" or (f.hang and rng.random() < f.hang) or (
                length >= LARGE and f.hang_large and rng.random() < f.hang_large) or (
                length >= LARGE and offset == f.hang_area):
            self.io.count("read_hang")
            sched.sleep(timeout)
            raise LockError("AIO_TIMEOUT", f"read of {length} bytes at {offset} did not complete in {timeout:g} s")
        d = self._latency()
        if d >= timeout:
            sched.sleep(timeout)
            raise LockError("AIO_TIMEOUT", f"read of {length} bytes at {offset} did not complete in {timeout:g} s")
        sched.sleep(d)
        if f.eio and rng.random() < f.eio:
            self.io.count("read_eio")
            raise OSError(errno.EIO, f"read at {offset}: I/O error")
        return bytes(self.disk.data[offset:offset + length])

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        self._check(offset, len(data))
        f, sched, rng = self.io.faults, self.io.sched, self.io.rng
        data = bytes(data)
        if f.mode == "readonly":
            sched.sleep(self._latency())
            self.io.count("write_erofs")
            raise OSError(errno.EPERM, f"write at {offset}: read-only")
        if f.mode == "hung" or (f.hang and rng.random() < f.hang):
            self.io.count("write_hang")
            sched.sleep(timeout)
            raise LockError("AIO_TIMEOUT", f"write of {len(data)} bytes at {offset} did not complete in {timeout:g} s")
        if f.eio and rng.random() < f.eio:
            sched.sleep(self._latency())
            self.io.count("write_eio")
            raise OSError(errno.EIO, f"write at {offset}: I/O error")
        if f.late and rng.random() < f.late:
            lands = rng.uniform(0.2, 1.5) * timeout
            if lands < timeout:
                self.io.count("write_late_inside")
                sched.sleep(lands)
                self._land(offset, data)
                return
            self.io.count("write_late_after")
            epoch = self.io.epoch
            sched.at(sched.now + lands, lambda: self._land(offset, data) if self.io.epoch == epoch else None)
            sched.sleep(timeout)
            raise LockError("AIO_TIMEOUT", f"write of {len(data)} bytes at {offset} did not complete in {timeout:g} s")
        sched.sleep(self._latency())
        self._land(offset, data)

    def _land(self, offset: int, data: bytes) -> None:
        s = self.sector_size
        for i in range(0, len(data), s):  # each sector is atomic; the write as a whole is not
            self.disk.land(offset + i, data[i:i + s])
