"""The lease tests' disk: lockspace LS at 0 and resource R1 at 1 MiB on a 2 MiB file, written as
``lockengine direct init`` writes them. Shared by the unit, property and system tests."""

from __future__ import annotations

from pathlib import Path

from lockengine.ondisk import LEADER_SIZE, Geometry, lockspace_area, new_delta_leader, resource_area
from lockengine.storage import DirectStorage

LS = "LS"
RES = "R1"
LS_OFFSET = 0
RES_OFFSET = 1 << 20
DISK_SIZE = 2 << 20
IO_TIMEOUT = 1  # the io_timeout written into the lockspace leader unless a test asks for another


def make_disk(path: Path, geometry: Geometry, *, num_hosts: int = 0, io_timeout: int = IO_TIMEOUT) -> None:
    """A lockspace at 0 and resource R1 at 1 MiB, written as ``direct init`` writes them."""
    if not path.exists():
        path.write_bytes(b"")
    with open(path, "r+b") as f:
        f.truncate(DISK_SIZE)
    with DirectStorage(str(path)) as st:
        st.write(LS_OFFSET, lockspace_area(LS, geometry, io_timeout), 10)
        first = bytearray(geometry.sector_size)
        first[:LEADER_SIZE] = new_delta_leader(LS, geometry, io_timeout).encode()
        st.write(LS_OFFSET, bytes(first), 10)
        st.write(RES_OFFSET, resource_area(LS, RES, geometry, num_hosts), 10)
