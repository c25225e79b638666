"""Watchdog: one device multiplexed over every joined lockspace, its backends, and device discovery.

    mux = create_multiplexer(cfg.watchdog.backend, cfg.watchdog.device, cfg.watchdog_fire_timeout)
    mux.start()                                   # opens (arms) the device, pets, starts the thread
    mux.register("LS", last_success + 8 * io)     # after the delta lease is acquired
    mux.update("LS", last_success + 8 * io)       # after every good renewal
    mux.unregister("LS")                          # lockspace removed and all its users gone
    mux.shutdown(clean=True)                      # magic close, only with nothing registered

See docs/watchdog.md.
"""

from __future__ import annotations

from .backends import BACKENDS, NOT_PROTECTED, NoneWatchdog, WatchdogBackend, make_backend
from .linux import LinuxWatchdog
from .multiplexer import Registration, WatchdogMultiplexer, create_multiplexer
from .sysfs import describe_watchdog, list_watchdogs, sysfs_entry_for

__all__ = [
    "BACKENDS",
    "NOT_PROTECTED",
    "LinuxWatchdog",
    "NoneWatchdog",
    "Registration",
    "WatchdogBackend",
    "WatchdogMultiplexer",
    "create_multiplexer",
    "describe_watchdog",
    "list_watchdogs",
    "make_backend",
    "sysfs_entry_for",
]
