"""sanlock's timeout arithmetic against the tables of sanlock-facts §5 and §9/§10."""

from __future__ import annotations

import dataclasses

import pytest

from lockengine.errors import InputError
from lockengine.timeouts import (
    DEFAULT_FIRE_TIMEOUT,
    DEFAULT_IO_TIMEOUT,
    Timeouts,
    default_kill_grace,
    max_kill_grace,
    watchdog_test_interval,
)


# facts §5: "Other io_timeouts: 5 gives 10/40/30/100 s and 20 gives 40/160/120/220 s"
@pytest.mark.parametrize(
    ("io", "renewal", "fail", "warn", "host_dead"),
    [(5, 10, 40, 30, 100), (10, 20, 80, 60, 140), (20, 40, 160, 120, 220)],
)
def test_renewal_fail_warn_host_dead_table(io: int, renewal: int, fail: int, warn: int, host_dead: int) -> None:
    t = Timeouts(io)
    assert (t.id_renewal_seconds, t.id_renewal_fail_seconds, t.id_renewal_warn_seconds, t.host_dead_seconds) == (
        renewal,
        fail,
        warn,
        host_dead,
    )


def test_defaults_table_io_10() -> None:
    t = Timeouts(DEFAULT_IO_TIMEOUT)
    assert t.as_dict() == {
        "io_timeout": 10,
        "watchdog_fire_timeout": 60,
        "id_renewal_seconds": 20,
        "id_renewal_warn_seconds": 60,
        "id_renewal_fail_seconds": 80,
        "host_dead_seconds": 140,
        "kill_grace_seconds": 40,
        "sigkill_seconds": 120,  # measured: SIGKILL exactly 120 s after the last good renewal
        "watchdog_test_interval": 10,
        "delta_short_delay": 20,
        "delta_large_delay": 80,
        "delta_acquire_busy_wait": 140,
        "delta_acquire_free_min": 20,
        "delta_acquire_free_max": 50,
        "paxos_acquire_held_min": 140,
        "paxos_acquire_held_max": 210,
        "set_bitmap_seconds": 60,
        "renewal_write_timeout": 140,
    }
    assert DEFAULT_FIRE_TIMEOUT == 60


@pytest.mark.parametrize(("io", "busy"), [(5, 100), (10, 140), (20, 220)])
def test_delta_acquire_busy_wait_is_max_of_host_dead_and_large_delay(io: int, busy: int) -> None:
    t = Timeouts(io)
    assert t.delta_acquire_busy_wait == busy == max(t.host_dead_seconds, t.delta_large_delay)


def test_expiry_is_last_success_plus_8_io() -> None:
    assert Timeouts(10).expiry(1034.0) == 1114.0
    assert Timeouts(5).expiry(7.5) == 47.5


def test_timeline_of_facts_9_for_io_10() -> None:
    """warn at L+60, lease lost at L+80, SIGKILL at L+120, host dead for others at L+140."""
    t, last = Timeouts(10), 40
    assert last + t.id_renewal_warn_seconds == 100
    assert last + t.id_renewal_fail_seconds == 120
    assert last + t.sigkill_seconds == 160
    assert last + t.host_dead_seconds == 180


@pytest.mark.parametrize(
    ("fire", "interval", "grace"),
    [(600, 10, 40), (60, 10, 40), (59, 5, 15), (30, 5, 15), (29, 2, 0), (10, 2, 0), (9, 1, 0), (5, 1, 0)],
)
def test_test_interval_and_kill_grace_follow_fire_timeout(fire: int, interval: int, grace: int) -> None:
    assert watchdog_test_interval(fire) == interval
    assert default_kill_grace(fire) == grace
    t = Timeouts(10, fire)
    assert (t.watchdog_test_interval, t.kill_grace_seconds) == (interval, grace)
    # The default grace always lets SIGKILL come before the watchdog's earliest possible fire.
    assert grace <= max_kill_grace(fire) == max(0, fire - 2 * interval)


@pytest.mark.parametrize("fire", [5, 10, 20, 30, 45, 60, 90])
@pytest.mark.parametrize("io", [1, 5, 10, 20])
def test_host_dead_uses_the_configured_fire_timeout(io: int, fire: int) -> None:
    t = Timeouts(io, fire)
    assert t.host_dead_seconds == 8 * io + fire
    assert t.paxos_acquire_held_max == 8 * io + fire + 7 * io
    # SIGKILL of lease holders precedes the moment others may take over.
    assert t.sigkill_seconds < t.host_dead_seconds


def test_explicit_kill_grace() -> None:
    assert Timeouts(10, 60, kill_grace=0).kill_grace_seconds == 0
    assert Timeouts(10, 60, kill_grace=40).sigkill_seconds == 120
    assert Timeouts(10, 30, kill_grace=20).kill_grace_seconds == 20


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"io_timeout": 0}, "io_timeout"),
        ({"io_timeout": -5}, "io_timeout"),
        ({"io_timeout": True}, "io_timeout"),
        ({"io_timeout": 10, "fire_timeout": 0}, "watchdog_fire_timeout"),
        ({"io_timeout": 10, "kill_grace": -1}, "kill_grace"),
        ({"io_timeout": 10, "kill_grace": 41}, "kill_grace"),
        ({"io_timeout": 10, "fire_timeout": 30, "kill_grace": 21}, "kill_grace"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(InputError) as exc:
        Timeouts(**kwargs)
    assert exc.value.field == field
    assert "is not valid" in str(exc.value)


def test_kill_grace_error_says_the_limit() -> None:
    with pytest.raises(InputError, match=r"kill_grace: 50 is not valid; use 0 to 40 seconds"):
        Timeouts(10, 60, kill_grace=50)


def test_frozen() -> None:
    t = Timeouts(10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.io_timeout = 5  # type: ignore[misc]
