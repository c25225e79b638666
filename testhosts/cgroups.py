"""Per-host cgroups in the blkio, freezer, name=systemd and unified hierarchies (cgroup v1 hybrid).

PID 1 of this machine is not systemd, so without cgroups of their own every nspawn host would share
``/supervisor`` and ``/payload`` in the name=systemd and unified hierarchies, and one host's
``systemctl stop`` could not kill its unit's processes.  blkio carries the storage throttles and
freezer the "hung host" fault, for that host only.

Undo kinds: ``cgroup-parent`` (the per-net-number parent, shared by every cluster with that number:
removed only once empty) and ``cgroup`` (a host's own, with everything below it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from pathlib import Path

from . import undo
from .errors import HarnessError
from .plan import CGROUP_HIERARCHIES, CGROUP_PARENT, CGROUP_ROOT
from .records import HostRecord
from .state import State


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


def freezer_of(h: HostRecord) -> Path:
    return Path(h["cgroups"]["freezer"])


def blkio_of(h: HostRecord) -> Path:
    return Path(h["cgroups"]["blkio"])


def is_frozen(h: HostRecord) -> bool:
    freezer = freezer_of(h)
    return freezer.exists() and freezer_state(freezer) in ("FROZEN", "FREEZING")


def thaw_if_frozen(h: HostRecord) -> None:
    """cgroup-v1 freezer holds even SIGKILL: a frozen host must thaw to die (or to boot thawed)."""
    freezer = freezer_of(h)
    if freezer.exists() and freezer_state(freezer) != "THAWED":
        set_frozen(freezer, False)


# ---------------------------------------------------------------- undo kinds
@undo.kind
@dataclasses.dataclass(frozen=True)
class CgroupParent(undo.UndoStep):
    KIND = "cgroup-parent"
    path: str

    def undo(self, state: State) -> None:
        parent = Path(self.path)
        # shared by every cluster on this machine: removed only when no host cgroup is left in it
        if parent.exists() and not any(p.is_dir() for p in parent.iterdir()):
            parent.rmdir()


@undo.kind
@dataclasses.dataclass(frozen=True)
class Cgroup(undo.UndoStep):
    KIND = "cgroup"
    path: str

    def undo(self, state: State) -> None:
        remove(Path(self.path))


def make_parents(state: State) -> None:
    for parent in parent_dirs():
        if not parent.exists():
            CgroupParent(path=str(parent)).log(state)
            parent.mkdir()


def make_host_cgroups(state: State, dirs: dict[str, Path]) -> None:
    for path in dirs.values():
        Cgroup(path=str(path)).log(state)
        path.mkdir()
