"""sanlock's timeout arithmetic (sanlock-facts §5), derived from io_timeout and the watchdog fire timeout.

Pure: no clocks, no I/O. Every host of a lockspace must agree on the fire timeout, because other hosts
compute our death as ``8·io + fire_timeout`` after they last saw our delta lease change, with *our*
io_timeout as stored in our delta record.

Kill grace (how long after the lease expired the holders get SIGTERM/killpath before SIGKILL): sanlock
3.8.5 hard-codes 40 s with its hard-coded 60 s fire timeout. For configured fire timeouts below 60 we use
the later upstream rule (commit 748e832): 15 s for 30–59 s and 0 s below 30 s, so that SIGKILL still
comes before the watchdog may fire. An explicit kill_grace may not exceed ``max_kill_grace``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .ondisk import DEFAULT_IO_TIMEOUT

__all__ = [
    "DEFAULT_FIRE_TIMEOUT",
    "DEFAULT_IO_TIMEOUT",
    "DEFAULT_KILL_GRACE",
    "WRITE_INIT_IO_TIMEOUT",
    "Timeouts",
    "default_kill_grace",
    "max_kill_grace",
    "watchdog_test_interval",
]
DEFAULT_FIRE_TIMEOUT = 60  # sanlock 3.8.5's compile-time WATCHDOG_FIRE_TIMEOUT; mixed clusters need it
DEFAULT_KILL_GRACE = 40  # sanlock 3.8.5's -g default
WRITE_INIT_IO_TIMEOUT = 60  # I/O timeout for the large writes of `init`


def watchdog_test_interval(fire_timeout: int) -> int:
    """How often the watchdog multiplexer tests its registrations and pets (wdmd's post-3.8.5 rule)."""
    if fire_timeout >= 60:
        return 10
    if fire_timeout >= 30:
        return 5
    if fire_timeout >= 10:
        return 2
    return 1


def default_kill_grace(fire_timeout: int) -> int:
    """40 s at fire ≥ 60 (3.8.5), 15 s at 30–59, 0 below 30 (upstream after 3.8.5)."""
    if fire_timeout >= 60:
        return DEFAULT_KILL_GRACE
    if fire_timeout >= 30:
        return 15
    return 0


def max_kill_grace(fire_timeout: int) -> int:
    """The longest grace after which SIGKILL still precedes the earliest watchdog fire.

    The multiplexer's last pet lands in [expiry − 2·interval, expiry − interval), so the device fires no
    earlier than expiry − 2·interval + fire_timeout; SIGKILL comes at expiry + kill_grace.
    """
    return max(0, fire_timeout - 2 * watchdog_test_interval(fire_timeout))


@dataclass(frozen=True)
class Timeouts:
    """The derived timeouts of one host (or of another host, given the io_timeout in its record)."""

    io_timeout: int
    fire_timeout: int = DEFAULT_FIRE_TIMEOUT
    kill_grace: int | None = None  # None: default_kill_grace(fire_timeout)

    def __post_init__(self) -> None:
        # bool is an int subclass; a True io_timeout is a caller bug, not "1 second".
        if not isinstance(self.io_timeout, int) or isinstance(self.io_timeout, bool) or self.io_timeout < 1:
            raise InputError("io_timeout", self.io_timeout, "use a whole number of seconds, at least 1")
        if not isinstance(self.fire_timeout, int) or isinstance(self.fire_timeout, bool) or self.fire_timeout < 1:
            raise InputError("watchdog_fire_timeout", self.fire_timeout, "use a whole number of seconds, at least 1")
        if self.kill_grace is not None:
            limit = max_kill_grace(self.fire_timeout)
            if (
                not isinstance(self.kill_grace, int)
                or isinstance(self.kill_grace, bool)
                or not 0 <= self.kill_grace <= limit
            ):
                raise InputError(
                    "kill_grace",
                    self.kill_grace,
                    f"use 0 to {limit} seconds: with watchdog_fire_timeout {self.fire_timeout} the watchdog may "
                    f"reset the host {limit} s after the lease expires, and SIGKILL must come first",
                )

    # -- our own lease --------------------------------------------------------------------------
    @property
    def id_renewal_seconds(self) -> int:
        """Interval between delta-lease renewals."""
        return 2 * self.io_timeout

    @property
    def id_renewal_warn_seconds(self) -> int:
        """Age of the last good renewal at which "check_our_lease warning" is logged."""
        return 6 * self.io_timeout

    @property
    def id_renewal_fail_seconds(self) -> int:
        """Age of the last good renewal at which the lease is lost and recovery starts."""
        return 8 * self.io_timeout

    def expiry(self, last_success: float) -> float:
        """The watchdog expiry to register after a good renewal at ``last_success``."""
        return last_success + self.id_renewal_fail_seconds

    @property
    def renewal_retry_seconds(self) -> float:
        """Between renewal attempts once one failed (sanlock retries about every 0.5 s)."""
        return 0.5

    @property
    def kill_grace_seconds(self) -> int:
        """SIGTERM/killpath phase length after the lease failed; then SIGKILL."""
        return default_kill_grace(self.fire_timeout) if self.kill_grace is None else self.kill_grace

    @property
    def max_kill_grace(self) -> int:
        return max_kill_grace(self.fire_timeout)

    @property
    def sigkill_seconds(self) -> int:
        """Age of the last good renewal at which lease holders get SIGKILL (80 + 40 = 120 by default)."""
        return self.id_renewal_fail_seconds + self.kill_grace_seconds

    @property
    def watchdog_test_interval(self) -> int:
        return watchdog_test_interval(self.fire_timeout)

    # -- how others judge us (and we judge others, with their io_timeout) -----------------------
    @property
    def host_dead_seconds(self) -> int:
        """Silence after which a host is dead and its leases may be taken: 8·io + fire_timeout."""
        return 8 * self.io_timeout + self.fire_timeout

    @property
    def renewal_write_timeout(self) -> int:
        """I/O timeout of the renewal write (sanlock uses host_dead_seconds)."""
        return self.host_dead_seconds

    # -- delta lease acquire --------------------------------------------------------------------
    @property
    def delta_short_delay(self) -> int:
        """Wait after writing our delta record before re-reading it."""
        return 2 * self.io_timeout

    @property
    def delta_large_delay(self) -> int:
        return 2 * self.io_timeout + 6 * self.io_timeout

    @property
    def delta_acquire_busy_wait(self) -> int:
        """Wait when the slot is held under another name (use the *other* host's io_timeout)."""
        return max(self.host_dead_seconds, self.delta_large_delay)

    @property
    def delta_acquire_free_min(self) -> int:
        return 2 * self.io_timeout

    @property
    def delta_acquire_free_max(self) -> int:
        return 5 * self.io_timeout

    # -- paxos and requests ---------------------------------------------------------------------
    @property
    def paxos_acquire_held_min(self) -> int:
        return self.host_dead_seconds

    @property
    def paxos_acquire_held_max(self) -> int:
        return self.host_dead_seconds + 7 * self.io_timeout

    @property
    def set_bitmap_seconds(self) -> int:
        """How long a request/event bit stays set in our renewals."""
        return 6 * self.io_timeout

    @property
    def orphan_sweep_seconds(self) -> tuple[int, ...]:
        """Waits between looks at a lease whose acquire failed mid-ballot (another host's ballot may
        still commit us as its owner): 2·io, then 6·io more, then 8·io more."""
        return (2 * self.io_timeout, 6 * self.io_timeout, 8 * self.io_timeout)

    def request_bit_seconds(self, owner_io_timeout: int) -> float:
        """How long our renewals keep a request bit set for an owner with ``owner_io_timeout``.

        sanlock keeps it set_bitmap_seconds (6·io), but a sanlock owner examines one sender's requests at
        most once per 6·of *its* io and only at its renewals (every 2·io): a second request soon after a
        first one could expire unseen. 8·io of the slower of the two, plus a second, always spans one
        eligible renewal; a longer bit costs the owner nothing but a re-read of its request records.
        """
        io = max(self.io_timeout, owner_io_timeout)
        return max(float(self.set_bitmap_seconds), 8.0 * io + 1.0)

    def as_dict(self) -> dict[str, int]:
        return {
            "io_timeout": self.io_timeout,
            "watchdog_fire_timeout": self.fire_timeout,
            "id_renewal_seconds": self.id_renewal_seconds,
            "id_renewal_warn_seconds": self.id_renewal_warn_seconds,
            "id_renewal_fail_seconds": self.id_renewal_fail_seconds,
            "host_dead_seconds": self.host_dead_seconds,
            "kill_grace_seconds": self.kill_grace_seconds,
            "sigkill_seconds": self.sigkill_seconds,
            "watchdog_test_interval": self.watchdog_test_interval,
            "delta_short_delay": self.delta_short_delay,
            "delta_large_delay": self.delta_large_delay,
            "delta_acquire_busy_wait": self.delta_acquire_busy_wait,
            "delta_acquire_free_min": self.delta_acquire_free_min,
            "delta_acquire_free_max": self.delta_acquire_free_max,
            "paxos_acquire_held_min": self.paxos_acquire_held_min,
            "paxos_acquire_held_max": self.paxos_acquire_held_max,
            "set_bitmap_seconds": self.set_bitmap_seconds,
            "renewal_write_timeout": self.renewal_write_timeout,
        }
