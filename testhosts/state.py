"""The harness's record of what it made: ``state.json`` in the state dir, rewritten after every step.

Besides the cluster's description (hosts, disks, options) it holds an *undo log*: one entry per
thing made (bridge, route, netns, link, cgroup, loop device, backing file, process...), appended
*before* the thing is made whenever the name is known in advance.  ``down`` undoes the log newest
first (undo.py), tolerating entries whose object never came to exist, so a half-made or interrupted
``up`` is cleaned exactly like a complete one, and nothing the harness did not make is ever touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from .errors import HarnessError, UnknownHost
from .files import write_atomic
from .records import HostRecord, StateData, UndoRecord

STATE_FILE = "state.json"
FORMAT = 1


class State:
    def __init__(self, state_dir: Path, data: StateData) -> None:
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
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise HarnessError(f"{state_dir / STATE_FILE}: unknown state format {found!r}")
        return cls(state_dir, cast(StateData, data))

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

    # -- undo log (entries are made and undone by undo.UndoStep) ---------------------------------
    def record(self, entry: UndoRecord) -> None:
        self.data["undo"].append(entry)
        self.save()

    def forget(self, entry: UndoRecord) -> None:
        self.data["undo"].remove(entry)
        self.save()

    @property
    def undo(self) -> list[UndoRecord]:
        return self.data["undo"]

    # -- hosts --------------------------------------------------------------------------------
    @property
    def hosts(self) -> dict[str, HostRecord]:
        return self.data["hosts"]

    def host(self, name: str) -> HostRecord:
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
