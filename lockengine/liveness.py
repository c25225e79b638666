"""Is a resource lease's owner alive? Judged from its delta lease, as sanlock's paxos acquire does.

The owner is alive when its delta timestamp changes while we watch (or our host table saw it
change at its last check). It is dead — and its watchdog has fired — once no change has been
seen for host_dead_seconds (8·io + fire_timeout) of *our* clock, counted from the last change we
saw, or from now when we have never watched it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .clock import Clock
from .delta import HostTable
from .ondisk import Geometry, Leader, verify_delta_leader
from .storage import Storage
from .timeouts import DEFAULT_FIRE_TIMEOUT, Timeouts


class Verdict(StrEnum):
    """What one check of a lease owner's delta lease says."""

    RUN = "RUN"  # the owner is gone: run a ballot
    ALIVE = "ALIVE"  # the owner renews: refuse with ACQUIRE_IDLIVE
    WAIT = "WAIT"  # not seen renewing, not dead yet: check again in a second


RUN, ALIVE, WAIT = Verdict.RUN, Verdict.ALIVE, Verdict.WAIT  # short names paxos.py and the exhaustive world use


@dataclass
class Watch:
    """State of one wait on one owner, carried between checks."""

    wait_start: float
    last_timestamp: int
    seen_renewing: bool = False


class OwnerLiveness(Protocol):
    def begin(self, leader: Leader) -> Watch: ...

    def check(self, leader: Leader, watch: Watch) -> tuple[Verdict, float]:
        """(RUN | ALIVE | WAIT, seconds until the owner counts as dead)."""
        ...

    def holder_dead(self, host_id: int, generation: int) -> bool:
        """Is a shared holder (host_id, generation) certainly gone?"""
        ...


class DeltaOwnerLiveness:
    """Reads owners' delta records from the lockspace; uses a host table when the daemon has one."""

    def __init__(
        self,
        storage: Storage,
        lockspace_offset: int,
        space_name: str,
        geometry: Geometry,
        *,
        io_timeout: int,
        fire_timeout: int = DEFAULT_FIRE_TIMEOUT,
        table: HostTable | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.storage = storage
        self.offset = lockspace_offset
        self.space_name = space_name
        self.geometry = geometry
        self.io_timeout = io_timeout
        self.fire_timeout = fire_timeout
        self.table = table
        self.clock = clock

    def _read(self, host_id: int) -> tuple[bytes, Leader]:
        s = self.geometry.sector_size
        at = self.offset + self.geometry.host_offset(host_id)
        raw = self.storage.read(at, s, self.io_timeout)
        return raw, verify_delta_leader(raw, 0, self.space_name, at=at)

    def begin(self, leader: Leader) -> Watch:
        info = self.table.info(leader.owner_id) if self.table else None
        if info is not None and (info.owner_id, info.generation) == (leader.owner_id, leader.owner_generation):
            # Our latest renewal-time check saw its record change: it renews, so it is alive now.
            renewing = info.last_live == info.last_check and info.first_check != info.last_live
            return Watch(info.last_live, info.timestamp, renewing)
        return Watch(self.clock(), 0)

    def check(self, leader: Leader, watch: Watch) -> tuple[Verdict, float]:
        raw, delta = self._read(leader.owner_id)
        now = self.clock()
        if self.table is not None:
            self.table.observe_slot(leader.owner_id, raw, now)
        if delta.timestamp == 0:
            return Verdict.RUN, 0.0  # the owner released its host id, so it holds nothing
        if delta.owner_id != leader.owner_id or delta.owner_generation > leader.owner_generation:
            return Verdict.RUN, 0.0  # the slot was re-acquired since: the lease's holder is gone
        if watch.seen_renewing:
            return Verdict.ALIVE, 0.0
        if watch.last_timestamp == 0:
            watch.last_timestamp = delta.timestamp
        elif delta.timestamp != watch.last_timestamp:
            return Verdict.ALIVE, 0.0
        dead_after = Timeouts(delta.io_timeout or self.io_timeout, self.fire_timeout).host_dead_seconds
        remaining = dead_after - (now - watch.wait_start)
        if remaining < 0:
            return Verdict.RUN, 0.0
        return Verdict.WAIT, remaining

    def holder_dead(self, host_id: int, generation: int) -> bool:
        _, delta = self._read(host_id)
        if delta.timestamp == 0 or delta.owner_id != host_id or delta.owner_generation > generation:
            return True
        info = self.table.info(host_id) if self.table is not None else None
        if info is None:
            return False
        # Dead only if it stayed unchanged for host_dead seconds *that we watched*: with our own renewals
        # failing the table goes stale, and a host we have not looked at may have renewed unseen.
        dead_after = Timeouts(info.io_timeout or self.io_timeout, self.fire_timeout).host_dead_seconds
        return info.last_check - info.last_live > dead_after
