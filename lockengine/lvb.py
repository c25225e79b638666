"""The lock value block (LVB): one sector of application data kept with a resource lease, as sanlock 3.8
keeps it (facts learned from sanlock's resource code and checked against the real sanlock):

* where: the sector right after the per-host blocks of host ids 1..2000, i.e. sector 2002 of the
  resource area — ``offset + 2002 × sector_size`` (1025024 bytes in at 512-byte sectors, 8200192 at 4K);
* what: the sector's bytes as the application set them, zero-padded to a whole sector;
* when: read into memory when a lease is acquired with the LVB flag; changed in memory only; written
  back when the exclusive holder releases the lease (before the release itself, while it still holds
  it) — a shared holder's LVB is never written.

sanlock places that sector past the end of areas smaller than 2003 sectors (4K sectors with 1, 2 or
4 MiB alignment), where it belongs to the next resource's area; lockengine refuses an LVB there.
"""

from __future__ import annotations

from .errors import LockError
from .ondisk import Geometry
from .storage import Storage

LVB_SECTOR = 2002  # the sector after the dblock of host id 2000 (dblocks start at sector 2)


def lvb_offset(area_offset: int, geometry: Geometry) -> int:
    """The byte offset of the LVB sector of the resource area at ``area_offset``."""
    return area_offset + LVB_SECTOR * geometry.sector_size


def check_fits(geometry: Geometry, what: str) -> None:
    """LockError unless the LVB sector lies inside the resource area (see the module's note)."""
    if (LVB_SECTOR + 1) * geometry.sector_size > geometry.align_size:
        raise LockError("EINVAL", f"{what}: no lock value block on a {geometry.sector_size}-byte-sector area of "
                                  f"{geometry.align_size} bytes: its sector ({LVB_SECTOR}) would lie in the next "
                                  "area; use 512-byte sectors or 8 MiB alignment for leases with an LVB")


def read_lvb(storage: Storage, area_offset: int, geometry: Geometry, io_timeout: int) -> bytes:
    """The LVB sector as it is on disk (a whole sector)."""
    return storage.read(lvb_offset(area_offset, geometry), geometry.sector_size, io_timeout)


def write_lvb(storage: Storage, area_offset: int, geometry: Geometry, data: bytes, io_timeout: int) -> None:
    """Write ``data`` (at most one sector) as the LVB sector, zero-padded: a whole-sector write."""
    if len(data) > geometry.sector_size:
        raise LockError("EINVAL", f"a lock value block holds at most {geometry.sector_size} bytes, not {len(data)}")
    storage.write(lvb_offset(area_offset, geometry), data.ljust(geometry.sector_size, b"\0"), io_timeout)
