"""The daemon's seams to the operating system: time, waiting, background tasks and processes.

Every daemon class (Lockspace, Supervisor, ResourceManager, Daemon) takes a ``Runtime`` and every
client a ``ProcessControl`` from its constructor; the defaults below are what runs on a host. The
deterministic simulator (tests/sim) passes its own: simulated time, sleeps that yield to its
scheduler, tasks it steps in a seeded order, and simulated client processes. The code above these
seams is the production code in both cases (DESIGN §5a).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..clock import Clock, abortable_sleep
from ..storage import DirectStorage, Storage
from .killpath import run_killpath

if TYPE_CHECKING:
    from .clients import Client

AbortableSleep = Callable[[float, "threading.Event | None", str], None]
Spawn = Callable[[str, Callable[[], None]], None]
WaitEvent = Callable[[threading.Event, float], bool]
StorageOpener = Callable[[str], Storage]


def _spawn_thread(name: str, fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


def _wait_event(event: threading.Event, timeout: float) -> bool:
    return event.wait(max(0.0, timeout))


@dataclass(frozen=True)
class Runtime:
    """Time and concurrency as the daemon sees them.

    ``clock``: monotonic seconds; ``sleep``: abortable sleep for lease waits (DeltaLease, PaxosLease);
    ``wait``: wait for an Event up to a timeout (a loop's tick, cut short by a wake-up); ``spawn``:
    run a task in the background; ``open_storage``: a path to a Storage (renewal and lease I/O);
    ``new_rng``: the random source of a lease's ballot back-off; ``event``: a new Event (``wait`` and
    ``sleep`` wait on them, so a simulated Event can wake a simulated task).
    """

    clock: Clock = time.monotonic
    sleep: AbortableSleep = abortable_sleep
    wait: WaitEvent = _wait_event
    spawn: Spawn = _spawn_thread
    open_storage: StorageOpener = field(default=DirectStorage)
    new_rng: Callable[[], random.Random] = random.Random
    event: Callable[[], threading.Event] = threading.Event


SYSTEM_RUNTIME = Runtime()


class ProcessControl(Protocol):
    """How the daemon names, watches and stops a registered client process."""

    def open(self, pid: int) -> int | None:
        """A handle that pins the process (a pidfd), or None if the kernel has none."""
        ...

    def close(self, handle: int) -> None: ...

    def name(self, pid: int) -> str: ...

    def send_signal(self, pid: int, handle: int | None, sig: int) -> bool:
        """Send ``sig`` (0 probes); False when the process is gone."""
        ...

    def run_killpath(self, client: Client, why: str) -> None:
        """Start the client's killpath program."""
        ...


class SystemProcesses:
    """Real processes: pidfds where the kernel has them, so a recycled pid never gets our signal."""

    def open(self, pid: int) -> int | None:
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            fd: int = pidfd_open(pid)
        except OSError:
            return None
        os.set_inheritable(fd, False)
        return fd

    def close(self, handle: int) -> None:
        os.close(handle)

    def name(self, pid: int) -> str:
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                return f.read().strip() or str(pid)
        except OSError:
            return str(pid)

    def send_signal(self, pid: int, handle: int | None, sig: int) -> bool:
        try:
            if handle is not None:
                signal.pidfd_send_signal(handle, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def run_killpath(self, client: Client, why: str) -> None:
        run_killpath(client, why)


SYSTEM_PROCESSES = SystemProcesses()
