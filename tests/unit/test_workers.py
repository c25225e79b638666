"""The daemon's worker pool (daemon/workers.py): every task runs, tasks run concurrently up to the
limit and no further, a failing task is logged and the pool keeps serving."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from lockengine.daemon import workers
from lockengine.daemon.log import ROOT_LOGGER
from lockengine.daemon.workers import WorkerPool


def test_tasks_run_concurrently_up_to_the_limit_and_queue_beyond_it() -> None:
    pool = WorkerPool(3, "t")
    gate = threading.Event()
    started = threading.Semaphore(0)
    done = threading.Semaphore(0)

    def task() -> None:
        started.release()
        gate.wait(10)
        done.release()

    for _ in range(5):
        pool.submit(task)
    for _ in range(3):
        assert started.acquire(timeout=10)  # three run at once although all block
    assert not started.acquire(timeout=0.2)  # the other two wait for a free thread
    assert pool.threads() == 3
    gate.set()
    for _ in range(5):
        assert done.acquire(timeout=10)
    pool.shutdown()


def test_idle_threads_are_reused_and_a_failing_task_does_not_stop_the_pool(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier test in the same process may have run the daemon's setup_logging (propagate off) or
    # raised a logger's level: collect the pool's records at its own logger.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    pool_log = logging.getLogger(workers.log.name)
    monkeypatch.setattr(pool_log, "disabled", False)
    monkeypatch.setattr(pool_log, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(ROOT_LOGGER), "level", logging.DEBUG)
    pool_log.addHandler(handler)
    monkeypatch.setattr(logging.root.manager, "disable", logging.NOTSET)
    pool = WorkerPool(8, "t")
    ran = threading.Semaphore(0)

    def boom() -> None:
        ran.release()
        raise RuntimeError("bug")

    for _ in range(20):
        pool.submit(boom)
        assert ran.acquire(timeout=10)
        deadline = time.monotonic() + 10
        while pool.idle() < 1 and time.monotonic() < deadline:  # the thread logs, then waits again
            time.sleep(0.001)
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(10)
    assert pool.threads() == 1  # one task at a time: the idle thread took each next one
    pool_log.removeHandler(handler)
    assert any("background task boom failed" in r.getMessage() for r in records)
    pool.shutdown()


def test_threads_idle_longer_than_idle_exit_end_and_new_work_still_runs() -> None:
    pool = WorkerPool(4, "t", idle_exit=0.05)
    gate = threading.Event()
    started = threading.Semaphore(0)

    def task() -> None:
        started.release()
        gate.wait(10)

    for _ in range(4):
        pool.submit(task)
    for _ in range(4):
        assert started.acquire(timeout=10)
    assert pool.threads() == 4
    gate.set()
    deadline = time.monotonic() + 10
    while pool.threads() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.threads() == 0
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(10)
    pool.shutdown()
