"""Deliberately broken variants of the production delta acquire, made by subclassing ``DeltaLease``
and wrapping its seams (never by flags in lockengine): the delta explorer must find a counterexample
for each (tests/exhaustive/test_delta_mutations.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lockengine.delta import DeltaLease, HostTable
from lockengine.errors import LockError
from lockengine.ondisk import LEADER_SIZE, DeltaRecord, Leader, decode_delta_sector
from lockengine.storage import Storage
from lockengine.timeouts import Timeouts


class _TrustOwnWrite:
    """A storage wrapper whose reads of a sector we wrote return what we wrote (the read still runs)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.path = inner.path
        self.sector_size = inner.sector_size
        self.written: dict[int, bytes] = {}

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        data = self.inner.read(offset, length, timeout)
        mine = self.written.get(offset)
        return mine[:length] if mine is not None and len(mine) >= length else data

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        self.inner.write(offset, data, timeout)
        self.written[offset] = bytes(data)

    def size(self) -> int:
        return self.inner.size()

    def close(self) -> None:
        self.inner.close()


class NoReread(DeltaLease):
    """Acquire without the re-read after its 2·io wait: it trusts its own write (a racing writer
    that overwrote it goes unseen)."""

    def acquire(self, abort: threading.Event | None = None, progress: Callable[[str], None] | None = None) -> Leader:
        real = self.storage
        self.storage = _TrustOwnWrite(real)
        try:
            return super().acquire(abort, progress)
        finally:
            self.storage = real


class NoWait(DeltaLease):
    """Acquire without its waits: neither the host_dead wait on a slot held under another name nor
    the 2·io wait after the write (each sleep returns at once, no time passes)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._sleep = lambda seconds, abort, what: None


class AcceptLiveOwner(DeltaLease):
    """Acquire that takes a slot renewed under another name as if it were free (no wait for the
    owner to be dead)."""

    def acquire(self, abort: threading.Event | None = None, progress: Callable[[str], None] | None = None) -> Leader:
        self._first_read = True
        return super().acquire(abort, progress)

    def _read_slot(self) -> tuple[bytes, Leader]:
        raw, ld = super()._read_slot()
        if getattr(self, "_first_read", False):
            self._first_read = False
            ld = replace(ld, timestamp=0, owner_generation=0)  # read as never acquired
        return raw, ld


class SanlockFastPaths(DeltaLease):
    """The acquire rules before issue 8 (sanlock's): a free slot, or one that names us, is taken
    without the busy wait, and a slot that turned free during the wait is taken at once. Each lets a
    late write of an old record hand the id to a second host while a live holder's lease runs."""

    def _wait_for_owner(
        self, raw: bytes, ld: Leader, other: Timeouts, abort: threading.Event | None, say: Callable[[str], None]
    ) -> tuple[bytes, Leader, Timeouts]:
        if ld.timestamp == 0 or ld.resource_name == self.host_name:
            return raw, ld, other
        self._sleep(other.delta_acquire_busy_wait, abort, "acquire host id")
        raw2, ld2 = self._read_slot()
        if raw2[:LEADER_SIZE] != raw[:LEADER_SIZE] and ld2.timestamp != 0:
            raise LockError("HOSTID_BUSY", f"host id {self.host_id} is renewed by {ld2.resource_name!r}")
        return raw2, ld2, other


class TableMissesRenewals(HostTable):
    """A host table that notes a slot once and never again: a renewing host looks silent, so it is
    judged dead host_dead seconds after we first saw it."""

    def _note(self, host_id: int, rec: bytes, now: float) -> None:
        if host_id not in self._info:
            super()._note(host_id, rec, now)


class TrustsOwnReleasedName(DeltaLease):
    """The rejoin fast path on any released record that names us (sanlock's rule), not only on the
    exact record our own clean release left: a late release write of ours that landed over a newer
    holder's record then looks like a clean release."""

    def _our_clean_release(self, raw: bytes) -> bool:
        ld = decode_delta_sector(raw, 0).leader
        return ld.timestamp == 0 and ld.resource_name == self.host_name


class RemembersUnfinishedRelease(DeltaLease):
    """A release that keeps its record for the fast rejoin before knowing it landed in time: also
    when its write timed out (it may still land, late, over a newer holder's record)."""

    def release(self) -> None:
        written = self._last_written
        try:
            super().release()
        except (LockError, OSError):
            if written is not None:
                last = decode_delta_sector(written, 0).leader
                self.released = DeltaRecord(replace(last, timestamp=0)).encode_sector(self.geometry.sector_size)
            raise
