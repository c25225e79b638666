"""`up`'s options, checked before anything is made: each refusal names the option and the fix."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .errors import HarnessError
from .plan import MAX_HOSTS

HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")  # a hostname, and "lev-" + it fits IFNAMSIZ (15)
SECTOR_SIZES = (512, 4096)


def sector_sizes(disks: int, sector_size: int | Sequence[int]) -> list[int]:
    """One sector size per disk (512 or 4096), from one for all or one per disk."""
    if not 0 <= disks <= 16:
        raise HarnessError(f"number of disks must be 0..16, not {disks}")
    sizes = [sector_size] * disks if isinstance(sector_size, int) else list(sector_size)
    if isinstance(sector_size, int) and sector_size not in SECTOR_SIZES:
        raise HarnessError(f"sector size must be 512 or 4096, not {sector_size}")
    if not isinstance(sector_size, int) and len(sizes) != disks:
        raise HarnessError(f"{len(sizes)} sector sizes given for {disks} disk(s): give one, or one per disk")
    bad = [s for s in sizes if s not in SECTOR_SIZES]
    if bad:
        raise HarnessError(f"sector size must be 512 or 4096, not {bad[0]}")
    return sizes


def check_up(n: int, disks: int, sector_size: int | Sequence[int], disk_size: int,
             watchdog_timeout: float) -> list[int]:
    """Check the numbers of `up`; return the sector size of each disk."""
    if not 1 <= n <= MAX_HOSTS:
        raise HarnessError(f"number of hosts must be 1..{MAX_HOSTS}, not {n}")
    sizes = sector_sizes(disks, sector_size)
    if disk_size < 1024 * 1024 or disk_size % 4096:
        raise HarnessError(f"disk size must be at least 1 MiB and a multiple of 4096, not {disk_size}")
    if watchdog_timeout <= 0:
        raise HarnessError(f"watchdog timeout must be positive, not {watchdog_timeout}")
    return sizes


def parse_bind(spec: str | tuple[str, str]) -> tuple[str, str]:
    """--bind-ro SRC:DST: both absolute, SRC existing; SRC resolved."""
    if isinstance(spec, tuple):
        src, dst = spec
    else:
        if spec.count(":") != 1:
            raise HarnessError(f"--bind-ro {spec!r}: expected SRC:DST (absolute paths, no other ':')")
        src, dst = spec.split(":")
    if not os.path.isabs(src) or not os.path.isabs(dst):
        raise HarnessError(f"--bind-ro {src}:{dst}: both paths must be absolute")
    if not os.path.exists(src):
        raise HarnessError(f"--bind-ro {src}:{dst}: {src} does not exist")
    return os.path.realpath(src), dst


def host_names(n: int, prefix: str, names: Sequence[str] | None) -> list[str]:
    chosen = list(names) if names is not None else [f"{prefix}{i}" for i in range(1, n + 1)]
    if len(chosen) != n:
        raise HarnessError(f"{len(chosen)} host names given for {n} hosts")
    for name in chosen:
        if not HOST_NAME.match(name):
            raise HarnessError(f"host name {name!r}: use lower-case letters, digits and '-', starting with a letter, "
                               f"at most 11 characters (network interface names are limited to 15)")
    if len(set(chosen)) != n:
        raise HarnessError(f"host names must be distinct: {chosen}")
    return chosen
