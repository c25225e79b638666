"""Processes the harness starts: named for good by pid + start time, signalled only while still ours.

Undo kind ``process`` (a host's watchdog player): SIGTERM, then SIGKILL, of the recorded process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

from . import undo
from .errors import HarnessError
from .records import ProcessRecord
from .state import State


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a pid; with the pid it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        _reap(pid)
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def same_process(pid: int, start: int | None) -> bool:
    """True while the recorded process (pid + start time) is alive and not a zombie."""
    return pid > 0 and start is not None and proc_start_time(pid) == start


def running(rec: ProcessRecord | None) -> bool:
    return rec is not None and same_process(rec["pid"], rec["start"])


def signal_recorded(pid: int, start: int | None, sig: int) -> bool:
    """Signal a process only if it is still the one we recorded."""
    if not same_process(pid, start):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not same_process(pid, start):
            return True
        time.sleep(0.05)
    return not same_process(pid, start)


def stop_recorded(pid: int, start: int | None, *, term_timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, a process we started and recorded."""
    if not signal_recorded(pid, start, signal.SIGTERM):
        return
    if wait_gone(pid, start, term_timeout):
        return
    signal_recorded(pid, start, signal.SIGKILL)
    if not wait_gone(pid, start, 10.0):
        raise HarnessError(f"process {pid} did not exit after SIGKILL")


class Children:
    """The Popen objects of processes this harness process started, reaped once they exit."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def add(self, proc: subprocess.Popen[bytes]) -> ProcessRecord:
        self._procs[proc.pid] = proc
        return {"pid": proc.pid, "start": proc_start_time(proc.pid)}

    def reap(self) -> None:
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[pid]


@undo.kind
@dataclasses.dataclass(frozen=True)
class Process(undo.UndoStep):
    KIND = "process"
    role: str
    host: str
    pid: int
    start: int | None

    def undo(self, state: State) -> None:
        stop_recorded(self.pid, self.start)
