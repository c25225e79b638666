"""Delta leases: a host's claim on its host_id slot in a lockspace (sanlock-facts §2, §6, §7).

A holder proves it is alive by rewriting its slot with a new timestamp every 2·io. Other hosts never
compare timestamps across machines; they note *when they saw a change* on their own clock and judge
a host dead 8·io + fire_timeout after the last change they saw.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from .clock import Clock, abortable_sleep, monotime
from .errors import InputError, LockError
from .ondisk import (
    AREA_RUN,
    BITMAP_OFFSET,
    BITMAP_SIZE,
    LEADER_SIZE,
    AreaImage,
    DeltaRecord,
    Geometry,
    Leader,
    bitmap_test,
    bitmap_with,
    decode_delta_sector,
    encode_name,
    geometry_from_flags,
    leader_checksum_ok,
    verify_delta_leader,
)
from .states import HostState
from .storage import Storage, read_using
from .timeouts import DEFAULT_FIRE_TIMEOUT, Timeouts

GEOMETRY_PROBE = 4096
# A slot that turned free during the busy wait is waited on once more from the free record (acquire).
DELTA_BUSY_WAIT_RESTARTS = 1


def read_lockspace_geometry(storage: Storage, offset: int, space_name: str, timeout: float) -> Geometry:
    """Geometry from host 1's record, as sanlock does on lockspace start (the first 4 KiB)."""
    probe = max(GEOMETRY_PROBE, storage.sector_size)
    buf = storage.read(offset, probe, timeout)
    ld = verify_delta_leader(buf, 0, space_name)
    geom = geometry_from_flags(ld.sector_size, ld.flags)
    if geom.sector_size % storage.sector_size:
        raise LockError(
            "LEADER_SECTORSIZE",
            f"lockspace {space_name!r} uses {geom.sector_size}-byte sectors but {storage.path} has {storage.sector_size}",
        )
    return geom


class DeltaLease:
    """Our host_id lease in one lockspace: acquire, renew, release."""

    def __init__(
        self,
        storage: Storage,
        space_name: str,
        host_id: int,
        offset: int,
        *,
        host_name: str,
        io_timeout: int = 10,
        geometry: Geometry | None = None,
        fire_timeout: int = DEFAULT_FIRE_TIMEOUT,
        clock: Clock = time.monotonic,
        sleep: Callable[[float, threading.Event | None, str], None] = abortable_sleep,
        released: bytes | None = None,
    ) -> None:
        """``released``: the record a clean release of this slot by this daemon left on disk (its
        ``released`` after ``release``), which lets ``acquire`` rejoin without the busy wait."""
        encode_name(space_name, "lockspace name")
        encode_name(host_name, "host_name")
        if not 1 <= io_timeout <= 255:
            raise InputError("io_timeout", io_timeout, "use a whole number of seconds from 1 to 255")
        self.storage = storage
        self.space_name = space_name
        self.host_id = host_id
        self.offset = offset
        self.host_name = host_name
        self.io_timeout = io_timeout
        self.fire_timeout = fire_timeout
        self.timeouts = Timeouts(io_timeout, fire_timeout)
        self.clock = clock
        self._sleep = sleep
        self.geometry = geometry or read_lockspace_geometry(storage, offset, space_name, io_timeout)
        if offset % self.geometry.align_size:
            raise InputError("offset", offset, f"lockspace offsets are multiples of {self.geometry.align_size}")
        self.geometry.check_host_id(host_id)
        self.generation = 0
        self.last_success = 0.0
        self._last_written: bytes | None = None
        self._prev_renewal_ok = False
        self._bits: dict[int, float] = {}
        self._event = (0, 0, 0)
        self._lock = threading.Lock()
        self.released = released
        self._area: AreaImage | None = None  # the last area read, updated in place by each renewal

    # ------------------------------------------------------------------ helpers

    @property
    def slot_offset(self) -> int:
        return self.offset + self.geometry.host_offset(self.host_id)

    def _read_slot(self) -> tuple[bytes, Leader]:
        raw = self.storage.read(self.slot_offset, self.geometry.sector_size, self.io_timeout)
        return raw, verify_delta_leader(raw, 0, self.space_name, at=self.slot_offset)

    def _bitmap(self, now: float) -> bytes:
        with self._lock:
            self._bits = {h: until for h, until in self._bits.items() if until > now}
            return bitmap_with(set(self._bits))

    def request_bit(self, host_id: int, seconds: float) -> None:
        """Set host_id's bit in our next renewals for ``seconds`` (requests and events, facts §7)."""
        self.geometry.check_host_id(host_id, "target host_id")
        with self._lock:
            self._bits[host_id] = max(self._bits.get(host_id, 0.0), self.clock() + seconds)

    def set_event(self, host_id: int, generation: int, event: int, data: int) -> None:
        self._event = (generation, event, data)
        self.request_bit(host_id, self.timeouts.set_bitmap_seconds)

    def _record(self, base: Leader, timestamp: int, now: float) -> bytes:
        gen, event, data = self._event
        ld = replace(
            base,
            owner_id=self.host_id,
            resource_name=self.host_name,
            timestamp=timestamp,
            io_timeout=self.io_timeout & 0xFF,
            write_id=gen,
            write_generation=event,
            write_timestamp=data,
        )
        return DeltaRecord(ld, self._bitmap(now)).encode_sector(self.geometry.sector_size)

    # ------------------------------------------------------------------ acquire

    def acquire(
        self, abort: threading.Event | None = None, progress: Callable[[str], None] | None = None
    ) -> Leader:
        """Take our host_id slot: ~2·io on a never-acquired slot or on the record our own clean
        release left (``released``, byte for byte); any other slot (held or released, whoever it
        names, our own name included) is waited on first: the busy wait, 8·io + fire of its
        io_timeout, then 2·io.

        Stricter than sanlock (docs/ondisk.md): sanlock skips the wait when the slot names us or is
        free, and takes a slot that turned free during the wait. Each lets a late write of an old
        record (a slow renewal, a hung acquire or release write) hand the id to a second host while a
        live holder's lease runs."""
        say = progress or (lambda _msg: None)
        raw, ld = self._read_slot()
        other = Timeouts(ld.io_timeout or self.io_timeout, self.fire_timeout)  # judged by its io_timeout
        ours = self._our_clean_release(raw)
        self.released = None  # one use: a retry after a failed join waits
        if (ld.timestamp != 0 or ld.owner_generation != 0) and not ours:
            # Held, or released: a free record that names a holder may be a stale release write landing
            # late over a newer holder's record, so it is waited on too. Only a never-acquired slot
            # (generation 0: no lease write makes one) or our own clean release is joined at once.
            raw, ld, other = self._wait_for_owner(raw, ld, other, abort, say)
        now = self.clock()
        ts = monotime(self.clock)
        base = replace(ld, owner_generation=ld.owner_generation + 1)
        sector = self._record(base, ts, now)
        self.storage.write(self.slot_offset, sector, self.io_timeout)
        wait = other.delta_short_delay
        say(f"waiting {wait} s for host id {self.host_id}")
        self._sleep(wait, abort, "acquire host id")
        raw3, ld3 = self._read_slot()
        if raw3[:LEADER_SIZE] != sector[:LEADER_SIZE]:
            raise LockError(
                "HOSTID_BUSY",
                f"host id {self.host_id} in {self.space_name!r} was written by {ld3.resource_name!r} while we acquired",
            )
        self.generation = base.owner_generation
        self.last_success = now
        self._last_written = sector
        self._prev_renewal_ok = True
        return ld3

    def _wait_for_owner(
        self, raw: bytes, ld: Leader, other: Timeouts, abort: threading.Event | None, say: Callable[[str], None]
    ) -> tuple[bytes, Leader, Timeouts]:
        """The busy wait: the slot must stay unchanged for the owner's host_dead seconds.

        A record that changed to a live timestamp is a renewing owner: HOSTID_BUSY. A record that changed
        to *free* is a clean release or a stale release write landing late over a newer holder's record
        (the two look alike on disk): the wait restarts from the free record, once; a newer holder's next
        renewal then fails (RENEW_OWNER) and its lease runs out within 8·io, inside the second wait. A
        second change means the slot is in use: HOSTID_BUSY (the caller retries)."""
        restarts = 0
        while True:  # ends by the unchanged slot (return) or HOSTID_BUSY (raise)
            wait = other.delta_acquire_busy_wait
            who = "released" if ld.timestamp == 0 else f"last held by {ld.resource_name!r}"
            say(f"waiting {wait} s for host id {self.host_id}: slot {who}")
            self._sleep(wait, abort, "acquire host id")
            raw2, ld2 = self._read_slot()
            if raw2[:LEADER_SIZE] == raw[:LEADER_SIZE]:
                return raw2, ld2, other
            if ld2.timestamp != 0 or restarts == DELTA_BUSY_WAIT_RESTARTS:
                raise LockError(
                    "HOSTID_BUSY",
                    f"host id {self.host_id} in {self.space_name!r} is in use by {ld2.resource_name!r} "
                    f"(its record changed during the {wait} s wait)",
                )
            # Judge the next wait by the longest io_timeout seen: the overwritten holder's is unknown.
            io = max(ld.io_timeout, ld2.io_timeout, self.io_timeout)
            raw, ld, other = raw2, ld2, Timeouts(io, self.fire_timeout)
            restarts += 1

    def _our_clean_release(self, raw: bytes) -> bool:
        """The slot holds, byte for byte, the record our clean release wrote (see ``release``): no
        write has landed on it since, so joining it is the race for a never-acquired slot."""
        return self.released is not None and raw == self.released

    def adopt(self) -> Leader:
        """Take over a slot this host name holds on disk (another process of ours acquired it)."""
        raw, ld = self._read_slot()
        if ld.timestamp == 0 or (ld.owner_id, ld.resource_name) != (self.host_id, self.host_name):
            raise LockError(
                "RENEW_OWNER",
                f"host id {self.host_id} in {self.space_name!r} is not held by {self.host_name!r} "
                f"(owner {ld.owner_id} {ld.resource_name!r}, timestamp {ld.timestamp})",
            )
        self.generation = ld.owner_generation
        self.last_success = self.clock()
        self._last_written = raw
        self._prev_renewal_ok = True
        return ld

    # ------------------------------------------------------------------ renew

    def _read_area(self) -> AreaImage:
        """The whole lockspace area, read into this lease's one AreaImage (no 1 MiB buffer per renewal)."""
        if self._area is None:
            self._area = AreaImage(self.geometry.align_size, self.geometry.sector_size)
        read_using(self.storage, self.offset, self.geometry.align_size, self.io_timeout, self._area.update)
        return self._area

    def renew(self) -> AreaImage:
        """Read the whole lockspace, check our slot is still ours, write it with a new timestamp.

        Returns the area read so the caller can judge other hosts (HostTable.observe); it is this
        lease's one image, valid until the next renewal. Corruption raises at once (RENEW_OWNER,
        RENEW_DIFF, LEADER_*); I/O failures raise AIO_TIMEOUT or OSError.
        """
        if self._last_written is None:
            raise LockError("ERROR", f"host id {self.host_id} in {self.space_name!r} is not held")
        start = self.clock()
        prev_ok, self._prev_renewal_ok = self._prev_renewal_ok, False
        area = self._read_area()
        off = self.geometry.host_offset(self.host_id)
        ld = verify_delta_leader(area, off, self.space_name, at=self.offset + off)
        if (ld.owner_id, ld.owner_generation, ld.resource_name) != (self.host_id, self.generation, self.host_name):
            raise LockError(
                "RENEW_OWNER",
                f"slot {self.host_id} now names {ld.resource_name!r} id {ld.owner_id} gen {ld.owner_generation}",
            )
        sector_size = self.geometry.sector_size
        if prev_ok and area[off : off + sector_size] != self._last_written:
            raise LockError("RENEW_DIFF", f"slot {self.host_id} differs from our last write")
        sector = self._record(ld, monotime(self.clock), start)
        self.storage.write(self.offset + off, sector, self.timeouts.renewal_write_timeout)
        self._last_written = sector
        self.last_success = start
        self._prev_renewal_ok = True
        return area

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Free the slot: our last record with timestamp 0; owner, generation and name are kept."""
        if self._last_written is None:
            return
        raw, ld = self._read_slot()
        if (ld.owner_id, ld.owner_generation, ld.resource_name) != (self.host_id, self.generation, self.host_name):
            raise LockError("RENEW_OWNER", f"slot {self.host_id} is no longer ours; not releasing it")
        last = decode_delta_sector(self._last_written, 0).leader
        sector = DeltaRecord(replace(last, timestamp=0)).encode_sector(self.geometry.sector_size)
        self.storage.write(self.slot_offset, sector, self.io_timeout)
        done = self.clock()
        self._last_written = None
        self._prev_renewal_ok = False
        # A clean release: it landed before our lease expired. No other host writes a slot before it
        # stayed unchanged for host_dead (8·io + fire) after our last renewal, so none can have written
        # it before this record landed; only this release writes this record, and it has completed.
        # While the slot still holds it byte for byte, nobody has written it since (acquire's rejoin).
        # A release that timed out or failed, or landed after expiry, leaves nothing: the busy wait.
        self.released = sector if done < self.timeouts.expiry(self.last_success) else None


# ---------------------------------------------------------------------- liveness


@dataclass
class HostInfo:
    host_id: int
    owner_id: int
    generation: int
    timestamp: int
    host_name: str
    io_timeout: int
    first_check: float
    last_check: float
    last_live: float
    state: HostState = HostState.UNKNOWN

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class HostEvent:
    """Our bit was set in ``host_id``'s bitmap; ``event`` is non-zero for set_event."""

    host_id: int
    generation: int
    event: int
    data: int


def _never_acquired(rec: memoryview) -> bool:
    ld = decode_delta_sector(rec, 0).leader
    return ld.owner_id == 0 and ld.owner_generation == 0 and ld.timestamp == 0 and leader_checksum_ok(rec, 0)


class HostTable:
    """Liveness of every slot in a lockspace, judged from OUR observation times (facts §7)."""

    def __init__(
        self,
        space_name: str,
        geometry: Geometry,
        our_host_id: int,
        fire_timeout: int = DEFAULT_FIRE_TIMEOUT,
        our_io_timeout: int = 10,
    ) -> None:
        self.space_name = space_name
        self.geometry = geometry
        self.our_host_id = our_host_id
        self.fire_timeout = fire_timeout
        self.our_io_timeout = our_io_timeout
        self._raw: dict[int, bytes] = {}
        self._info: dict[int, HostInfo] = {}
        self._lock = threading.Lock()
        self._template: bytes | None = None
        self._image: AreaImage | None = None  # for areas handed in as bytes
        self._seen: list[int] | None = None  # the run versions of the image last observed
        self._seen_of: AreaImage | None = None
        self._invalid: set[int] = set()

    def observe(self, area: bytes | bytearray, now: float) -> list[HostEvent]:
        """Note every slot's record; return the hosts whose bitmap has our bit set.

        Runs on every renewal over up to 2000 slots. Only the 32-sector runs of the area that changed
        since the last observation are looked at (AreaImage versions: a renewal passes its lease's
        image; other callers' bytes go through this table's own image); in those, a slot equal to its
        last noted record, or to the never-acquired record, is skipped with one comparison.
        """
        s = self.geometry.sector_size
        image = area if isinstance(area, AreaImage) and area.run_size == s * AREA_RUN else self._own_image(area)
        view = memoryview(image)
        events: list[HostEvent] = []
        span = BITMAP_OFFSET + BITMAP_SIZE
        n = min(self.geometry.max_hosts, len(image) // s)
        with self._lock:
            seen = self._seen if self._seen_of is image else None
            versions = image.versions
            for run, version in enumerate(versions):
                if seen is not None and seen[run] == version:
                    continue
                a, b = run * image.run_size, min((run + 1) * AREA_RUN, n) * s
                for off in range(a, b, s):
                    host_id = off // s + 1
                    known = self._raw.get(host_id)
                    # (image.startswith compares in C; a memoryview == bytes goes byte by byte.)
                    if known is None:
                        # Never-acquired slots are byte-identical, so one comparison skips each of them.
                        if self._template is not None and image.startswith(self._template, off):
                            continue
                        if self._template is None and _never_acquired(view[off : off + span]):
                            self._template = bytes(view[off : off + LEADER_SIZE])
                            continue
                    elif image.startswith(known, off):  # known is a whole record (span bytes)
                        continue
                    rec = view[off : off + span]
                    self._note(host_id, bytes(rec), now)
                    if host_id != self.our_host_id and host_id in self._info and bitmap_test(
                        rec[BITMAP_OFFSET:], self.our_host_id
                    ):
                        ld = decode_delta_sector(rec, 0).leader
                        events.append(HostEvent(host_id, ld.write_id, ld.write_generation, ld.write_timestamp))
            for info in self._info.values():
                info.last_check = now
            self._seen, self._seen_of = list(versions), image
        return events

    def _own_image(self, area: bytes | bytearray) -> AreaImage:
        """This table's image of areas handed in as bytes (tests, the simulator, the bench)."""
        if self._image is None or len(self._image) != len(area):
            self._image = AreaImage(len(area), self.geometry.sector_size)
        self._image.update(area)
        return self._image

    def observe_slot(self, host_id: int, raw: bytes, now: float) -> HostInfo | None:
        """Note one slot read outside a renewal (paxos acquire re-reads an owner every second)."""
        with self._lock:
            known = self._raw.get(host_id)
            rec = raw[: BITMAP_OFFSET + BITMAP_SIZE]
            if known is not None and rec == known:
                self._info[host_id].last_check = now
            else:
                self._note(host_id, bytes(rec), now)
            return self._info.get(host_id)

    def _note(self, host_id: int, rec: bytes, now: float) -> None:
        ld = decode_delta_sector(rec, 0).leader
        if not leader_checksum_ok(rec, 0) or ld.space_name != self.space_name:
            # A torn or foreign record tells us nothing: never FREE, keep the last good view.
            self._invalid.add(host_id)
            return
        self._invalid.discard(host_id)
        self._raw[host_id] = rec
        old = self._info.get(host_id)
        if old is None:
            self._info[host_id] = HostInfo(
                host_id, ld.owner_id, ld.owner_generation, ld.timestamp, ld.resource_name,
                ld.io_timeout or self.our_io_timeout, now, now, now,
            )
            return
        if (old.owner_id, old.generation, old.timestamp) != (ld.owner_id, ld.owner_generation, ld.timestamp):
            old.last_live = now
        old.owner_id, old.generation, old.timestamp = ld.owner_id, ld.owner_generation, ld.timestamp
        old.host_name = ld.resource_name
        old.io_timeout = ld.io_timeout or self.our_io_timeout
        old.last_check = now

    def info(self, host_id: int) -> HostInfo | None:
        with self._lock:
            return self._info.get(host_id)

    def state(self, host_id: int, now: float) -> HostState:
        with self._lock:
            info = self._info.get(host_id)
            return self._state(info, host_id, now)

    def _state(self, info: HostInfo | None, host_id: int, now: float) -> HostState:
        if info is None:
            # Seen as a never-acquired record: free. Unreadable or not seen yet: unknown.
            return HostState.FREE if self._seen is not None and host_id not in self._invalid else HostState.UNKNOWN
        if info.timestamp == 0:
            return HostState.FREE
        if host_id == self.our_host_id:
            return HostState.LIVE
        theirs = Timeouts(info.io_timeout or self.our_io_timeout, self.fire_timeout)
        age = now - info.last_live
        if age > theirs.host_dead_seconds:
            return HostState.DEAD
        if age > theirs.id_renewal_fail_seconds:
            return HostState.FAIL
        if info.first_check == info.last_live:
            return HostState.UNKNOWN
        return HostState.LIVE

    def hosts(self, now: float) -> list[HostInfo]:
        with self._lock:
            out = []
            for host_id in sorted(self._info):
                info = self._info[host_id]
                out.append(replace(info, state=self._state(info, host_id, now)))
            return out
