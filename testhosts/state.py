"""The harness's record of what it made: ``state.json`` in the state dir, rewritten after every step.

Besides the cluster's description (hosts, disks, options) it holds an *undo log*: one entry per
thing made (bridge, route, netns, link, cgroup, loop device, backing file, process...), appended
*before* the thing is made whenever the name is known in advance.  ``down`` undoes the log newest
first, tolerating entries whose object never came to exist, so a half-made or interrupted ``up`` is
cleaned exactly like a complete one, and nothing the harness did not make is ever touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import HarnessError, write_atomic

STATE_FILE = "state.json"
FORMAT = 1


class State:
    def __init__(self, state_dir: Path, data: dict[str, Any]) -> None:
        self.dir = state_dir
        self.data = data

    @property
    def path(self) -> Path:
        return self.dir / STATE_FILE

    @classmethod
    def load(cls, state_dir: Path) -> State | None:
        try:
            text = (state_dir / STATE_FILE).read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise HarnessError(f"{state_dir / STATE_FILE} is not valid JSON ({exc}); remove by hand") from exc
        if data.get("format") != FORMAT:
            raise HarnessError(f"{state_dir / STATE_FILE}: unknown state format {data.get('format')!r}")
        return cls(state_dir, data)

    @classmethod
    def new(cls, state_dir: Path, made_state_dir: bool) -> State:
        state = cls(state_dir, {
            "format": FORMAT, "phase": "creating", "created": time.time(), "pid": os.getpid(),
            "made_state_dir": made_state_dir, "config": {}, "disks": [], "hosts": {}, "undo": [],
        })
        state.save()
        return state

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n", 0o600)

    # -- undo log ---------------------------------------------------------------------------
    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        entry = {"kind": kind, **fields}
        self.data["undo"].append(entry)
        self.save()
        return entry

    def forget(self, entry: dict[str, Any]) -> None:
        self.data["undo"].remove(entry)
        self.save()

    @property
    def undo(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.data["undo"]
        return entries

    # -- hosts --------------------------------------------------------------------------------
    @property
    def hosts(self) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = self.data["hosts"]
        return hosts

    def host(self, name: str) -> dict[str, Any]:
        from .common import UnknownHost

        try:
            return self.hosts[name]
        except KeyError:
            known = ", ".join(self.hosts) or "none"
            raise UnknownHost(f"unknown host {name!r}; this cluster's hosts: {known}") from None


@contextlib.contextmanager
def locked_dir(path: Path) -> Iterator[None]:
    """Serialise harness commands on one state dir (flock on the directory itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
