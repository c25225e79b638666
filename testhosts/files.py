"""Files of the controller: atomic writes, and removing a tree without ever following a mount."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HarnessError
from .tools import run


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from this process's mountinfo)."""
    prefix = str(path).rstrip("/")
    found: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf that never follows a mount (debootstrap leaves /proc, /sys... mounted when killed)."""
    if not path.exists() and not path.is_symlink():
        return
    for point in mounts_under(path):
        run(["umount", "--lazy", point], check=False)
    if mounts_under(path):
        raise HarnessError(f"{path}: mounts remain below it, not removing")
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=300)
