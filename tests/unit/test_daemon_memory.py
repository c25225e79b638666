"""The daemon's malloc tuning (daemon/main.py tune_malloc) takes effect on this glibc system."""

from __future__ import annotations

from lockengine.daemon.main import tune_malloc


def test_tune_malloc_is_accepted_by_glibc() -> None:
    assert tune_malloc() is True
