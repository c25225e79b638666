"""The small interface every watchdog backend implements, the `none` backend and the backend factory."""

from __future__ import annotations

import logging
from typing import Protocol

from ..errors import InputError
from .linux import LinuxWatchdog

log = logging.getLogger("lockengine.watchdog")

BACKENDS = ("linux", "none")

NOT_PROTECTED = (
    "watchdog backend 'none': this host is NOT protected by a watchdog; if lockengined hangs or "
    "cannot kill a lease holder in time, another host may take over a lease that is still in use"
)


class WatchdogBackend(Protocol):
    """One watchdog device. Opening arms it; only magic_close() disarms it."""

    name: str  # "linux", "none", or a test backend's name
    device: str | None  # path, or None when there is no device

    @property
    def timeout(self) -> int:
        """Seconds from the last pet to the reset, as in effect on the device (valid after open)."""
        ...

    @property
    def identity(self) -> str:
        """The driver's identity string, or a description of why it is unknown."""
        ...

    @property
    def protects(self) -> bool:
        """False when nothing resets the host (the `none` backend)."""
        ...

    @property
    def warnings(self) -> list[str]:
        """Conditions an operator must know about (shown in status)."""
        ...

    def open(self) -> None: ...

    def pet(self) -> None: ...

    def magic_close(self) -> None:
        """Disarm and close: only on a clean shutdown with nothing left to protect."""
        ...

    def close_unclean(self) -> None:
        """Close and leave the device armed: it resets the host one timeout after the last pet."""
        ...


class NoneWatchdog:
    """No device at all. Allowed only when configured explicitly, and says so loudly."""

    name = "none"
    device: str | None = None
    protects = False

    def __init__(self, fire_timeout: int) -> None:
        self._timeout = fire_timeout

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def identity(self) -> str:
        return "none"

    @property
    def warnings(self) -> list[str]:
        return [NOT_PROTECTED]

    def open(self) -> None:
        log.warning(NOT_PROTECTED)

    def pet(self) -> None:
        pass

    def magic_close(self) -> None:
        pass

    def close_unclean(self) -> None:
        pass


def make_backend(backend: str, device: str, fire_timeout: int) -> WatchdogBackend:
    """The backend the configuration names (config.watchdog.backend / .device)."""
    if backend == "none":
        return NoneWatchdog(fire_timeout)
    if backend == "linux":
        return LinuxWatchdog(device, fire_timeout)
    raise InputError("watchdog.backend", backend, "use 'linux' (a /dev/watchdogN device) or 'none' (no protection)")
