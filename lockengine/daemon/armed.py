"""The "armed" marker: a daemon that died while the watchdog protected a lockspace leaves it behind.

While at least one lockspace is registered with the watchdog multiplexer the daemon keeps a small
file, ``<run_dir>/armed``, naming its pid, the boot and the lockspaces. A clean exit (every lockspace
removed) deletes it. The run directory is a tmpfs (/run), so a reboot clears it, as wdmd keeps its
state in shared memory; the boot id inside makes a marker from an earlier boot count for nothing even
where the run directory survives a reboot.

A daemon that starts and finds a marker of *this* boot knows its predecessor died uncleanly while
lease holders may still run (they outlive the daemon, and other hosts take their leases as soon as
our host id moves to a new generation). It must not pet the watchdog that predecessor armed (the
device resets the host one timeout after the last pet) and must not rejoin any lockspace by the fast
path. It serves only ``status`` and says why, until the host reboots (docs/daemon.md: the way out).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Protocol

MARKER_NAME = "armed"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class ArmedState(Protocol):
    """Where the marker lives: a file in the run directory, or the simulator's per-host state."""

    def previous(self) -> dict[str, object] | None:
        """The marker a predecessor left in this boot, or None."""
        ...

    def set(self, pid: int, lockspaces: list[str]) -> None: ...

    def clear(self) -> None: ...


def read_boot_id(path: str = BOOT_ID_PATH) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


class ArmedMarker:
    """The marker as a file in the run directory (production)."""

    def __init__(self, run_dir: str, boot_id: str | None = None) -> None:
        self.path = os.path.join(run_dir, MARKER_NAME)
        self.boot_id = boot_id if boot_id is not None else read_boot_id()

    def previous(self) -> dict[str, object] | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            # Unreadable: a predecessor died mid-write. Count it as armed: safety over availability.
            return {"pid": None, "boot_id": self.boot_id, "lockspaces": [], "note": "unreadable marker"}
        if doc.get("boot_id") not in (self.boot_id, None):
            return None  # left by an earlier boot: the host has rebooted since
        return doc

    def set(self, pid: int, lockspaces: list[str]) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"pid": pid, "boot_id": self.boot_id, "lockspaces": lockspaces}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def refusal_message(prev: dict[str, object], marker_path: str) -> str:
    pid = prev.get("pid")
    spaces = prev.get("lockspaces") or []
    names = ", ".join(str(s) for s in spaces) if isinstance(spaces, list) and spaces else "?"
    return (
        f"a previous lockengined (pid {pid}) ended uncleanly while lockspaces ({names}) were protected by the "
        "watchdog; its lease holders may still run. Not petting the watchdog and not joining any lockspace "
        f"until this host reboots (the watchdog resets it). Marker: {marker_path}; see docs/daemon.md, "
        "'Restart after an unclean exit'"
    )
