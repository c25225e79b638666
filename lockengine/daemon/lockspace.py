"""One joined lockspace inside the daemon: its thread joins (delta acquire), then renews every 2·io.

After each good renewal it moves the watchdog expiry, updates the host table from the area it read
and passes on the hosts that set our bit (requests and events). A corrupt renewal fails the
lockspace at once; an I/O failure is retried until 8·io after the last good renewal, when the
daemon's supervisor (escalation.py) fails it — the supervisor, not this thread, watches the deadline,
because a renewal write may hang for up to host_dead seconds.

A failed lockspace never renews again: its lease holders are stopped (escalation), then it is
dropped without writing to disk, exactly as sanlock does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import Clock
from ..delta import DeltaLease, HostEvent, HostTable
from ..errors import Area, LockError, as_lock_error, error_document, storage_error
from ..liveness import DeltaOwnerLiveness
from ..states import LockspaceState
from ..storage import Storage, T, read_using
from ..strings import LockspaceSpec, format_lockspace
from ..timeouts import Timeouts
from ..watchdog.multiplexer import WatchdogMultiplexer
from .log import get_logger
from .proc import SYSTEM_RUNTIME, Runtime

log = get_logger("lockspace")

HISTORY = 180  # renewal history entries kept (sanlock's -H default)
EVENTS = 256
# A renewal that finds our record rewritten or damaged cannot be retried into health (facts §6).
CORRUPT = frozenset(
    {"RENEW_OWNER", "RENEW_DIFF", "LEADER_MAGIC", "LEADER_VERSION", "LEADER_SECTORSIZE", "LEADER_LOCKSPACE",
     "LEADER_CHECKSUM"}
)


class TimedStorage:
    """Storage seam that remembers how long the last read and write took (``client renewal``)."""

    def __init__(self, inner: Storage, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.path = inner.path
        self.sector_size = inner.sector_size
        self.read_ms = 0.0
        self.write_ms = 0.0

    def read(self, offset: int, length: int, timeout: float) -> bytes:
        t = self.clock()
        try:
            return self.inner.read(offset, length, timeout)
        finally:
            self.read_ms = (self.clock() - t) * 1000

    def read_with(self, offset: int, length: int, timeout: float, use: Callable[[memoryview], T]) -> T:
        """A renewal's area read: into the lease's image, without a new 1 MiB buffer (storage.read_using)."""
        t = self.clock()
        try:
            return read_using(self.inner, offset, length, timeout, use)
        finally:
            self.read_ms = (self.clock() - t) * 1000

    def write(self, offset: int, data: bytes, timeout: float) -> None:
        t = self.clock()
        try:
            self.inner.write(offset, data, timeout)
        finally:
            self.write_ms = (self.clock() - t) * 1000

    def size(self) -> int:
        return self.inner.size()

    def close(self) -> None:
        self.inner.close()


class CleanReleases:
    """What this daemon's clean releases left in each host-id slot (``DeltaLease.released``), so a
    later join of the same slot, under the same host name, can skip the busy wait while the slot
    still holds that record byte for byte (delta.py). Memory only: a restarted daemon waits."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, int, int, str, str], bytes] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(spec: LockspaceSpec, host_name: str) -> tuple[str, int, int, str, str]:
        return spec.path, spec.offset, spec.host_id, spec.name, host_name

    def remember(self, key: tuple[str, int, int, str, str], record: bytes | None) -> None:
        with self._lock:
            if record is None:
                self._records.pop(key, None)
            else:
                self._records[key] = record

    def take(self, key: tuple[str, int, int, str, str]) -> bytes | None:
        with self._lock:
            return self._records.pop(key, None)


class LockspaceHooks(Protocol):
    """What the daemon does when a lockspace changes state."""

    def lockspace_failed(self, ls: Lockspace, reason: str) -> None: ...

    def lockspace_ended(self, ls: Lockspace) -> None: ...

    def requests_seen(self, ls: Lockspace, senders: list[int]) -> None: ...


@dataclass
class Renewal:
    timestamp: int
    read_ms: float
    write_ms: float
    result: int
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"timestamp": self.timestamp, "read_ms": round(self.read_ms, 3), "write_ms": round(self.write_ms, 3),
                "result": self.result, "error": self.error}


class Lockspace:
    def __init__(
        self,
        spec: LockspaceSpec,
        *,
        host_name: str,
        timeouts: Timeouts,
        watchdog: WatchdogMultiplexer,
        hooks: LockspaceHooks,
        renewal_storage: Callable[[], Storage],
        query_storage: Storage,
        runtime: Runtime = SYSTEM_RUNTIME,
        releases: CleanReleases | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.host_id = spec.host_id
        self.host_name = host_name
        self.timeouts = timeouts
        self.watchdog = watchdog
        self.hooks = hooks
        self._open_storage = renewal_storage
        self.query_storage = query_storage
        self.wd_name = f"lockengine_{spec.name}:{spec.host_id}"
        self.runtime = runtime
        self.clock = runtime.clock
        self._releases = releases or CleanReleases()
        self._slot = CleanReleases.key(spec, host_name)

        self.state = LockspaceState.ADD
        self.closing = False  # rem_lockspace is stopping the holders: refuse new acquires
        self.progress = "starting"
        self.error: dict[str, object] | None = None
        self.failed_reason: str | None = None
        self.failed_at: float | None = None
        self.joined = concurrent.futures.Future[dict[str, Any]]()
        self.delta: DeltaLease | None = None
        self.table: HostTable | None = None
        self.liveness: DeltaOwnerLiveness | None = None
        self.generation = 0
        self.history: collections.deque[Renewal] = collections.deque(maxlen=HISTORY)
        self.events: collections.deque[dict[str, object]] = collections.deque(maxlen=EVENTS)
        self._last_event: dict[int, tuple[int, int, int]] = {}
        self._storage: TimedStorage | None = None
        self._renewed_ok = False
        self._warned_for = 0.0
        self._last_failure: str | None = None
        self._release_on_stop = False
        self._stop = runtime.event()
        self._wake = runtime.event()  # set by stop/fail and by renew_now
        self._lock = threading.Lock()
        self._last_attempt = 0.0
        # Lease ballots in flight in this lockspace: set to abort them (failed, or being removed), and
        # counted so the host id is not freed while one of them may still write (issue 8).
        self.acquire_abort = runtime.event()
        self._ballots = 0
        self._no_ballots = runtime.event()
        self._no_ballots.set()
        self._thread = threading.Thread(target=self.run, name=f"ls:{spec.name}", daemon=True)

    # ------------------------------------------------------------------ life cycle

    @property
    def io_timeout(self) -> int:
        return self.timeouts.io_timeout

    @property
    def last_success(self) -> float:
        return self.delta.last_success if self.delta is not None else 0.0

    @property
    def label(self) -> str:
        return format_lockspace(self.spec)

    def start(self) -> None:
        """Run the lockspace's task (join, renew, leave) in the background (runtime.spawn)."""
        if self.runtime.spawn is SYSTEM_RUNTIME.spawn:
            self._thread.start()  # a named thread the stop() below can join
        else:
            self.runtime.spawn(f"ls:{self.name}", self.run)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def begin_close(self) -> None:
        """rem_lockspace starts: refuse new acquires and abort the ballots in flight."""
        self.closing = True
        self.acquire_abort.set()

    def cancel_close(self) -> None:
        self.closing = False
        if self.state == LockspaceState.JOINED:
            self.acquire_abort = self.runtime.event()

    def ballot_started(self) -> threading.Event:
        """A lease ballot begins in this lockspace; returns the Event that aborts it."""
        with self._lock:
            self._ballots += 1
            self._no_ballots.clear()
            return self.acquire_abort

    def ballot_ended(self) -> None:
        with self._lock:
            self._ballots -= 1
            if self._ballots == 0:
                self._no_ballots.set()

    def stop(self, release: bool) -> None:
        """End the thread; with ``release`` a joined lockspace frees its host id on disk first."""
        with self._lock:
            if self.state == LockspaceState.JOINED:
                self.state = LockspaceState.REM
                self._release_on_stop = release
            elif self.state == LockspaceState.ADD:
                self.state = LockspaceState.REM
        self._stop.set()
        self._wake.set()
        self.acquire_abort.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def fail(self, reason: str) -> bool:
        """Lose the lease: no more renewals and no release write. False if already failed or removed."""
        with self._lock:
            if self.state != LockspaceState.JOINED:
                return False
            self.state = LockspaceState.FAILED
            self.failed_reason = reason
            self.failed_at = self.clock()
        self._stop.set()
        self._wake.set()
        self.acquire_abort.set()
        log.error("s %s: lease lost: %s (last good renewal %.1f s ago)", self.name, reason,
                  self.clock() - self.last_success)
        self.hooks.lockspace_failed(self, reason)
        return True

    def renew_now(self) -> None:
        """Renew at once instead of at the next 2·io tick: a bit just set (request or event) then
        reaches the other host up to 2·io sooner. Renewing early is harmless: only a change matters."""
        self._wake.set()

    def set_event(self, host_id: int, generation: int, event: int, data: int) -> int:
        """Send an event to ``host_id`` (generation 0: the one it has now) with the next renewal; returns
        the generation used. EAGAIN unless joined."""
        delta, table = self.delta, self.table
        if delta is None or self.state != LockspaceState.JOINED:
            raise LockError("EAGAIN", f"lockspace {self.name} is {self.state}, not joined")
        if generation == 0 and table is not None:
            info = table.info(host_id)
            generation = info.generation if info is not None else 0
        delta.set_event(host_id, generation, event, data)
        self.renew_now()
        return generation

    def recent_events(self) -> list[dict[str, object]]:
        return list(self.events)

    def forget(self) -> None:
        """Recovery is over (every holder is gone): drop the watchdog registration and the storage."""
        with contextlib.suppress(LockError):
            self.watchdog.unregister(self.wd_name)
        if self._storage is not None:
            self._storage.close()

    # ------------------------------------------------------------------ thread

    def run(self) -> None:
        """The lockspace's task: join, renew until stopped or failed, leave."""
        if not self.join():
            return
        while self.wait_renewal():
            self.renew_step()
            if self.state != LockspaceState.JOINED:
                break
        self.finish()

    def join(self) -> bool:
        """Join (delta acquire, then a first renewal); False if it failed (reported to the caller)."""
        try:
            self._join()
        except BaseException as exc:  # reported to the add_lockspace caller
            with self._lock:
                self.state = LockspaceState.REM
            area = [Area(self.spec.path, self.spec.offset, "lockspace")]  # errors.py: the one mapping
            self.error = error_document(storage_error(exc, area) if isinstance(exc, OSError) else exc)
            log.error("s %s: join failed: %s", self.label, exc)
            if self._storage is not None:
                self._storage.close()
            # Gone from the daemon's table (with its error remembered) before the caller hears of the
            # failure: an inq_lockspace right after the reply must not still find it.
            self.hooks.lockspace_ended(self)
            self.joined.set_exception(exc)
            return False
        self._last_attempt = self.clock()
        return True

    def finish(self) -> None:
        """After the renewals ended: a removed lockspace leaves (a failed one is the supervisor's)."""
        if self.state == LockspaceState.REM:
            self._leave()
            self.hooks.lockspace_ended(self)

    def _progress(self, message: str) -> None:
        self.progress = message
        log.info("s %s: %s", self.label, message)

    def _join(self) -> None:
        self._progress(f"joining as host id {self.host_id} with io_timeout {self.io_timeout} s")
        self._storage = TimedStorage(self._open_storage(), self.clock)
        delta = DeltaLease(
            self._storage, self.name, self.host_id, self.spec.offset, host_name=self.host_name,
            io_timeout=self.io_timeout, fire_timeout=self.timeouts.fire_timeout, clock=self.clock,
            sleep=self.runtime.sleep, released=self._releases.take(self._slot),
        )
        self.delta = delta
        delta.acquire(abort=self._stop, progress=self._progress)
        self.table = HostTable(self.name, delta.geometry, self.host_id, self.timeouts.fire_timeout, self.io_timeout)
        self.liveness = DeltaOwnerLiveness(
            self.query_storage, self.spec.offset, self.name, delta.geometry, io_timeout=self.io_timeout,
            fire_timeout=self.timeouts.fire_timeout, table=self.table, clock=self.clock,
        )
        # Renew at once: acquire's last_success is from before its 2·io wait, and that wait uses the
        # io_timeout in the slot (the previous owner's, or init's -o), which may be longer than 8·io of
        # ours. A fresh renewal also fills the host table now rather than 2·io later.
        start = self.clock()
        area = delta.renew()
        self.history.append(Renewal(int(start), self._storage.read_ms, self._storage.write_ms, 0))
        self.table.observe(area, start)
        with self._lock:
            joined = self.state == LockspaceState.ADD
            if joined:
                self.watchdog.register(self.wd_name, self.timeouts.expiry(delta.last_success))
                self.state = LockspaceState.JOINED
                self.generation = delta.generation
                self._renewed_ok = True
        if not joined:  # removed while the acquire finished: give the slot straight back
            try:
                delta.release()
                self._releases.remember(self._slot, delta.released)
            except (LockError, OSError) as exc:
                log.error("s %s: releasing the host id after a cancelled join failed: %s", self.label, exc)
            raise LockError("EAGAIN", f"lockspace {self.name} was removed while joining")
        self.progress = "joined"
        log.info("s %s: joined, generation %d, %s; watchdog_fire_timeout %d s (every host of this lockspace must "
                 "use the same: others count our death with theirs)", self.label, delta.generation,
                 delta.geometry.describe(), self.timeouts.fire_timeout)
        self.joined.set_result(self.describe())

    def next_renewal_at(self) -> float:
        """When the next renewal is due: 2·io after the last good one, sooner after a failure."""
        assert self.delta is not None
        if self._renewed_ok:
            return self.delta.last_success + self.timeouts.id_renewal_seconds
        return self._last_attempt + self.timeouts.renewal_retry_seconds

    def wait_renewal(self) -> bool:
        """Wait until the next renewal is due (or renew_now); False once the lockspace is stopped."""
        self.runtime.wait(self._wake, self.next_renewal_at() - self.clock())
        self._wake.clear()
        return not self._stop.is_set()

    def renew_step(self) -> None:
        """One renewal attempt: the step the renewal task repeats (and the simulator calls)."""
        self._last_attempt = self.clock()
        try:
            self._renew_once()
        except Exception:  # a bug: count it as a failed renewal; 8·io later the lease is lost
            log.exception("s %s: renewal crashed", self.name)
            self._renewed_ok = False

    def _renew_once(self) -> None:
        assert self.delta is not None and self.table is not None and self._storage is not None
        start = self.clock()
        st = self._storage
        st.read_ms = st.write_ms = 0.0
        try:
            area = self.delta.renew()
        except (LockError, OSError) as exc:
            self._renewed_ok = False
            err = as_lock_error(exc)  # an I/O failure by its errno's name, as sanlock's history keeps -errno
            self.history.append(Renewal(int(start), st.read_ms, st.write_ms, err.code, err.name))
            if err.name in CORRUPT:
                self.fail(f"renewal found our delta lease corrupt: {exc}")
            elif self.clock() - self.delta.last_success >= self.timeouts.id_renewal_fail_seconds:
                self.fail(f"renewal failed for {self.timeouts.id_renewal_fail_seconds} s (8·io): {exc}")
            elif str(exc) != self._last_failure:
                # Retries come every 0.5 s: log each new error once, not every attempt.
                self._last_failure = str(exc)
                log.warning("s %s: renewal failed (retrying every %.1f s until 8·io): %s", self.name,
                            self.timeouts.renewal_retry_seconds, exc)
            return
        if self.state != LockspaceState.JOINED:
            return  # failed by the supervisor while this renewal hung: a late success changes nothing
        if self._last_failure is not None:
            log.info("s %s: renewal succeeded again after failures", self.name)
            self._last_failure = None
        self._renewed_ok = True
        self._warned_for = 0.0
        self.history.append(Renewal(int(start), st.read_ms, st.write_ms, 0))
        try:
            self.watchdog.update(self.wd_name, self.timeouts.expiry(self.delta.last_success))
        except LockError as exc:
            self.fail(str(exc))
            return
        events = self.table.observe(area, start)
        if events:
            self._handle_events(events, start)

    def _handle_events(self, events: list[HostEvent], now: float) -> None:
        senders = []
        for ev in events:
            senders.append(ev.host_id)
            if ev.event == 0:
                continue
            key = (ev.generation, ev.event, ev.data)
            if self._last_event.get(ev.host_id) == key:
                continue  # the sender keeps the bit set for 6·io: one delivery per event
            self._last_event[ev.host_id] = key
            self.events.append({"host_id": ev.host_id, "generation": ev.generation, "event": ev.event,
                                "data": ev.data, "monotime": int(now)})
            log.info("s %s: event from host %d: generation %d event %d data %d", self.name, ev.host_id,
                     ev.generation, ev.event, ev.data)
        self.hooks.requests_seen(self, senders)

    def _leave(self) -> None:
        """Clean removal: free our slot on disk, then stop protecting it with the watchdog.

        A lease ballot still in flight (aborted, but perhaps inside a write) could land after another
        host took our host id: wait for it to end first (at most its I/O timeout)."""
        while not self._no_ballots.is_set():
            self.runtime.wait(self._no_ballots, self.timeouts.io_timeout)
        if self._release_on_stop and self.delta is not None:
            try:
                self.delta.release()
                self._releases.remember(self._slot, self.delta.released)
                log.info("s %s: host id released%s", self.label,
                         "" if self.delta.released else " (after its lease's expiry: a rejoin waits)")
            except (LockError, OSError) as exc:
                log.error("s %s: releasing the host id failed: %s", self.label, exc)
        self.forget()

    # ------------------------------------------------------------------ supervisor checks

    def check_deadline(self, now: float) -> float | None:
        """Called by the supervisor: fail at 8·io, warn at 6·io. Returns when to look again."""
        if self.state != LockspaceState.JOINED:
            return None
        last = self.last_success
        fail_at = last + self.timeouts.id_renewal_fail_seconds
        warn_at = last + self.timeouts.id_renewal_warn_seconds
        if now >= fail_at:
            self.fail(f"no good renewal for {now - last:.1f} s (limit 8·io = {self.timeouts.id_renewal_fail_seconds} s)")
            return None
        if now >= warn_at:
            if self._warned_for != last:
                self._warned_for = last
                log.warning("s %s: check_our_lease warning: last good renewal %.1f s ago", self.name, now - last)
            return fail_at
        return warn_at

    # ------------------------------------------------------------------ views

    def describe(self, detail: bool = False) -> dict[str, Any]:
        now = self.clock()
        out: dict[str, Any] = {
            "lockspace": self.name, "host_id": self.host_id, "path": self.spec.path, "offset": self.spec.offset,
            "io_timeout": self.io_timeout, "generation": self.generation, "state": self.state,
            "renewal_last_success": int(self.last_success) if self.last_success else 0,
        }
        if self.state == LockspaceState.ADD:
            out["progress"] = self.progress
        if self.state == LockspaceState.FAILED:
            out["failed_reason"] = self.failed_reason
        if self.error is not None:
            out["error"] = self.error
        if detail:
            out["host_name"] = self.host_name
            out["last_success"] = round(self.last_success, 3)  # CLOCK_MONOTONIC seconds, as time.monotonic()
            out["renewal_age"] = round(now - self.last_success, 3) if self.last_success else None
            out["timeouts"] = self.timeouts.as_dict()
            if self.delta is not None:
                g = self.delta.geometry
                out.update(sector_size=g.sector_size, align_size=g.align_size, max_hosts=g.max_hosts)
        return out

    def hosts(self) -> list[dict[str, Any]]:
        if self.table is None:
            raise LockError("EAGAIN", f"lockspace {self.name} is not joined yet: hosts not ready")
        now = self.clock()
        out = []
        for h in self.table.hosts(now):
            d = h.as_dict()
            d.pop("first_check", None)
            d["last_check"] = round(h.last_check, 3)
            d["last_live"] = round(h.last_live, 3)
            out.append(d)
        return out

    def renewals(self) -> list[dict[str, object]]:
        return [r.as_dict() for r in list(self.history)]
