"""Small tools shared by the lease unit tests and the property tests: a fake clock and sleep, direct
access to records on the test disk, a gate that runs code before the N-th I/O of a storage, and a
scripted owner-liveness stub."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lockengine.ondisk import (
    LEADER_SIZE,
    DBlock,
    DeltaRecord,
    Geometry,
    HostSlot,
    Leader,
    ModeBlock,
    RequestRecord,
    decode_delta_sector,
    decode_leader,
    decode_paxos_slots,
    decode_request,
    host_sector,
)
from lockengine.storage import DirectStorage

from .testdisk import LS_OFFSET, RES_OFFSET

TIMEOUT = 5.0


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it (or a test moves it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[tuple[float, str]] = []
        self.on_sleep: Callable[[float, str], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, abort: threading.Event | None = None, what: str = "") -> None:
        """The ``sleep=`` the lease classes take; ``on_sleep`` may change the disk meanwhile."""
        self.sleeps.append((seconds, what))
        if self.on_sleep is not None:
            self.on_sleep(seconds, what)
        self.now += seconds


class Disk:
    """Reads and writes records on the test file behind the engine's back (another 'host')."""

    def __init__(self, path: Path, geometry: Geometry) -> None:
        self.path = path
        self.geometry = geometry
        self.st = DirectStorage(str(path))

    def close(self) -> None:
        self.st.close()

    # resource area
    def leader(self) -> Leader:
        return decode_leader(self.st.read(RES_OFFSET, self.geometry.sector_size, TIMEOUT), 0)

    def put_leader(self, ld: Leader) -> None:
        sector = bytearray(self.geometry.sector_size)
        sector[:LEADER_SIZE] = ld.encode()
        self.st.write(RES_OFFSET, bytes(sector), TIMEOUT)

    def update_leader(self, **changes: Any) -> Leader:
        ld = replace(self.leader(), **changes)
        self.put_leader(ld)
        return ld

    def slots(self) -> dict[int, HostSlot]:
        g = self.geometry
        return decode_paxos_slots(self.st.read(RES_OFFSET, g.align_size, TIMEOUT), g.sector_size, g.max_hosts)

    def host_sector(self, host_id: int) -> bytes:
        g = self.geometry
        return self.st.read(RES_OFFSET + g.dblock_offset(host_id), g.sector_size, TIMEOUT)

    def put_dblock(self, host_id: int, db: DBlock, mb: ModeBlock | None = None, raw_checksum: int | None = None) -> None:
        g = self.geometry
        sector = bytearray(host_sector(db, mb or ModeBlock(), g.sector_size))
        if raw_checksum is not None:
            sector[48:52] = raw_checksum.to_bytes(4, "little")
        self.st.write(RES_OFFSET + g.dblock_offset(host_id), bytes(sector), TIMEOUT)

    def request(self) -> RequestRecord:
        s = self.geometry.sector_size
        return decode_request(self.st.read(RES_OFFSET + s, s, TIMEOUT), 0)

    def put_request(self, rec: RequestRecord) -> None:
        s = self.geometry.sector_size
        sector = bytearray(s)
        enc = rec.encode()
        sector[: len(enc)] = enc
        self.st.write(RES_OFFSET + s, bytes(sector), TIMEOUT)

    def resource_bytes(self) -> bytes:
        return self.st.read(RES_OFFSET, self.geometry.align_size, TIMEOUT)

    # lockspace area
    def slot_raw(self, host_id: int) -> bytes:
        g = self.geometry
        return self.st.read(LS_OFFSET + g.host_offset(host_id), g.sector_size, TIMEOUT)

    def delta(self, host_id: int) -> DeltaRecord:
        return decode_delta_sector(self.slot_raw(host_id), 0)

    def put_delta(self, host_id: int, ld: Leader, bitmap: bytes | None = None) -> None:
        g = self.geometry
        rec = DeltaRecord(ld, bitmap) if bitmap is not None else DeltaRecord(ld)
        self.st.write(LS_OFFSET + g.host_offset(host_id), rec.encode_sector(g.sector_size), TIMEOUT)

    def update_delta(self, host_id: int, **changes: Any) -> Leader:
        ld = replace(self.delta(host_id).leader, **changes)
        self.put_delta(host_id, ld)
        return ld

    def lockspace_bytes(self) -> bytes:
        return self.st.read(LS_OFFSET, self.geometry.align_size, TIMEOUT)


class Interleave:
    """A FaultyStorage gate that runs ``actions[n]`` just before the n-th I/O (0-based) of its storage,
    to place another host's write at an exact point of an algorithm."""

    def __init__(self, actions: dict[int, Callable[[], None]] | None = None) -> None:
        self.actions = dict(actions or {})
        self.ops: list[tuple[str, int, int]] = []

    def __call__(self, op: str, offset: int, length: int) -> None:
        n = len(self.ops)
        self.ops.append((op, offset, length))
        action = self.actions.pop(n, None)
        if action is not None:
            action()


@dataclass
class StubLiveness:
    """OwnerLiveness with scripted answers: ``verdicts`` for successive checks, ``dead`` holders."""

    verdicts: list[str] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)
    checks: int = 0
    asked_dead: list[tuple[int, int]] = field(default_factory=list)

    def begin(self, leader: Leader) -> object:
        return object()

    def check(self, leader: Leader, watch: object) -> tuple[str, float]:
        self.checks += 1
        verdict = self.verdicts.pop(0) if len(self.verdicts) > 1 else self.verdicts[0]
        return verdict, 5.0

    def holder_dead(self, host_id: int, generation: int) -> bool:
        self.asked_dead.append((host_id, generation))
        return host_id in self.dead


class NoLiveness(StubLiveness):
    """Fails the test if the acquire consults liveness at all."""

    def begin(self, leader: Leader) -> object:
        raise AssertionError(f"liveness consulted for owner {leader.owner_id}")
