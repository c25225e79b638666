"""Write empty lockspace and resource areas the way ``sanlock direct init`` does (sanlock-facts §2, §3).

Every check runs before the first write, so bad input or a busy area leaves the device untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dump import busy_areas
from .errors import InputError, LockError
from .ondisk import (
    DEFAULT_IO_TIMEOUT,
    Geometry,
    encode_name,
    lockspace_area,
    new_delta_leader,
    resource_area,
)
from .storage import Storage

# sanlock's write_init_io_timeout: writing a whole area may take longer than a lease I/O.
WRITE_INIT_TIMEOUT = 60.0
MAX_IO_TIMEOUT = 255  # delta acquire/renew store io_timeout & 0xFF, so larger values would not survive


def choose_geometry(storage: Storage, sector_size: int | None = None, align_size: int | None = None) -> Geometry:
    """sanlock's defaults: the device's sector size, and 1 MiB for 512 or 8 MiB for 4096 unless -A is given."""
    sector = sector_size or storage.sector_size
    if sector not in (512, 4096):
        raise InputError("sector_size", sector, "use 512 or 4096")
    if sector < storage.sector_size:
        raise InputError(
            "sector_size", sector,
            f"{storage.path} has {storage.sector_size}-byte sectors; use {storage.sector_size} (-Z {storage.sector_size})",
        )
    align = align_size or ((1 << 20) if sector == 512 else (8 << 20))
    return Geometry(sector, align)


def check_placement(storage: Storage, offset: int, geom: Geometry) -> None:
    """The area must start at a multiple of its size and fit on the device."""
    size = geom.align_size
    if offset < 0 or offset % size:
        below = offset - offset % size
        raise InputError(
            "offset", offset,
            f"{geom.describe()} areas start at multiples of {size} bytes; use e.g. {max(below, 0)} or {below + size}",
        )
    end = storage.size()
    if offset + size > end:
        raise InputError(
            "offset", offset,
            f"a {geom.describe()} area needs {size} bytes from the offset but {storage.path} ends at {end}; "
            "give a smaller offset or a larger device",
        )


def refuse_if_busy(storage: Storage, offset: int, geom: Geometry, force: bool, timeout: float) -> None:
    if force:
        return
    reasons = busy_areas(storage, offset, geom.align_size, timeout)
    if reasons:
        raise LockError("EBUSY", f"{storage.path}: {'; '.join(reasons)}; not overwriting it (use --force if it is truly unused)")


@dataclass(frozen=True)
class InitResult:
    kind: str
    path: str
    offset: int
    geometry: Geometry
    lockspace: str
    resource: str = ""
    io_timeout: int = 0
    num_hosts: int = 0
    clear: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ok": True,
            "kind": self.kind,
            "path": self.path,
            "offset": self.offset,
            "lockspace": self.lockspace,
            "sector_size": self.geometry.sector_size,
            "align_size": self.geometry.align_size,
            "max_hosts": self.geometry.max_hosts,
        }
        if self.kind == "lockspace":
            out["io_timeout"] = self.io_timeout
        else:
            out.update(resource=self.resource, num_hosts=self.num_hosts, cleared=self.clear)
        return out


def init_lockspace(
    storage: Storage,
    space_name: str,
    offset: int,
    geometry: Geometry,
    *,
    io_timeout: int = DEFAULT_IO_TIMEOUT,
    force: bool = False,
    timeout: float = WRITE_INIT_TIMEOUT,
) -> InitResult:
    """One write of the whole area with record 0 invalid (magic 0), then one sector committing record 0,
    so an interrupted init never leaves a lockspace that looks valid."""
    encode_name(space_name, "lockspace name")
    if not 1 <= io_timeout <= MAX_IO_TIMEOUT:
        raise InputError("io_timeout", io_timeout, f"use a whole number of seconds from 1 to {MAX_IO_TIMEOUT}")
    check_placement(storage, offset, geometry)
    refuse_if_busy(storage, offset, geometry, force, timeout)
    storage.write(offset, lockspace_area(space_name, geometry, io_timeout), timeout)
    first = bytearray(geometry.sector_size)
    leader = new_delta_leader(space_name, geometry, io_timeout).encode()
    first[: len(leader)] = leader
    storage.write(offset, bytes(first), timeout)
    return InitResult("lockspace", storage.path, offset, geometry, space_name, io_timeout=io_timeout)


def init_resource(
    storage: Storage,
    space_name: str,
    resource_name: str,
    offset: int,
    geometry: Geometry,
    *,
    num_hosts: int = 0,
    clear: bool = False,
    force: bool = False,
    timeout: float = WRITE_INIT_TIMEOUT,
) -> InitResult:
    """One write of the whole area: leader, request record, and zeros over every dblock.

    Re-initialising wipes every dblock, which could hand a held lease to a second host: hence the
    refusal over a held lease unless ``force``.
    """
    area = resource_area(space_name, resource_name, geometry, num_hosts, clear)  # validates names, num_hosts
    check_placement(storage, offset, geometry)
    refuse_if_busy(storage, offset, geometry, force, timeout)
    storage.write(offset, area, timeout)
    return InitResult(
        "resource", storage.path, offset, geometry, space_name,
        resource=resource_name, num_hosts=num_hosts or geometry.max_hosts, clear=clear,
    )
