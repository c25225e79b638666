"""What the daemon did since it started, counted where it happens: lease acquire and release calls (by
result, with a latency histogram) and escalation steps, per lockspace. ``status`` carries the snapshot
(``counters``); ``lockengine client metrics`` renders it (metrics.py). Counts start at 0 when the daemon
starts, as Prometheus counters may.

Thread-safe: one lock, held for a dictionary update only (a leaf lock: nothing is called under it).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from typing import Any

# Families (the keys of the snapshot) and their labels.
ACQUIRES, RELEASES, ESCALATION = "acquires", "releases", "escalation"
ACQUIRE_SECONDS, RELEASE_SECONDS = "acquire_seconds", "release_seconds"

# Escalation steps, in the order they are taken (docs/daemon.md).
STEP_REQUEST, STEP_KILLPATH, STEP_SIGTERM, STEP_SIGKILL, STEP_WATCHDOG = (
    "request", "killpath", "sigterm", "sigkill", "watchdog_stop")
# Why a step was taken.
CAUSE_REQUEST, CAUSE_RECOVERY, CAUSE_RENEWAL = "request", "recovery", "renewal"
# How a lease came to be released: a release call, or its holder's connection closed.
CAUSE_CALL, CAUSE_EXIT = "call", "exit"
RESULT_OK = "ok"

# Upper bounds (seconds) of the latency buckets: one 4 KiB I/O on a fast disk up to a ballot that
# waits out a dead owner (host_dead_seconds at io_timeout 10 is 140 s).
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                                      150.0, 300.0)

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS)  # per bucket, not cumulative
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(LATENCY_BUCKETS, value)
        if i < len(self.buckets):
            self.buckets[i] += 1
        self.count += 1
        self.sum += value

    def as_dict(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for le, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            running += n
            cumulative.append([le, running])
        return {"buckets": cumulative, "count": self.count, "sum": round(self.sum, 6)}


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[Labels, int]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}

    def inc(self, family: str, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            rows = self._counts.setdefault(family, {})
            rows[key] = rows.get(key, 0) + 1

    def observe(self, family: str, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._histograms.setdefault(family, {}).setdefault(key, _Histogram()).observe(max(0.0, seconds))

    def call(self, kind: str, lockspaces: Iterable[str], result: str, seconds: float, **labels: str) -> None:
        """One acquire or release call (``kind`` is ACQUIRES or RELEASES), counted once in each lockspace
        it named, by result, and its duration in that lockspace's histogram."""
        histogram = ACQUIRE_SECONDS if kind == ACQUIRES else RELEASE_SECONDS
        for ls in sorted(set(lockspaces)):
            self.inc(kind, lockspace=ls, result=result, **labels)
            self.observe(histogram, seconds, lockspace=ls)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """``{family: [{label: value, ..., "count": n}]}``; histograms add ``buckets`` ([le, cumulative
        count] pairs, +Inf is ``count``) and ``sum``. Rows sorted by labels, so replies are stable."""
        with self._lock:
            out: dict[str, list[dict[str, Any]]] = {
                family: [{**dict(key), "count": n} for key, n in sorted(rows.items())]
                for family, rows in sorted(self._counts.items())}
            for family, hists in sorted(self._histograms.items()):
                out[family] = [{**dict(key), **h.as_dict()} for key, h in sorted(hists.items())]
        return out
