"""The simulated machine under each daemon: its run directory's armed marker, its watchdog device,
its client processes as the daemon's ProcessControl sees them, and Events that wake simulated tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockengine.daemon.clients import Client

from .sched import Actor, Scheduler

if TYPE_CHECKING:
    from .host import Host


class SimArmed:
    """The armed marker in the host's tmpfs run directory: survives a daemon, not a reboot."""

    def __init__(self) -> None:
        self.doc: dict[str, object] | None = None

    def previous(self) -> dict[str, object] | None:
        return self.doc

    def set(self, pid: int, lockspaces: list[str]) -> None:
        self.doc = {"pid": pid, "lockspaces": lockspaces}

    def clear(self) -> None:
        self.doc = None


class SimWatchdog:
    """A watchdog device: armed by open, reset of the host ``timeout`` s after the last pet."""

    name = "sim"
    device: str | None = "/dev/watchdog-sim"
    protects = True
    identity = "simulated watchdog"

    def __init__(self, host: Host, timeout: int) -> None:
        self.host = host
        self._timeout = timeout
        self.armed = False
        self.last_pet = 0.0
        self.pets = 0
        self._timer = False

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def warnings(self) -> list[str]:
        return []

    def open(self) -> None:
        self.armed = True
        self.pet()  # the kernel pings a device when it is opened

    def pet(self) -> None:
        self.last_pet = self.host.world.sched.now
        self.pets += 1
        if not self._timer:
            self._arm_timer()

    def magic_close(self) -> None:
        self.armed = False

    def close_unclean(self) -> None:
        pass

    def _arm_timer(self) -> None:
        self._timer = True
        self.host.world.sched.at(self.last_pet + self._timeout, self._fire_check)

    def _fire_check(self) -> None:
        self._timer = False
        if not self.armed or not self.host.up:
            return
        if self.host.world.sched.now >= self.last_pet + self._timeout:
            self.host.reset("watchdog")
        else:
            self._arm_timer()


class SimProcesses:
    """ProcessControl for one host: signals reach the simulated client processes."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def open(self, pid: int) -> int | None:
        return pid

    def close(self, handle: int) -> None:
        pass

    def name(self, pid: int) -> str:
        return f"client{pid}"

    def send_signal(self, pid: int, handle: int | None, sig: int) -> bool:
        c = self.host.world.clients.get(pid)
        if c is None or not c.alive:
            return False
        if sig != 0:
            c.signalled(sig)
        return True

    def run_killpath(self, client: Client, why: str) -> None:
        c = self.host.world.clients.get(client.pid)
        if c is not None and c.alive:
            c.signalled(-1)


class SimEvent:
    """threading.Event's interface for simulated tasks: set() wakes the task waiting on it."""

    def __init__(self, sched: Scheduler) -> None:
        self._flag = False
        self._sched = sched
        self._waiters: list[Actor] = []
        self.on_set: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, []
        for a in waiters:
            self._sched.wake(a)
        for cb in self.on_set:
            cb()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        return sim_wait(self._sched, self, 3600.0 if timeout is None else timeout)


def sim_wait(sched: Scheduler, event: Any, timeout: float) -> bool:
    if event.is_set():
        return True
    me = sched.current()
    assert me is not None
    if isinstance(event, SimEvent):
        event._waiters.append(me)
    try:
        sched.sleep(max(0.0, timeout))
    finally:
        if isinstance(event, SimEvent) and me in event._waiters:
            event._waiters.remove(me)
    return bool(event.is_set())
