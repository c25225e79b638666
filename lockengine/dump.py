"""Read lease areas off a device and describe them: the engine of ``lockengine direct dump``.

Unlike ``sanlock direct dump``, which takes one geometry from the first record it finds and applies it
to the whole range, every area is decoded with the geometry its own first record declares, so a
device holding 512/1M and 4K/2M areas side by side dumps correctly. Records are validated as sanlock
validates them; a record that fails is reported with its error and is never shown as free.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import InputError, LockError, error_document
from .ondisk import (
    BITMAP_OFFSET,
    BITMAP_SIZE,
    DELTA_DISK_MAGIC,
    LEADER_SIZE,
    LFL_SHORT_HOLD,
    PAXOS_DISK_CLEAR,
    PAXOS_DISK_MAGIC,
    DBlock,
    Geometry,
    Leader,
    bitmap_test,
    decode_leader,
    decode_paxos_slots,
    decode_request,
    geometry_from_flags,
    new_delta_leader,
    verify_delta_leader,
    verify_paxos_leader,
)
from .storage import Storage

STEP = 1 << 20  # every area starts at a multiple of 1 MiB, the smallest area size
HEAD = 4096  # one read covers the first record of either sector size
DEFAULT_TIMEOUT = 10.0

Area = dict[str, Any]


def error_dict(exc: LockError | InputError) -> dict[str, object]:
    return error_document(exc)


# --------------------------------------------------------------------------- pure decoding


def area_kind(head: bytes | memoryview) -> str | None:
    """'lockspace' or 'resource' from the magic of an area's first record; None if neither."""
    magic = struct.unpack_from("<I", head, 0)[0]
    if magic == DELTA_DISK_MAGIC:
        return "lockspace"
    if magic in (PAXOS_DISK_MAGIC, PAXOS_DISK_CLEAR):
        return "resource"
    return None


def area_geometry(head: bytes | memoryview) -> Geometry:
    """The geometry an area's first record declares; LockError/InputError if it names none we know."""
    ld = decode_leader(head, 0)
    return geometry_from_flags(ld.sector_size, ld.flags)


def _bitmap_hosts(bitmap: bytes | memoryview, max_hosts: int) -> list[int]:
    if not any(bitmap):
        return []
    return [h for h in range(1, max_hosts + 1) if bitmap_test(bitmap, h)]


def _host_entry(host_id: int, ld: Leader, bitmap: bytes | memoryview, max_hosts: int) -> dict[str, object]:
    return {
        "host_id": host_id,
        "owner_id": ld.owner_id,
        "generation": ld.owner_generation,
        "timestamp": ld.timestamp,
        "host_name": ld.resource_name,
        "io_timeout": ld.io_timeout,
        "bitmap": _bitmap_hosts(bitmap, max_hosts),
        "event": {"generation": ld.write_id, "event": ld.write_generation, "data": ld.write_timestamp},
    }


def decode_lockspace_area(buf: bytes, offset: int, geom: Geometry) -> Area:
    """Every acquired or invalid delta record of one lockspace area.

    Skipped, as sanlock's dump skips them: never-acquired slots, and sectors with magic 0 (never
    written: a record that fails validation with any other magic is listed with its error)."""
    view = memoryview(buf)
    first = decode_leader(view, 0)
    space_name = first.space_name
    # A never-acquired record is byte-identical to a freshly initialised one: one memcmp skips it,
    # where validating all 2000 records would cost ~10 ms.
    fresh = new_delta_leader(space_name, geom, first.io_timeout).encode()
    hosts: list[dict[str, object]] = []
    s = geom.sector_size
    for host_id in range(1, geom.max_hosts + 1):
        off = (host_id - 1) * s
        if off + BITMAP_OFFSET + BITMAP_SIZE > len(view):
            break
        if buf.startswith(fresh, off) or struct.unpack_from("<I", view, off)[0] == 0:
            continue
        try:
            ld = verify_delta_leader(view, off, space_name)
        except LockError as exc:
            ld = decode_leader(view, off)
            entry = _host_entry(host_id, ld, view[off + BITMAP_OFFSET : off + BITMAP_OFFSET + BITMAP_SIZE], geom.max_hosts)
            entry["valid"] = False
            entry["error"] = error_dict(exc)
            hosts.append(entry)
            continue
        if ld.owner_id == 0 and ld.owner_generation == 0:
            continue
        entry = _host_entry(host_id, ld, view[off + BITMAP_OFFSET : off + BITMAP_OFFSET + BITMAP_SIZE], geom.max_hosts)
        entry["valid"] = True
        hosts.append(entry)
    area: Area = {
        "offset": offset,
        "kind": "lockspace",
        "lockspace": space_name,
        "sector_size": geom.sector_size,
        "align_size": geom.align_size,
        "max_hosts": geom.max_hosts,
        "hosts": hosts,
    }
    if len(view) < geom.align_size:
        area["truncated"] = True
    return area


def decode_resource_area(buf: bytes, offset: int, geom: Geometry, dblocks: bool = False) -> Area:
    """The leader, request record, shared holders and (optionally) non-empty dblocks of one resource area."""
    view = memoryview(buf)
    ld = decode_leader(view, 0)
    s = geom.sector_size
    area: Area = {
        "offset": offset,
        "kind": "resource",
        "lockspace": ld.space_name,
        "resource": ld.resource_name,
        "sector_size": geom.sector_size,
        "align_size": geom.align_size,
        "num_hosts": ld.num_hosts,
        "max_hosts": ld.max_hosts,
        "owner_id": ld.owner_id,
        "owner_generation": ld.owner_generation,
        "lver": ld.lver,
        "timestamp": ld.timestamp,
        "short_hold": bool(ld.flags & LFL_SHORT_HOLD),
        "write_id": ld.write_id,
        "write_generation": ld.write_generation,
        "write_timestamp": ld.write_timestamp,
        "cleared": ld.magic == PAXOS_DISK_CLEAR,
    }
    try:
        if ld.magic != PAXOS_DISK_CLEAR:
            verify_paxos_leader(view, ld.space_name, ld.resource_name)
        area["valid"] = True
    except LockError as exc:
        area["valid"] = False
        area["error"] = error_dict(exc)
    req = decode_request(view, s) if len(view) >= 2 * s else None
    area["request"] = {"lver": req.lver if req else 0, "force_mode": req.force_mode if req else 0}
    # Never trust num_hosts beyond what the geometry allows: it would index past the area.
    num_hosts = min(ld.num_hosts, geom.max_hosts)
    slots = decode_paxos_slots(buf, s, num_hosts)
    area["shared"] = [
        {"host_id": h, "generation": slot.mblock.generation} for h, slot in sorted(slots.items()) if slot.mblock.shared
    ]
    if dblocks:
        area["dblocks"] = [
            {
                "host_id": h,
                "mbal": slot.dblock.mbal,
                "bal": slot.dblock.bal,
                "inp": slot.dblock.inp,
                "inp2": slot.dblock.inp2,
                "inp3": slot.dblock.inp3,
                "lver": slot.dblock.lver,
                "checksum": slot.dblock.checksum,
                "released": slot.dblock.released,
                "valid": slot.checksum_ok,
            }
            for h, slot in sorted(slots.items())
            if _has_ballot(slot.dblock) or not slot.checksum_ok
        ]
    if len(view) < geom.align_size:
        area["truncated"] = True
    return area


def _has_ballot(db: DBlock) -> bool:
    """Any ballot value set (sanlock also writes all-zero dblocks with a checksum: those are empty)."""
    return bool(db.mbal or db.bal or db.inp or db.inp2 or db.inp3 or db.lver)


def bad_area(offset: int, kind: str, exc: LockError | InputError) -> Area:
    """An area whose first record names no geometry we know: reported, never taken as free."""
    return {"offset": offset, "kind": kind, "valid": False, "error": error_dict(exc)}


# --------------------------------------------------------------------------- device scan


def _round_down(value: int, unit: int) -> int:
    return value - value % unit


def read_area(
    storage: Storage, offset: int, device_end: int, timeout: float, dblocks: bool = False, aligned_only: bool = True
) -> tuple[Area | None, int]:
    """Decode the area starting at ``offset``; returns (area or None if no lease area starts there, its size).

    With ``aligned_only``, a record claiming an area that would not start at a multiple of its own
    size is taken as the inside of a larger area (host 257's delta record sits 1 MiB into a 4K/2M
    lockspace), not as the start of one: sanlock's dump cannot see such areas either."""
    head_len = min(max(HEAD, storage.sector_size), _round_down(device_end - offset, storage.sector_size))
    if head_len < LEADER_SIZE:
        return None, STEP
    head = storage.read(offset, head_len, timeout)
    kind = area_kind(head)
    if kind is None:
        return None, STEP
    try:
        geom = area_geometry(head)
    except (LockError, InputError) as exc:
        return bad_area(offset, kind, exc), STEP
    if aligned_only and offset % geom.align_size:
        return None, STEP
    length = min(geom.align_size, _round_down(device_end - offset, storage.sector_size))
    buf = head if length <= len(head) else storage.read(offset, length, timeout)
    buf = buf[:length]
    if kind == "lockspace":
        return decode_lockspace_area(buf, offset, geom), geom.align_size
    return decode_resource_area(buf, offset, geom, dblocks), geom.align_size


def dump(
    storage: Storage,
    offset: int = 0,
    size: int | None = None,
    *,
    dblocks: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Every lease area from ``offset``: up to the first gap when ``size`` is None (as sanlock does),
    else through the whole range, skipping gaps a MiB at a time. Stops cleanly at the device's end."""
    if offset < 0 or offset % storage.sector_size:
        raise InputError("offset", offset, f"give a multiple of the device's {storage.sector_size}-byte sector size")
    if size is not None and size <= 0:
        raise InputError("size", size, "give a size above 0")
    device_end = storage.size()
    if offset >= device_end:
        raise InputError("offset", offset, f"{storage.path} has {device_end} bytes; give an offset below that")
    end = device_end if size is None else min(device_end, offset + size)
    areas: list[Area] = []
    pos = offset
    while pos < end:
        area, step = read_area(storage, pos, device_end, timeout, dblocks)
        if area is None:
            if size is None:
                break
        else:
            areas.append(area)
        pos += step
    return {"path": storage.path, "offset": offset, "areas": areas}


def area_is_busy(area: Area) -> str | None:
    """Why overwriting this area could break a lease in use (None if it is free to overwrite)."""
    where = f"at offset {area['offset']}"
    if area.get("valid") is False and "hosts" not in area:
        return f"{area['kind']} area {where} has a record that fails validation ({area['error']['name']})"
    if area["kind"] == "lockspace":
        for h in area["hosts"]:
            if not h["valid"]:
                return f"lockspace {area['lockspace']!r} {where}: slot {h['host_id']} fails validation ({h['error']['name']})"
            if h["timestamp"] != 0:
                return (
                    f"lockspace {area['lockspace']!r} {where}: host id {h['host_id']} is held by "
                    f"{h['host_name']!r} (generation {h['generation']})"
                )
        return None
    if area["cleared"]:
        return None
    name = f"resource {area['lockspace']}:{area['resource']} {where}"
    if area["timestamp"] != 0:
        return f"{name} is held by host {area['owner_id']} (generation {area['owner_generation']}, lver {area['lver']})"
    if area["shared"]:
        ids = ", ".join(str(s["host_id"]) for s in area["shared"])
        return f"{name} has shared holders (host ids {ids})"
    return None


def busy_areas(storage: Storage, offset: int, length: int, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Reasons why [offset, offset+length) holds a lease in use, looking also at areas that start up
    to 7 MiB before it (an 8 MiB area could reach into the range)."""
    device_end = storage.size()
    reasons: list[str] = []
    start = max(0, _round_down(offset, STEP) - 7 * STEP)
    for pos in range(start, min(offset + length, device_end), STEP):
        # Not aligned_only: an area sanlock wrote at an odd offset may still hold a lease; a false
        # alarm only costs the operator a --force.
        area, step = read_area(storage, pos, device_end, timeout, aligned_only=False)
        if area is None or pos + step <= offset:
            continue
        why = area_is_busy(area)
        if why:
            reasons.append(why)
    return reasons
