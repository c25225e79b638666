"""The bounded worlds of the exhaustive check (docs/testing.md, "Exhaustive check")."""

from __future__ import annotations

from collections.abc import Callable

from .world import HostSpec, World

A, R = "acquire", "release"


def late_commit(late_after_timeout: bool = False) -> World:
    """Issue 8's shape, 4 hosts p, q, o, x. q's ballot for lver 1 starts once p's phase 2 is on
    disk, p releases once q is ready to commit, and one leader write may hang and land later; once
    p released lver 1, o runs for lver 2;
    p joins the race once o's phase 2 is on disk, x (a slow host: 2 I/Os) once o is 7 I/Os in; p
    acquires once more after o's acquire ended. Every interleaving inside those bounds."""
    return World(
        "late-commit" + ("-after-window" if late_after_timeout else ""),
        (
            HostSpec("p", 1, (A, R, A, A), max_io=6, after=((1, "q", 0, 5), (2, "o", 0, 4), (3, "o", 1, 0))),
            HostSpec("q", 2, (A,), max_io=6, after=((0, "p", 0, 4),)),
            HostSpec("o", 3, (A,), max_io=11, after=((0, "p", 2, 0),)),
            HostSpec("x", 4, (A,), max_io=2, after=((0, "o", 0, 7),)),
        ),
        hangs=1, hang_leader_only=True, late_after_timeout=late_after_timeout,
    )


def race3() -> World:
    """3 hosts, 2 lease versions: every interleaving of three acquires and a release (one ballot
    each: an aborted ballot freezes its host)."""
    return World("race3", (HostSpec("p", 1, (A, R)), HostSpec("q", 2, (A,)), HostSpec("o", 3, (A,))), max_io_per_op=6)


def crash_restart() -> World:
    """A holder crashes (fenced) and restarts with a new generation ("was old local"), racing q."""
    return World(
        "crash-restart",
        (HostSpec("p", 1, (A,), restart_script=(A,)), HostSpec("q", 2, (A,))),
        crashes=1, max_io_per_op=6,
    )


def committed_for_us() -> World:
    """Another host commits p's value and p takes "committed for us" (an aborted ballot, then the
    leader); p's release leaves a RELEASED dblock; an I/O error may hit any one I/O (phase-2
    failure, failed commit, failed release: the retract paths)."""
    return World(
        "committed-for-us",
        (HostSpec("p", 1, (A, R)), HostSpec("q", 2, (A,))),
        errors=1, max_io_per_op=8,
    )


def shared() -> World:
    """A shared holder and an exclusive acquirer: mode blocks, the SHORT_HOLD leader, EAGAIN.
    A shared acquire that completes takes 9 I/Os (ballot, mode block, leader freed); an exclusive
    one that meets a live sharer 9 too (its release, then EAGAIN): 10 leaves room for one more."""
    return World("shared", (HostSpec("p", 1, ("acquire_sh", R)), HostSpec("q", 2, (A,))), max_io_per_op=10)


def shared3() -> World:
    """Two shared holders and one exclusive acquirer."""
    return World(
        "shared3",
        (HostSpec("p", 1, ("acquire_sh", R)), HostSpec("q", 2, ("acquire_sh",)), HostSpec("o", 3, (A,))),
        max_io_per_op=10,
    )


def requests() -> World:
    """A request record written while the lease changes hands."""
    return World("requests", (HostSpec("p", 1, (A, R)), HostSpec("q", 2, ("request", A))), max_io_per_op=8)


def stall() -> World:
    """The holder stops renewing (not yet dead): others must wait (ACQUIRE_OWNED_RETRY), never take it."""
    return World("stall", (HostSpec("p", 1, (A,)), HostSpec("q", 2, (A,))), stalls=1, max_io_per_op=8)



def race2() -> World:
    """Two hosts race for lver 1, no retries: the smallest world where the abort rule matters."""
    return World("race2", (HostSpec("p", 1, (A,)), HostSpec("q", 2, (A,))), max_io_per_op=6)


def stale_released() -> World:
    """A write of p's release may hang and land late, even after its window: p's RELEASED dblock for
    lver 1 may land after p won lver 2 while q acquires. The RELEASED shortcut must not trust it."""
    return World(
        "stale-released",
        (HostSpec("p", 1, (A, R, A), max_io=6), HostSpec("q", 2, (A,), max_io=6, after=((0, "p", 2, 0),))),
        hangs=1, hang_in=(R,), late_after_timeout=True,
    )


def late_commit_after_window() -> World:
    """late_commit where the hung leader write may also land after its caller timed out."""
    return late_commit(True)


def num_hosts_lowered() -> World:
    """The resource starts at num_hosts 3; p (id 1) acquires with num_hosts 2 and releases, o (id 3)
    races p from the start (it may be mid-ballot, with the old view, while p lowers), q (id 2)
    acquires once p's acquire ended. o must end refused (LEADER_NUMHOSTS) or with lver 1 before the
    lowering; never two owners."""
    return World(
        "num-hosts-lowered",
        (
            HostSpec("p", 1, ("acquire/2", R)),
            HostSpec("q", 2, (A,), after=((0, "p", 1, 0),)),
            HostSpec("o", 3, (A, A)),
        ),
        max_io_per_op=6,
    )


def num_hosts_late_commit() -> World:
    """num_hosts_lowered where one leader write may hang and land late, even after its caller timed
    out: o's commit of lver 1 with the old num_hosts 3 may land after p lowered it and released."""
    return World(
        "num-hosts-late-commit",
        (
            HostSpec("p", 1, ("acquire/2", R)),
            HostSpec("q", 2, (A,), after=((0, "p", 1, 0),)),
            HostSpec("o", 3, (A, A)),
        ),
        hangs=1, hang_leader_only=True, late_after_timeout=True, max_io_per_op=6,
    )


def num_hosts_shared() -> World:
    """o (id 3) acquires shared while p (id 1) twice tries to acquire with num_hosts 2 (then
    releases), and q (id 2) acquires exclusive once p's two acquires ended: a lowering must never
    hide o's SHARED mode block (p's second try meets it: EBUSY)."""
    return World(
        "num-hosts-shared",
        (
            HostSpec("p", 1, ("acquire/2", "acquire/2", R)),
            HostSpec("q", 2, (A,), after=((0, "p", 2, 0),)),
            HostSpec("o", 3, ("acquire_sh",)),
        ),
        max_io_per_op=10,
    )


WorldMaker = Callable[[], World]
CI: tuple[WorldMaker, ...] = (
    race2, crash_restart, committed_for_us, shared, requests, stall, stale_released,
    race3, late_commit, late_commit_after_window, num_hosts_lowered, num_hosts_late_commit,
    num_hosts_shared,
)

DEEP: dict[str, WorldMaker] = {m.__name__: m for m in (*CI, shared3)}

# Outcomes ("host op:outcome") each CI world must reach in some terminal state: a bound too tight
# for an operation to complete would make its invariant vacuous (tests/exhaustive/test_exhaustive.py).
COVERS: dict[str, tuple[str, ...]] = {
    "race2": ("p acquire:ok lver 1", "q acquire:ok lver 1", "q acquire:ACQUIRE_OWNED"),
    "crash_restart": ("p acquire:ok lver 2", "q acquire:ok lver 2"),
    "committed_for_us": ("p release:ok", "p acquire:AIO_TIMEOUT", "q acquire:ok lver 2"),
    "shared": ("p acquire_sh:ok shared lver 1", "p release:ok", "q acquire:EAGAIN", "q acquire:ok lver 2"),
    "requests": ("q request:ok", "q acquire:ok lver 2"),
    "stall": ("p acquire:ok lver 1", "q acquire:ACQUIRE_OWNED_RETRY"),
    "stale_released": ("p release:AIO_TIMEOUT", "p acquire:ok lver 2", "q acquire:ok lver 2"),
    "race3": ("p release:ok", "q acquire:ok lver 2", "o acquire:ok lver 2"),
    "late_commit": ("o acquire:ok lver 2", "p acquire:ok lver 3", "p acquire:ok lver 4"),
    "late_commit_after_window": ("o acquire:ok lver 2", "p acquire:ok lver 4"),
    "num_hosts_lowered": ("p acquire/2:ok lver 1 num_hosts 2", "p release:ok", "o acquire:ok lver 1",
                          "o acquire:ACQUIRE_OTHER", "o acquire:LEADER_NUMHOSTS", "q acquire:ok lver 2"),
    "num_hosts_late_commit": ("p acquire/2:ok lver 1 num_hosts 2", "p release:ok", "o acquire:ok lver 2",
                              "o acquire:LEADER_NUMHOSTS", "q acquire:ok lver 2"),
    "num_hosts_shared": ("o acquire_sh:ok shared lver 1", "o acquire_sh:LEADER_NUMHOSTS", "p acquire/2:EBUSY",
                         "p acquire/2:ok lver 2 num_hosts 2", "q acquire:EAGAIN", "q acquire:ok lver 3"),
}

# The delta-lease worlds (delta_worlds.py): the same search and CLI (``--world delta_NAME``).
from . import delta_worlds as _delta  # noqa: E402

DEEP.update(_delta.DEEP)  # type: ignore[arg-type]
