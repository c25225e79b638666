"""The daemon's worker threads: commands that touch a disk, and background work, run here.

A lighter stand-in for ``concurrent.futures.ThreadPoolExecutor`` on the request path: ``submit``
is one queue put (no Future, no per-call Condition or lock), threads start only when none is idle,
up to ``max_workers``, a thread idle for ``idle_exit`` seconds ends (a burst of 32 clients does not
leave 32 threads behind), and an exception escaping a task is logged instead of vanishing into a
Future nobody reads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .log import get_logger

log = get_logger("workers")


class WorkerPool:
    def __init__(self, max_workers: int, name: str = "worker", idle_exit: float = 60.0) -> None:
        self.max_workers = max_workers
        self.idle_exit = idle_exit
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[..., object], tuple[object, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the counts only
        self._threads = 0
        self._idle = 0
        self._stopped = False

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Queue ``fn(*args)``; a thread takes it as soon as one is free."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("the worker pool is shut down")
            # _idle counts threads waiting minus jobs queued for them (negative: a backlog).
            start = self._idle <= 0 and self._threads < self.max_workers
            if start:
                self._threads += 1  # the new thread takes this job (or an older one: the same)
            else:
                self._idle -= 1
        self._jobs.put((fn, args))
        if start:
            threading.Thread(target=self._run, name=f"{self.name}_{self._threads - 1}", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    # Only a surplus idle thread ends: at 0 a submit has claimed this one and its job
                    # is on the way.
                    if self._idle > 0:
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                log.exception("background task %s failed", getattr(fn, "__name__", fn))
            with self._lock:
                self._idle += 1

    def idle(self) -> int:
        """Threads waiting for work (negative: tasks waiting for a thread)."""
        with self._lock:
            return self._idle

    def threads(self) -> int:
        with self._lock:
            return self._threads

    def shutdown(self) -> None:
        """Stop the threads once the queued work is done (they are daemon threads: nothing waits)."""
        with self._lock:
            self._stopped = True
            n = self._threads
        for _ in range(n):
            self._jobs.put(None)
