"""Per-host cgroups in the blkio, freezer, name=systemd and unified hierarchies (cgroup v1 hybrid).

PID 1 of this machine is not systemd, so without cgroups of their own every nspawn host would share
``/supervisor`` and ``/payload`` in the name=systemd and unified hierarchies, and one host's
``systemctl stop`` could not kill its unit's processes.  blkio carries the storage throttles and
freezer the "hung host" fault, for that host only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from .common import CGROUP_HIERARCHIES, CGROUP_PARENT, CGROUP_ROOT, HarnessError


def check_hierarchies() -> None:
    missing = [h for h in CGROUP_HIERARCHIES if not (CGROUP_ROOT / h / "cgroup.procs").exists()]
    if missing:
        raise HarnessError(
            f"cgroup hierarchies {', '.join(missing)} are not mounted under {CGROUP_ROOT}: the harness needs the "
            f"hybrid layout (v1 blkio, freezer, name=systemd and the v2 'unified' one); see `mount | grep cgroup`")


def parent_dirs() -> list[Path]:
    return [CGROUP_ROOT / h / CGROUP_PARENT for h in CGROUP_HIERARCHIES]


def host_dirs(host: str) -> dict[str, Path]:
    return {h: CGROUP_ROOT / h / CGROUP_PARENT / host for h in CGROUP_HIERARCHIES}


def procs(path: Path) -> list[int]:
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(path):
        try:
            text = (Path(dirpath) / "cgroup.procs").read_text()
        except OSError:
            continue
        pids.extend(int(p) for p in text.split())
    return pids


def remove(path: Path, timeout: float = 10.0) -> None:
    """Remove a cgroup and everything below it, depth-first (nspawn leaves supervisor/, payload/...)."""
    if not path.exists():
        return
    start = time.monotonic()
    killed = False
    while procs(path):
        waited = time.monotonic() - start
        if waited > timeout:
            raise HarnessError(f"cgroup {path} still has processes {procs(path)}; not removing it")
        if waited > 1.0 and not killed:
            # Only the harness puts processes here (a host it started), so what is left is ours: e.g.
            # a host whose nspawn was started by an `up` killed before it could record the pid.
            for pid in procs(path):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HarnessError(f"cannot remove cgroup {dirpath}: {exc}") from exc


def freezer_state(freezer: Path) -> str:
    try:
        return (freezer / "freezer.state").read_text().strip()
    except OSError:
        return "UNKNOWN"


def set_frozen(freezer: Path, frozen: bool, timeout: float = 10.0) -> None:
    want = "FROZEN" if frozen else "THAWED"
    (freezer / "freezer.state").write_text(want)
    deadline = time.monotonic() + timeout
    while freezer_state(freezer) != want:
        if time.monotonic() > deadline:
            raise HarnessError(f"{freezer} did not become {want} (now {freezer_state(freezer)})")
        time.sleep(0.02)
        if frozen:  # FREEZING can stall on a task in uninterruptible sleep; asking again retries it
            (freezer / "freezer.state").write_text(want)
