"""Time as the engine sees it: one monotonic clock, sanlock's whole-second timestamps, abortable sleeps.

Every class that waits or reads the time takes a ``Clock`` and a sleeper from its constructor (the
seams of DESIGN §5a); these are the production defaults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import LockError

Clock = Callable[[], float]
Sleeper = Callable[[float], None]
AbortableSleeper = Callable[[float, "threading.Event | None", str], None]


def monotime(clock: Clock = time.monotonic) -> int:
    """sanlock's on-disk timestamp: whole seconds of the writer's monotonic clock, never 0 (= free)."""
    return max(1, int(clock()))


def abortable_sleep(seconds: float, abort: threading.Event | None, what: str) -> None:
    """Sleep ``seconds``; with ``abort`` set meanwhile, raise LockError ERROR naming ``what``."""
    if abort is None:
        time.sleep(seconds)
    elif abort.wait(seconds):
        raise LockError("ERROR", f"{what}: aborted")
