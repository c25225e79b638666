"""Each host's virtual watchdog, seen from the harness: starting its player, reading its state.

The player (watchdog_player.py) runs by path, standard library only, one per host, before the host
starts; its FIFO is bound into the host at /dev/watchdog0 and /dev/watchdog. Undo: procs.Process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from . import cgroups
from .errors import HarnessError
from .procs import Children, Process, running
from .records import HostRecord
from .state import State
from .watchdog_player import WatchdogEvent, WatchdogStatus, read_events, read_status

PLAYER = Path(__file__).resolve().parent / "watchdog_player.py"


def start_player(state: State, name: str, timeout: float, children: Children) -> None:
    h = state.hosts[name]
    hdir = Path(h["dir"])
    status = hdir / "watchdog.json"
    log = open(hdir / "watchdog.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, str(PLAYER), "--fifo", str(hdir / "watchdog"), "--status", str(status),
             "--events", str(hdir / "watchdog.events"), "--timeout", str(timeout),
             "--nspawn-pidfile", str(hdir / "nspawn.pid"),
             "--freezer", str(cgroups.freezer_of(h) / "freezer.state")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()
    rec = children.add(proc)
    h["watchdog"] = rec
    Process(role="watchdog", host=name, pid=rec["pid"], start=rec["start"]).log(state)
    deadline = time.monotonic() + 10
    while not status.exists():  # its reader is open once it wrote its first status
        if proc.poll() is not None or time.monotonic() > deadline:
            raise HarnessError(f"watchdog of {name} did not start: {(hdir / 'watchdog.log').read_text()[-500:]}")
        time.sleep(0.02)


def status_of(h: HostRecord) -> WatchdogStatus:
    """The player's last status, and whether the player still runs."""
    status = read_status(str(Path(h["dir"]) / "watchdog.json"))
    status["running"] = running(h.get("watchdog"))
    return status


def events_of(h: HostRecord) -> list[WatchdogEvent]:
    return read_events(str(Path(h["dir"]) / "watchdog.events"))
