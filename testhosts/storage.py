"""Shared disks: one backing file per disk and, per host, its own loop device over that same file.

Two loop devices over one file are coherent for O_DIRECT I/O (always use O_DIRECT: a buffered read
may see stale data).  Each host's loop device is its storage *path*, which can be failed (read-only:
writes get EPERM, reads work) or throttled (blkio cgroup v1, for that host's cgroup only) without
touching the other hosts' paths.

Undo kind ``disk``: detach every loop device over the backing file (only those over exactly ours),
then remove the file.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

from . import undo
from .errors import HarnessError
from .plan import IN_HOST_DISK
from .state import State
from .tools import run

SYS_BLOCK = Path("/sys/block")
THROTTLE_FILES = {
    "read_iops": "blkio.throttle.read_iops_device",
    "write_iops": "blkio.throttle.write_iops_device",
    "read_bps": "blkio.throttle.read_bps_device",
    "write_bps": "blkio.throttle.write_bps_device",
}


def make_backing_file(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)  # sparse: a 64 MiB disk costs nothing until written
    finally:
        os.close(fd)


def attach(backing: Path, sector_size: int) -> str:
    dev = run(["losetup", "--find", "--show", "--sector-size", str(sector_size), str(backing)]).stdout.strip()
    if not dev.startswith("/dev/loop"):
        raise HarnessError(f"losetup gave no device for {backing}: {dev!r}")
    return dev


def backing_file(dev: str) -> str | None:
    try:
        return (SYS_BLOCK / Path(dev).name / "loop" / "backing_file").read_text().strip()
    except OSError:
        return None


def loops_over(backing: Path) -> list[str]:
    """Loop devices whose backing file is exactly ours (so we never detach someone else's)."""
    found: list[str] = []
    for entry in sorted(SYS_BLOCK.glob("loop*")):
        dev = f"/dev/{entry.name}"
        if backing_file(dev) in (str(backing), f"{backing} (deleted)"):
            found.append(dev)
    return found


def detach(dev: str, backing: Path) -> None:
    if backing_file(dev) not in (str(backing), f"{backing} (deleted)"):
        return  # already detached, and possibly reused by someone else since: leave it alone
    # The read-only flag set by `blockdev --setro` outlives the attachment: clear it for the next user.
    set_read_only(dev, False)
    run(["losetup", "--detach", dev])


def set_read_only(dev: str, read_only: bool) -> None:
    run(["blockdev", "--setro" if read_only else "--setrw", dev])


def is_read_only(dev: str) -> bool:
    return run(["blockdev", "--getro", dev]).stdout.strip() == "1"


def sector_size(dev: str) -> int:
    return int(run(["blockdev", "--getss", dev]).stdout.strip())


def majmin(dev: str) -> str:
    rdev = os.stat(dev).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def set_throttle(blkio_cgroup: Path, dev: str, *, iops: int = 0, bps: int = 0) -> None:
    """Limit I/O of the host's cgroup on `dev`; 0 removes a limit."""
    mm = majmin(dev)
    for key, fname in THROTTLE_FILES.items():
        value = iops if key.endswith("iops") else bps
        (blkio_cgroup / fname).write_text(f"{mm} {value}\n")


def throttle_of(blkio_cgroup: Path, dev: str) -> dict[str, int]:
    """Current limits of the host's cgroup on `dev` (empty when not throttled)."""
    mm = majmin(dev)
    limits: dict[str, int] = {}
    for key, fname in THROTTLE_FILES.items():
        try:
            lines = (blkio_cgroup / fname).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[0] == mm:
                limits[key] = int(parts[1])
    return limits


def make_shared_disks(state: State, disks_dir: Path, names: Sequence[str], sizes: Sequence[int],
                      disk_size: int) -> None:
    """One backing file per disk and one loop device per host over it, each recorded as it is made."""
    disks_dir.mkdir()
    for d, sector in enumerate(sizes):
        backing = disks_dir / f"disk{d}.img"
        Disk(backing=str(backing)).log(state)
        make_backing_file(backing, disk_size)
        state.data["disks"].append({"index": d, "backing": str(backing), "size": disk_size,
                                    "sector_size": sector, "host_path": IN_HOST_DISK.format(index=d)})
        state.save()
        for name in names:
            dev = attach(backing, sector)
            state.hosts[name]["loops"].append({"disk": d, "path": IN_HOST_DISK.format(index=d), "device": dev})
            state.save()
            if sector_size(dev) != sector:
                raise HarnessError(f"{dev}: logical sector size is {sector_size(dev)}, wanted {sector}")


@undo.kind
@dataclasses.dataclass(frozen=True)
class Disk(undo.UndoStep):
    KIND = "disk"
    backing: str

    def undo(self, state: State) -> None:
        backing = Path(self.backing)
        for dev in loops_over(backing):
            detach(dev, backing)
        deadline = time.monotonic() + 10
        while loops_over(backing):  # detach is asynchronous while the device closes
            if time.monotonic() > deadline:
                raise HarnessError(f"loop devices {loops_over(backing)} over {backing} stay attached")
            time.sleep(0.05)
        backing.unlink(missing_ok=True)
