"""The states the daemon reports, one str-valued Enum each; a member's value is its wire string.

They leave the daemon in its JSON replies (``status``, ``inq_lockspace``, ``host_status``, ``gets``) and,
mapped to sanlock's flags, on the sanlock socket; the CLI, the metrics and the Ansible modules read them
back. A member equals its string (``LockspaceState.JOINED == "JOINED"``) and prints and serialises as it, so
the wire format is the strings themselves; ``tests/unit/test_states.py`` pins them.
"""

from __future__ import annotations

from enum import StrEnum


class LockspaceState(StrEnum):
    """A lockspace on this host: joining, joined, leaving, or lost its delta lease."""

    ADD = "ADD"
    JOINED = "JOINED"
    FAILED = "FAILED"
    REM = "REM"


class HostState(StrEnum):
    """Another host as this host's renewals see it in a lockspace (sanlock's host flags)."""

    FREE = "FREE"
    LIVE = "LIVE"
    FAIL = "FAIL"
    DEAD = "DEAD"
    UNKNOWN = "UNKNOWN"


class ResourceState(StrEnum):
    """A resource lease the daemon holds (or is getting) for a client."""

    ACQUIRING = "ACQUIRING"
    HELD = "HELD"
    ORPHAN = "ORPHAN"
    RELEASING = "RELEASING"
