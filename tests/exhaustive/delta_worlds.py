"""The bounded worlds of the delta-lease exhaustive check (docs/testing.md, "Exhaustive check: the
delta lease"). io_timeout 1 and watchdog fire timeout 1 (the smallest the timeouts allow: the
tightest margins), so: renewal every 2 s, a lease expires 8 s after its last good renewal, a host is
dead after 9 s unchanged, acquire waits 9 s on a slot held under another name and 2 s after its write,
a renewal write may take 9 s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .delta_world import DeltaWorld, HostSpec, Op

A, R = "acquire", "release"


def race2() -> DeltaWorld:
    """Two hosts race for a free host id, each starting at any time in 0..2, then renew (or stall)."""
    return DeltaWorld(
        "delta_race2",
        (HostSpec("p", (Op(A, 0, 2),), renewals=2, clock_offset=100), HostSpec("q", (Op(A, 0, 2),), renewals=2, clock_offset=7)),
        horizon=12, prompt=True,
    )


def race3() -> DeltaWorld:
    """Three hosts race for a free host id."""
    return DeltaWorld(
        "delta_race3",
        (HostSpec("p", (Op(A, 0, 1),), renewals=1, clock_offset=100), HostSpec("q", (Op(A, 0, 1),), renewals=1, clock_offset=7),
         HostSpec("o", (Op(A, 0, 1),), renewals=1, clock_offset=40)),
        horizon=8, prompt=True,
    )


def stall_takeover() -> DeltaWorld:
    """p holds the host id and renews at times of the explorer's choice, or stops (stall); q starts
    its acquire at any time in 0..4 and may take the id only once p is dead."""
    return DeltaWorld(
        "delta_stall_takeover",
        (HostSpec("p", (Op(A, 0, 0),), renewals=2, clock_offset=100), HostSpec("q", (Op(A, 0, 3),), renewals=1, clock_offset=7)),
        horizon=16,
    )


def crash_restart() -> DeltaWorld:
    """p holds, may crash (reset) and restart with a new generation (a rejoin under its own name:
    the busy wait, since issue 8) while q tries to take the id."""
    return DeltaWorld(
        "delta_crash_restart",
        (HostSpec("p", (Op(A, 0, 0),), restart_script=(Op(A),), renewals=1, clock_offset=100),
         HostSpec("q", (Op(A, 0, 2),), renewals=1, clock_offset=7)),
        horizon=16, crashes=1, prompt=True,
    )


def late_renewal() -> DeltaWorld:
    """p holds and renews; one renewal write may hang and land late (after its caller's 9 s timeout,
    even after p's lease expired and q took the id); q acquires at any time in 0..4."""
    return DeltaWorld(
        "delta_late_renewal",
        (HostSpec("p", (Op(A, 0, 0),), renewals=1, clock_offset=100), HostSpec("q", (Op(A, 0, 3),), renewals=1, clock_offset=7)),
        horizon=20, hangs=1, hang_in=("renew",), prompt=True,
    )


def release_retake() -> DeltaWorld:
    """p acquires and releases; q acquires at any time (the free-slot path after a release); an I/O
    error may hit any one read or write."""
    return DeltaWorld(
        "delta_release_retake",
        (HostSpec("p", (Op(A, 0, 0), Op(R)), renewals=1, clock_offset=100), HostSpec("q", (Op(A, 0, 3),), renewals=1, clock_offset=7)),
        horizon=12, errors=1, prompt=True,
    )


def observer() -> DeltaWorld:
    """p holds and renews (or stalls), with slow I/O; w, a host holding another id, observes the
    lockspace at its renewals: its HostTable must never let liveness.holder_dead call p dead while
    p's lease runs."""
    return DeltaWorld(
        "delta_observer",
        (HostSpec("p", (Op(A, 0, 0),), renewals=1, clock_offset=100), HostSpec("w", (), observes=2, clock_offset=55)),
        horizon=12,
    )


def late_own_write() -> DeltaWorld:
    """Fixed finding 1 (issue 8; two live holders on the old delta.py): p's renewal write is slow
    (within its 9 s timeout) and lands after q took the id over; p's lockspace has failed meanwhile
    and p joins again: the slot shows p's own name, which the old acquire took as the fast path (no
    wait) while q's lease still ran. Now any held slot is waited on."""
    return DeltaWorld(
        "delta_late_own_write",
        (HostSpec("p", (Op(A, 0, 0), Op(A)), renewals=1, clock_offset=100),
         HostSpec("q", (Op(A, 0, 0),), renewals=1, clock_offset=7)),
        horizon=16,
    )


def late_acquire_write() -> DeltaWorld:
    """Fixed finding 2: p's acquire write hangs, p gets AIO_TIMEOUT and tries again; q took the free
    id meanwhile; p's old write lands (p's name on the slot) and p's retry took the fast path."""
    return DeltaWorld(
        "delta_late_acquire_write",
        (HostSpec("p", (Op(A, 0, 0), Op(A)), clock_offset=100), HostSpec("q", (Op(A, 0, 3),), renewals=1, clock_offset=7)),
        horizon=12, hangs=1, hang_in=(A,), prompt=True,
    )


def late_release_write() -> DeltaWorld:
    """Fixed finding 3: p's release write (timestamp 0) hangs; q takes the id after p is dead; the free
    record lands over q's, and o, whose busy wait then saw a free slot, took the id while q's lease
    ran. Now the wait restarts from the free record (q's next renewal fails RENEW_OWNER and its lease
    runs out inside it)."""
    return DeltaWorld(
        "delta_late_release_write",
        (HostSpec("p", (Op(A, 0, 0), Op(R)), clock_offset=100), HostSpec("q", (Op(A, 0, 4),), renewals=1, clock_offset=7),
         HostSpec("o", (Op(A, 0, 2),), clock_offset=40)),
        horizon=14, hangs=1, hang_in=(R,), prompt=True,
    )


def late_release_fresh() -> DeltaWorld:
    """Fixed finding 3b: as late_release_write, but o starts its acquire only after the stale free
    record landed over q's (8 s after its own timeout here: less than host_dead): its first read saw
    a free slot, so the old acquire joined in 2·io while q's lease ran. Now a released slot is
    waited on too (only a never-acquired one is not)."""
    return DeltaWorld(
        "delta_late_release_fresh",
        (HostSpec("p", (Op(A, 0, 0), Op(R)), clock_offset=100), HostSpec("q", (Op(A, 0, 2),), renewals=1, clock_offset=7),
         HostSpec("o", (Op(A, 9, 12),), clock_offset=40)),
        horizon=14, hangs=1, hang_in=(R,), prompt=True,
    )


def rejoin_after_release() -> DeltaWorld:
    """p joins, releases and joins again (the daemon's rem_lockspace then add_lockspace), the rejoin
    without the busy wait when the slot still holds p's own clean release record; p's release write
    may hang and land late, after q (starting in 0..3) took the id over: p's rejoin must then wait."""
    return DeltaWorld(
        "delta_rejoin_after_release",
        (HostSpec("p", (Op(A, 0, 0), Op(R, 2, 4), Op(A)), renewals=1, clock_offset=100),
         HostSpec("q", (Op(A, 0, 3),), renewals=1, clock_offset=7)),
        horizon=16, hangs=1, hang_in=(R,), prompt=True,
    )


def rejoin_race() -> DeltaWorld:
    """p releases cleanly and rejoins at once while q, which saw the released record, races for
    the id; an I/O error may hit any one read or write."""
    return DeltaWorld(
        "delta_rejoin_race",
        (HostSpec("p", (Op(A, 0, 0), Op(R, 2, 3), Op(A)), renewals=1, clock_offset=100),
         HostSpec("q", (Op(A, 0, 4),), renewals=1, clock_offset=7)),
        horizon=16, errors=1, prompt=True,
    )


WorldMaker = Callable[[], DeltaWorld]
# The issue-8 findings: two-holder paths on the old delta.py (a late write of an old record), fixed.
FIXED: tuple[WorldMaker, ...] = (late_own_write, late_acquire_write, late_release_write, late_release_fresh)
# The fast rejoin of a slot our own clean release left (DeltaLease.released).
REJOIN: tuple[WorldMaker, ...] = (rejoin_after_release, rejoin_race)
CI: tuple[WorldMaker, ...] = (race2, race3, stall_takeover, crash_restart, late_renewal, release_retake, observer,
                              *FIXED, *REJOIN)
# Two-holder paths the explorer finds in today's delta.py (pinned by test_delta_exhaustive.py; when
# one is fixed its test fails: move the world into CI then). None open.
FINDINGS: tuple[WorldMaker, ...] = ()


def late_renewal_slow() -> DeltaWorld:
    """Deeper: late_renewal with slow I/O (renewal writes take up to their 9 s) and two renewals."""
    return replace(late_renewal(), name="delta_late_renewal_slow", prompt=False,
                   hosts=(replace(late_renewal().hosts[0], renewals=2), late_renewal().hosts[1]))


DEEP: dict[str, WorldMaker] = {m().name: m for m in (*CI, *FINDINGS, late_renewal_slow)}



if __name__ == "__main__":  # the old entry point, kept as an alias of the one CLI
    import sys

    from .__main__ import main

    sys.exit(main())
