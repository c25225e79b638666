"""A storage seam that injects faults: delays, EIO, AIO_TIMEOUT-like hangs and torn writes.

``FaultyStorage`` wraps any ``Storage`` (normally one ``DirectStorage``, with its own fd, per
simulated host) and is itself a ``Storage``, so the lease layers run unchanged on top of it.

Faults come from two sources, both settable while I/O is running:

* rules (``FaultRules``): per-I/O probabilities, drawn from a ``random.Random`` the caller owns, so
  a property-testing framework decides every draw and can replay or shrink a run;
* scripted faults (``inject``): one-shot faults for the next matching I/O, for unit tests that need
  an exact fault at an exact place.

Every I/O is bounded by its own timeout, as the lease algorithms assume: a delay is always shorter
than the I/O's timeout, and a hung I/O ends with AIO_TIMEOUT exactly at its timeout, having reached
the disk (a write) at some point inside that window or not at all. A write that lands *after* its
timeout is outside what sanlock's algorithms defend against, so it is never injected.

A torn write models a write interrupted part-way: only a prefix of the new bytes reaches the disk.
O_DIRECT can only write whole sectors, so the sector holding the cut is read, patched with the new
prefix and written whole; the caller then gets EIO, as it would from a failed device.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lockengine.errors import InputError, LockError
from lockengine.storage import Storage

Op = Literal["read", "write"]
FaultKind = Literal["eio", "hang", "torn", "delay"]

# A delay never reaches the I/O's timeout: that would be a hang, which has its own rule.
DELAY_CAP = 0.99


@dataclass(frozen=True)
class FaultRules:
    """Probabilities (0..1) of each fault per I/O; all zero passes every I/O straight through."""

    delay: float = 0.0  # the I/O waits a while before it runs
    max_delay: float = 0.0  # seconds; capped below each I/O's timeout
    read_eio: float = 0.0
    write_eio: float = 0.0  # EIO, nothing written
    hang: float = 0.0  # blocks until its timeout, then AIO_TIMEOUT
    hang_write_lands: float = 0.5  # a hung write reached the disk before it was abandoned
    torn: float = 0.0  # a write puts only a prefix on disk, then EIO
    torn_max_cut: int = 0  # torn writes keep at most this many new bytes (0: up to all but one)

    def __post_init__(self) -> None:
        for name in ("delay", "read_eio", "write_eio", "hang", "hang_write_lands", "torn"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(name, value, "use a probability from 0 to 1")
        if self.max_delay < 0:
            raise InputError("max_delay", self.max_delay, "use a non-negative number of seconds")
        if self.torn_max_cut < 0:
            raise InputError("torn_max_cut", self.torn_max_cut, "use 0 (no limit) or a positive byte count")


@dataclass(frozen=True)
class Fault:
    """A one-shot fault for the next I/O that matches ``op`` (and ``offset``, when given)."""

    kind: FaultKind
    op: Op
    offset: int | None = None  # the I/O must cover this byte offset
    cut: int | None = None  # torn: how many new bytes land (default: drawn)
    lands: bool = False  # hang of a write: whether it reached the disk
    seconds: float = 0.0  # delay: how long (capped below the I/O's timeout)

    def matches(self, op: Op, offset: int, length: int) -> bool:
        if op != self.op:
            return False
        return self.offset is None or offset <= self.offset < offset + length


@dataclass(frozen=True)
class IoRecord:
    """One I/O as the seam saw it: ``outcome`` is ok, eio, timeout, or torn:<bytes that landed>."""

    op: Op
    offset: int
    length: int
    outcome: str
    landed: bool  # a write changed the disk (wholly, or a torn prefix)
    timeout: float


@dataclass
class _Plan:
    kind: FaultKind | None = None
    delay: float = 0.0
    cut: int = 0
    lands: bool = False
    land_at: float = 0.0  # fraction of the timeout after which a hung write lands


@dataclass
class FaultStats:
    reads: int = 0
    writes: int = 0
    delays: int = 0
    eio: int = 0
    hangs: int = 0
    torn: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class FaultyStorage:
    """A ``Storage`` that runs every I/O through fault rules; thread-safe."""

    def __init__(
        self,
        inner: Storage,
        rng: random.Random | None = None,
        rules: FaultRules | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        gate: Callable[[Op, int, int], None] | None = None,
        observer: Callable[[IoRecord], None] | None = None,
        name: str = "",
        log_limit: int = 100_000,
    ) -> None:
        """``sleep`` serves delays and hangs (a test passes its virtual clock's); ``gate`` is called
        before every I/O and may block, so a test can order each I/O across hosts; ``observer`` is
        called after every I/O with what happened. ``log`` keeps the last ``log_limit`` I/Os."""
        self.inner = inner
        self.path = inner.path
        self.sector_size = inner.sector_size
        self.name = name or inner.path
        self._rng = rng or random.Random()
        self._rules = rules or FaultRules()
        self._scripted: list[Fault] = []
        self._sleep = sleep
        self._gate = gate
        self._observer = observer
        self._lock = threading.Lock()
        self.stats = FaultStats()
        self.log: deque[IoRecord] = deque(maxlen=log_limit)

    # ------------------------------------------------------------------ control

    @property
    def rules(self) -> FaultRules:
        with self._lock:
            return self._rules

    def set_rules(self, rules: FaultRules | None = None, **changes: Any) -> FaultRules:
        """Replace the rules (or change some fields of the current ones) from any thread."""
        with self._lock:
            self._rules = replace(rules or self._rules, **changes)
            return self._rules

    def inject(self, *faults: Fault) -> None:
        """Queue one-shot faults; each is used by the first later I/O it matches."""
        with self._lock:
            self._scripted.extend(faults)

    def heal(self) -> None:
        """No more faults: rules to zero and scripted faults dropped."""
        with self._lock:
            self._rules = FaultRules()
            self._scripted.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._scripted)

    def writes(self) -> list[IoRecord]:
        with self._lock:
            return [r for r in self.log if r.op == "write"]

    # ------------------------------------------------------------------ Storage

    def size(self) -> int:
        return self.inner.size()

    def close(self) -> None:
        self.inner.close()

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        plan = self._plan("read", offset, length, timeout)
        self._before("read", offset, length, plan)
        if plan.kind == "eio":
            self._done("read", offset, length, timeout, "eio", False)
            raise OSError(errno.EIO, f"injected EIO: read of {length} bytes at {offset} on {self.name}")
        if plan.kind == "hang":
            self._sleep(timeout)
            self._done("read", offset, length, timeout, "timeout", False)
            raise LockError("AIO_TIMEOUT", f"injected hang: read of {length} bytes at {offset} on {self.name}")
        data = self.inner.read(offset, length, timeout)
        self._done("read", offset, length, timeout, "ok", False)
        return data

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        length = len(data)
        plan = self._plan("write", offset, length, timeout)
        self._before("write", offset, length, plan)
        if plan.kind == "eio":
            self._done("write", offset, length, timeout, "eio", False)
            raise OSError(errno.EIO, f"injected EIO: write of {length} bytes at {offset} on {self.name}")
        if plan.kind == "hang":
            first = timeout * plan.land_at
            self._sleep(first)
            if plan.lands:
                self.inner.write(offset, data, timeout)
            self._sleep(timeout - first)
            self._done("write", offset, length, timeout, "timeout", plan.lands)
            raise LockError("AIO_TIMEOUT", f"injected hang: write of {length} bytes at {offset} on {self.name}")
        if plan.kind == "torn":
            self._write_prefix(offset, data, plan.cut, timeout)
            self._done("write", offset, length, timeout, f"torn:{plan.cut}", plan.cut > 0)
            raise OSError(errno.EIO, f"injected torn write: {plan.cut} of {length} bytes at {offset} on {self.name}")
        self.inner.write(offset, data, timeout)
        self._done("write", offset, length, timeout, "ok", True)

    # ------------------------------------------------------------------ internals

    def _plan(self, op: Op, offset: int, length: int, timeout: float) -> _Plan:
        """Decide this I/O's fate up front, under the lock, so concurrent hosts draw in a fixed order."""
        cap = max(0.0, timeout * DELAY_CAP)
        with self._lock:
            rng = self._rng
            for i, fault in enumerate(self._scripted):
                if fault.matches(op, offset, length):
                    del self._scripted[i]
                    return self._scripted_plan(fault, length, cap)
            r = self._rules
            plan = _Plan()
            if r.delay and rng.random() < r.delay:
                plan.delay = min(cap, rng.uniform(0.0, r.max_delay))
            if op == "read":
                if r.hang and rng.random() < r.hang:
                    plan.kind = "hang"
                elif r.read_eio and rng.random() < r.read_eio:
                    plan.kind = "eio"
                return plan
            if r.hang and rng.random() < r.hang:
                plan.kind = "hang"
                plan.lands = rng.random() < r.hang_write_lands
                plan.land_at = rng.random()
            elif r.write_eio and rng.random() < r.write_eio:
                plan.kind = "eio"
            elif r.torn and length > 1 and rng.random() < r.torn:
                plan.kind = "torn"
                top = min(r.torn_max_cut, length - 1) if r.torn_max_cut else length - 1
                plan.cut = rng.randint(1, top)
            return plan

    def _scripted_plan(self, fault: Fault, length: int, cap: float) -> _Plan:
        if fault.kind == "delay":
            return _Plan(delay=min(cap, fault.seconds))
        if fault.kind == "torn":
            cut = fault.cut if fault.cut is not None else self._rng.randint(1, max(1, length - 1))
            if not 0 <= cut <= length:
                raise InputError("cut", cut, f"use 0..{length} bytes for a {length}-byte write")
            return _Plan(kind="torn", cut=cut)
        if fault.kind == "hang":
            return _Plan(kind="hang", lands=fault.lands, land_at=0.5)
        return _Plan(kind=fault.kind)

    def _before(self, op: Op, offset: int, length: int, plan: _Plan) -> None:
        if self._gate is not None:
            self._gate(op, offset, length)
        # A hang owns the whole timeout window, so it takes no extra delay on top.
        if plan.delay and plan.kind != "hang":
            with self._lock:
                self.stats.delays += 1
            self._sleep(plan.delay)

    def _write_prefix(self, offset: int, data: bytes, cut: int, timeout: float) -> None:
        """Put data[:cut] on disk and leave the rest of the sector holding the cut as it was."""
        if cut <= 0:
            return
        s = self.inner.sector_size
        whole = cut - cut % s
        if whole == cut:
            self.inner.write(offset, data[:cut], timeout)
            return
        old = self.inner.read(offset + whole, s, timeout)
        patched = data[:cut] + old[cut - whole :]
        self.inner.write(offset, patched, timeout)

    def _done(self, op: Op, offset: int, length: int, timeout: float, outcome: str, landed: bool) -> None:
        rec = IoRecord(op, offset, length, outcome, landed, timeout)
        with self._lock:
            self.log.append(rec)
            st = self.stats
            if op == "read":
                st.reads += 1
            else:
                st.writes += 1
            kind = outcome.split(":", 1)[0]
            if kind == "eio":
                st.eio += 1
            elif kind == "timeout":
                st.hangs += 1
            elif kind == "torn":
                st.torn += 1
            st.by_kind[kind] = st.by_kind.get(kind, 0) + 1
        if self._observer is not None:
            self._observer(rec)
