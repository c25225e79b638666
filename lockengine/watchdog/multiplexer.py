"""One watchdog device shared by every joined lockspace (DESIGN.md §2, sanlock-facts §9).

Each lockspace registers an *expiry* (monotonic seconds, last good renewal + 8·io) and moves it on
every good renewal. A pass runs every test interval: it pets the device only if every expiry is more
than one test interval away (``now >= expiry - interval`` fails, as in wdmd). So the last pet lands
before expiry − interval and the device fires before expiry − interval + timeout, which is before
other hosts may take over (last renewal + 8·io + fire_timeout).

Once a registration's expiry has passed it is *expired* for good: its lockspace lost its lease, and
only removing it (after all its lease users are gone) lets petting resume. With no registrations the
device is still petted while the daemon runs. Only a clean shutdown with no registrations disarms it
(magic close); anything else leaves it armed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LockError
from ..timeouts import DEFAULT_FIRE_TIMEOUT, watchdog_test_interval
from .backends import WatchdogBackend, make_backend

log = logging.getLogger("lockengine.watchdog")

FAILING_RETEST = 1.0  # wdmd retests every second while a test fails


@dataclass
class Registration:
    name: str
    expiry: float
    expired: bool = False


class WatchdogMultiplexer:
    """Pets one backend while every registered lockspace is comfortably within its lease."""

    def __init__(
        self,
        backend: WatchdogBackend,
        fire_timeout: int = DEFAULT_FIRE_TIMEOUT,
        *,
        test_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        wait: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self.backend = backend
        self.fire_timeout = fire_timeout
        self._interval_override = test_interval
        self.test_interval: float = test_interval if test_interval is not None else watchdog_test_interval(fire_timeout)
        self._clock = clock
        self._wall_clock = wall_clock
        self._wait = wait if wait is not None else (lambda ev, t: ev.wait(max(0.0, t)))
        # Told the registered names after every change (the daemon keeps its "armed" marker with it).
        self.on_registrations: Callable[[list[str]], None] | None = None
        # Told the registration's name when a pass stops petting because of it (the daemon counts it).
        self.on_stopped: Callable[[str], None] | None = None
        self._lock = threading.RLock()
        self._registrations: dict[str, Registration] = {}
        self._opened = False
        self._armed = False
        self._closed = False
        self._petting = False
        self._last_pet: float | None = None
        self._last_pet_wall: float | None = None
        self._pets = 0
        self._stopped_reason: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, *, thread: bool = True) -> None:
        """Open (and so arm) the device, pet it once, and start the petting thread."""
        with self._lock:
            if self._closed:
                raise LockError("WD_ERROR", "the watchdog multiplexer was shut down; create a new one")
            if not self._opened:
                self.backend.open()
                if self.backend.protects and self.backend.timeout > self.fire_timeout:
                    # Other hosts take our leases fire_timeout after our last renewal window: a device
                    # that fires later would let them in while this host still runs. Nothing is
                    # registered yet, so disarming is safe.
                    self.backend.magic_close()
                    self._closed = True
                    raise LockError(
                        "WD_ERROR",
                        f"watchdog {self.backend.device} fires {self.backend.timeout} s after the last pet, "
                        f"later than watchdog_fire_timeout {self.fire_timeout} s that other hosts count on; "
                        "set the device's timeout or use the same watchdog_fire_timeout on every host",
                    )
                self._opened = True
                self._armed = self.backend.protects
                if self._interval_override is None:
                    # A device that cannot take the fire timeout runs on its own shorter one.
                    self.test_interval = watchdog_test_interval(min(self.fire_timeout, self.backend.timeout))
                log.info(
                    "watchdog multiplexer started: backend %s, device %s, timeout %d s, test interval %g s",
                    self.backend.name,
                    self.backend.device,
                    self.backend.timeout,
                    self.test_interval,
                )
                self.check()
        if thread and self._thread is None:
            self._thread = threading.Thread(target=self.run, name="watchdog", daemon=True)
            self._thread.start()

    def shutdown(self, clean: bool = True) -> bool:
        """Stop petting and close the device. Returns True if it was disarmed.

        A clean shutdown disarms it (magic close) only when no lockspace is registered: a registered
        lockspace may still have lease holders that nothing would stop once the daemon is gone.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._petting = False
            if not self._opened:
                return False
            if clean and self._registrations:
                names = ", ".join(sorted(self._registrations))
                log.error("watchdog: clean shutdown requested with lockspaces still registered (%s); "
                          "leaving the device armed", names)
                clean = False
            if clean:
                self.backend.magic_close()
                self._armed = False
                self._stopped_reason = "clean shutdown (magic close)"
                log.info("watchdog %s disarmed on clean shutdown", self.backend.device)
                return True
            self.backend.close_unclean()
            self._stopped_reason = "unclean shutdown: device left armed"
            if self._armed:
                log.warning("watchdog %s left armed on unclean shutdown", self.backend.device)
            return False

    # -- registrations ------------------------------------------------------------------------
    def register(self, name: str, expiry: float) -> None:
        """A lockspace whose delta lease is held: pet only while ``expiry`` is more than an interval away."""
        with self._lock:
            if name in self._registrations:
                raise LockError("EEXIST", f"watchdog: lockspace {name!r} is already registered")
            self._registrations[name] = Registration(name, expiry)
            log.info("watchdog: registered %r, expires in %.1f s", name, expiry - self._clock())
            self._registrations_changed()

    def update(self, name: str, expiry: float) -> None:
        """Move ``name``'s expiry after a good renewal. Refused once the old expiry has passed."""
        with self._lock:
            reg = self._get(name)
            now = self._clock()
            if reg.expired or now >= reg.expiry:
                self._expire(reg, now)
                raise LockError(
                    "WD_ERROR",
                    f"watchdog: lockspace {name!r} expired at {reg.expiry:.1f} (now {now:.1f}); "
                    "a renewal after expiry cannot re-arm it: remove the lockspace",
                )
            reg.expiry = expiry  # not logged: one ring line per renewal filled the log_dump ring while idle

    def unregister(self, name: str) -> None:
        """The lockspace was removed and all its lease users are gone."""
        with self._lock:
            self._get(name)
            del self._registrations[name]
            log.info("watchdog: unregistered %r", name)
            self._registrations_changed()
        self._wake.set()  # a pass now may resume petting before the device fires

    def _registrations_changed(self) -> None:
        if self.on_registrations is not None:
            self.on_registrations(sorted(self._registrations))

    def _get(self, name: str) -> Registration:
        try:
            return self._registrations[name]
        except KeyError:
            raise LockError("ENOENT", f"watchdog: lockspace {name!r} is not registered") from None

    def _expire(self, reg: Registration, now: float) -> None:
        if not reg.expired:
            reg.expired = True
            log.error("watchdog: %r expired %.1f s ago; it stays expired until it is unregistered",
                      reg.name, now - reg.expiry)

    # -- the test pass ------------------------------------------------------------------------
    def check(self) -> bool:
        """One pass: pet if every registration is more than one test interval from expiry."""
        with self._lock:
            if not self._opened or self._closed:
                return False
            now = self._clock()
            reason = culprit = None
            for reg in sorted(self._registrations.values(), key=lambda r: r.expiry):
                if now >= reg.expiry:
                    self._expire(reg, now)
                if reg.expired:
                    reason, culprit = f"lockspace {reg.name!r} expired at {reg.expiry:.1f}", reg.name
                    break
                if now >= reg.expiry - self.test_interval:
                    # Stable wording (no "now"): the failure is logged once, not on every pass.
                    reason = (f"lockspace {reg.name!r} is within the test interval {self.test_interval:g} s "
                              f"of its expiry at {reg.expiry:.1f}")
                    culprit = reg.name
                    break
            if reason is None:
                try:
                    self.backend.pet()
                except LockError as e:
                    reason = e.message
                else:
                    self._pets += 1
                    self._last_pet, self._last_pet_wall = now, self._wall_clock()
            if reason is None:
                if not self._petting:
                    log.info("watchdog %s: petting%s", self.backend.device,
                             " resumed" if self._stopped_reason else "")
                self._petting, self._stopped_reason = True, None
                return True
            if self._petting or self._stopped_reason != reason:
                log.error("watchdog %s: petting stopped: %s; the device resets the host %d s after the last pet",
                          self.backend.device, reason, self.backend.timeout)
            was_petting = self._petting
            self._petting, self._stopped_reason = False, reason
            if was_petting and culprit is not None and self.on_stopped is not None:
                try:
                    self.on_stopped(culprit)  # counting only: never in the way of the decision above
                except Exception:
                    log.exception("watchdog: reporting the stop failed")
            return False

    def run(self) -> None:
        """The petting task: a test pass every test interval (every second while a test fails)."""
        while not self._stop.is_set():
            try:
                petting = self.check()
            except Exception:  # a bug here must not silently end petting decisions
                log.exception("watchdog: test pass failed")
                petting = False
            self._wait(self._wake, self.next_pass_in(petting))
            self._wake.clear()

    def next_pass_in(self, petting: bool) -> float:
        return self.test_interval if petting else min(FAILING_RETEST, self.test_interval)

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        with self._lock:
            now = self._clock()
            # An unprotected host is said in the reply ("protected", "warnings"), logged at start.
            return {
                "backend": self.backend.name,
                "device": self.backend.device,
                "identity": self.backend.identity,
                "timeout": self.backend.timeout,
                "fire_timeout": self.fire_timeout,
                "test_interval": self.test_interval,
                "protected": self.backend.protects,
                "armed": self._armed,
                "petting": self._petting,
                "pets": self._pets,
                "last_pet_monotonic": self._last_pet,
                "last_pet_time": self._last_pet_wall,
                "stopped_reason": self._stopped_reason,
                "registrations": [
                    {"name": r.name, "expiry": r.expiry, "expires_in": round(r.expiry - now, 3), "expired": r.expired}
                    for r in sorted(self._registrations.values(), key=lambda r: r.name)
                ],
                "warnings": self.backend.warnings,
            }


def create_multiplexer(
    backend: str, device: str, fire_timeout: int = DEFAULT_FIRE_TIMEOUT, *, test_interval: float | None = None
) -> WatchdogMultiplexer:
    """The multiplexer for a configured backend ("linux" with a device path, or "none")."""
    return WatchdogMultiplexer(make_backend(backend, device, fire_timeout), fire_timeout, test_interval=test_interval)
