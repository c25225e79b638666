"""Faults of one host, injected from outside it: its storage path fails, slows or hangs; it freezes.

Each acts on that host's own loop devices and cgroups only, so the other hosts are unaffected.
"""

from __future__ import annotations

import contextlib

from . import cgroups, storage
from .errors import HarnessError
from .records import HostRecord, LoopRecord


def paths(h: HostRecord, disk: int | None) -> list[LoopRecord]:
    """The host's storage paths: all of them, or the one to disk index `disk`."""
    loops = h["loops"]
    if disk is None:
        return loops
    chosen = [loop for loop in loops if loop["disk"] == disk]
    if not chosen:
        raise HarnessError(f"{h['name']} has no disk {disk} (disks: {[loop['disk'] for loop in loops]})")
    return chosen


def fail_storage(h: HostRecord, disk: int | None = None) -> None:
    """The host's path fails: its writes get EPERM (reads still work)."""
    for loop in paths(h, disk):
        storage.set_read_only(loop["device"], True)


def check_throttle(iops: int, bps: int) -> None:
    if iops < 0 or bps < 0 or (iops == 0 and bps == 0):
        raise HarnessError("slow-storage needs a positive --iops or --bps")


def slow_storage(h: HostRecord, iops: int, bps: int = 0, disk: int | None = None) -> None:
    """Throttle the host's path (blkio, this host's cgroup only): iops=1 makes each I/O take ~1 s."""
    check_throttle(iops, bps)
    for loop in paths(h, disk):
        storage.set_throttle(cgroups.blkio_of(h), loop["device"], iops=iops, bps=bps)


def heal_storage(h: HostRecord, disk: int | None = None) -> None:
    """Undo fail/slow/hang: writable again, no throttle (queued I/O is released)."""
    for loop in paths(h, disk):
        storage.set_read_only(loop["device"], False)
        storage.set_throttle(cgroups.blkio_of(h), loop["device"])


def release_storage(h: HostRecord) -> None:
    """heal_storage, best effort (a loop device may already be gone): before a host is stopped for good,
    so that no process of it stays stuck on a hung or throttled path."""
    for loop in h.get("loops", []):
        with contextlib.suppress(Exception):
            storage.set_read_only(loop["device"], False)
            storage.set_throttle(cgroups.blkio_of(h), loop["device"])


def freeze(h: HostRecord) -> None:
    """Every process of the host stops (freezer cgroup): a hung host."""
    cgroups.set_frozen(cgroups.freezer_of(h), True)


def thaw(h: HostRecord) -> None:
    cgroups.set_frozen(cgroups.freezer_of(h), False)
