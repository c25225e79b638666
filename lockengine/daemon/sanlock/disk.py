"""The disk commands of sanlock's protocol (in 3.8.5 they all go through the daemon): write and read a
lockspace or resource area, list a resource's owners, report a device's alignment.

Writes use the engine's own initialisers (lockengine/init.py), which refuse to overwrite an area
that is in use; reads use its record decoders (ondisk.py, dump.py). Each function returns the reply
bytes, or raises LockError/InputError/WireError/OSError for the caller to turn into a result code.
"""

from __future__ import annotations

from ...dump import read_area
from ...errors import CODES, LockError
from ...init import WRITE_INIT_TIMEOUT, choose_geometry, init_lockspace, init_resource
from ...ondisk import (
    DEFAULT_IO_TIMEOUT,
    DELTA_DISK_MAGIC,
    DELTA_VERSION_MAJOR,
    LEADER_SIZE,
    Geometry,
    Leader,
    decode_leader,
    geometry_from_flags,
    leader_checksum_ok,
    verify_paxos_leader,
)
from ...storage import Storage, device_sector_size
from . import wire
from .wire import Request, WireHost, WireLockspace, WireResource

READ_TIMEOUT = 10.0
HEAD = 4096  # one read holds host 1's record at either sector size


def _geometry(storage: Storage, flags: int) -> Geometry:
    sector, align = wire.geometry_flags(flags)
    return choose_geometry(storage, sector, align)


def geometry_bits(geom: Geometry) -> int:
    """The SANLK_RES/LSF sector and align flags of ``geom``."""
    sector = {v: k for k, v in wire.SECTOR_FLAGS.items()}[geom.sector_size]
    align = {v: k for k, v in wire.ALIGN_FLAGS.items()}[geom.align_size]
    return sector | align


def write_lockspace(storage: Storage, req: Request) -> bytes:
    """WRITE_LOCKSPACE: data = max_hosts (ignored, as sanlock does), data2 = io_timeout (0 = 10)."""
    ls = req.lockspace
    assert ls is not None
    io = req.header.data2 or DEFAULT_IO_TIMEOUT
    init_lockspace(storage, ls.name, ls.disk.offset, _geometry(storage, ls.flags), io_timeout=io,
                   timeout=WRITE_INIT_TIMEOUT)
    return wire.reply(req.header)


def write_resource(storage: Storage, req: Request) -> bytes:
    """WRITE_RESOURCE: the 3.8.5 daemon takes num_hosts from ``data``; cmd_flags CLEAR invalidates."""
    res = req.resources[0]
    _one_disk(res)
    init_resource(storage, res.lockspace, res.name, res.disks[0].offset, _geometry(storage, res.flags),
                  num_hosts=req.header.data, clear=bool(req.header.cmd_flags & wire.WRITE_CLEAR),
                  timeout=WRITE_INIT_TIMEOUT)
    return wire.reply(req.header)


def _one_disk(res: WireResource) -> None:
    if len(res.disks) != 1:
        raise wire.WireError(-95, f"resource {res.name!r} names {len(res.disks)} disks; lockengine serves "
                                  "single-disk resources only (EOPNOTSUPP)")


def _delta_record(buf: bytes, off: int) -> Leader:
    ld = decode_leader(buf, off)
    if ld.magic != DELTA_DISK_MAGIC:
        raise LockError("LEADER_MAGIC", f"no lockspace here: magic 0x{ld.magic:08x}, want 0x{DELTA_DISK_MAGIC:08x}")
    if ld.version >> 16 != DELTA_VERSION_MAJOR:
        raise LockError("LEADER_VERSION", f"delta record version 0x{ld.version:08x}")
    if not leader_checksum_ok(buf, off):
        raise LockError("LEADER_CHECKSUM", f"delta record checksum 0x{ld.checksum:08x} does not match")
    return ld


def read_lockspace(storage: Storage, req: Request) -> tuple[WireLockspace, int]:
    """READ_LOCKSPACE: the lockspace name and io_timeout of host ``host_id``'s record (0 = host 1)."""
    ls = req.lockspace
    assert ls is not None
    host_id = ls.host_id or 1
    head = storage.read(ls.disk.offset, max(HEAD, storage.sector_size), READ_TIMEOUT)
    first = _delta_record(head, 0)
    geom = geometry_from_flags(first.sector_size, first.flags)
    geom.check_host_id(host_id, "lockspace.host_id")
    off = ls.disk.offset + geom.host_offset(host_id)
    sector = storage.read(off, geom.sector_size, READ_TIMEOUT)
    ld = _delta_record(sector, 0)
    return WireLockspace(ld.space_name, host_id, geometry_bits(geom), ls.disk), ld.io_timeout


def read_resource(storage: Storage, res: WireResource) -> WireResource:
    """READ_RESOURCE: the names and lver in the leader."""
    _one_disk(res)
    buf = storage.read(res.disks[0].offset, max(storage.sector_size, 512), READ_TIMEOUT)
    probe = decode_leader(buf, 0)
    ld = verify_paxos_leader(buf, probe.space_name, probe.resource_name)
    flags = geometry_bits(ld.geometry)
    return WireResource(ld.space_name, ld.resource_name, ld.lver, flags=flags, num_disks=res.num_disks)


def read_resource_owners(storage: Storage, res: WireResource) -> tuple[WireResource, list[WireHost]]:
    """READ_RESOURCE_OWNERS: the exclusive owner (with its timestamp) or the shared holders."""
    _one_disk(res)
    offset = res.disks[0].offset
    buf = storage.read(offset, max(storage.sector_size, 512), READ_TIMEOUT)
    probe = decode_leader(buf, 0) if len(buf) >= LEADER_SIZE else None
    name = res.lockspace or (probe.space_name if probe else "")
    rname = res.name or (probe.resource_name if probe else "")
    ld = verify_paxos_leader(buf, name, rname)
    area, _ = read_area(storage, offset, storage.size(), READ_TIMEOUT)
    if area is None or not area.get("valid", False):
        err = (area or {}).get("error") or {}
        err_name = str(err.get("name", "LEADER_MAGIC"))
        raise LockError(err_name if err_name in CODES else "ERROR", f"resource area at {offset}: {err.get('message', 'unreadable')}")
    hosts: list[WireHost] = []
    if area["timestamp"] and area["owner_id"]:
        hosts.append(WireHost(area["owner_id"], area["owner_generation"], area["timestamp"]))
    shared = area["shared"]
    for s in shared:
        hosts.append(WireHost(s["host_id"], s["generation"], 0))
    flags = geometry_bits(ld.geometry) | (wire.RES_SHARED if shared else 0)
    out = WireResource(ld.space_name, ld.resource_name, int(area["lver"]), flags=flags, num_disks=res.num_disks)
    return out, hosts


def alignment(path: str) -> int:
    """ALIGN: 1 MiB for 512-byte sectors, 8 MiB for 4K, as sanlock_direct_align answers."""
    return (1 << 20) if device_sector_size(path) == 512 else (8 << 20)
