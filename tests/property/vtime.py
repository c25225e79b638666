"""Virtual time for many simulated hosts in one process: a lock-step, discrete-event scheduler.

Every simulated activity (a host's renewal loop, its watchdog, its workload) is an *actor*: a real
thread that runs only when the scheduler hands it the baton, and gives it back whenever it sleeps.
Sleeps are on a virtual clock, so a 10 s host_dead wait costs nothing. ``FaultyStorage`` sleeps
through the same clock before every I/O (its gate and its delays), so every read and write of every
host is a scheduling point: the scheduler always wakes the actor with the earliest wake time, and
breaks ties with its own ``random.Random``. Given the seed, a run is fully deterministic, which is
what lets hypothesis replay and shrink a failing interleaving.

I/O itself is real (O_DIRECT on a file) and happens atomically while its actor holds the baton, so
the disk state between two scheduling points is well defined and the invariant checker, which runs
at every scheduling point, sees every state the disk goes through.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lockengine.errors import LockError

REAL_GUARD = 60.0  # real seconds an actor may run without yielding before the scheduler gives up


class SimAbort(BaseException):
    """Raised inside an actor that was killed; BaseException so engine code never swallows it."""


class SimStuck(AssertionError):
    pass


@dataclass(eq=False)
class Actor:
    name: str
    fn: Callable[[], None]
    wake_at: float
    seq: int
    state: str = "new"  # new | sleeping | running | done
    killed: bool = False
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


class VirtualTime:
    def __init__(self, rng: random.Random, start: float = 1000.0) -> None:
        self.now = start
        self.rng = rng
        self.steps = 0
        self._cond = threading.Condition()
        self._actors: list[Actor] = []
        self._by_thread: dict[int, Actor] = {}
        self._running: Actor | None = None
        self._seq = itertools.count()

    # ------------------------------------------------------------------ clock and sleeps

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Yield to the scheduler until ``seconds`` of virtual time have passed.

        Outside an actor (test set-up on the main thread) it just moves the clock on."""
        actor = self._by_thread.get(threading.get_ident())
        if actor is None:
            self.now += max(0.0, seconds)
            return
        with self._cond:
            if actor.killed:
                raise SimAbort(actor.name)
            actor.wake_at = self.now + max(0.0, seconds)
            actor.seq = next(self._seq)
            actor.state = "sleeping"
            self._running = None
            self._cond.notify_all()
            while self._running is not actor:
                self._cond.wait()
            if actor.killed:
                raise SimAbort(actor.name)

    def engine_sleep(self, seconds: float, abort: threading.Event | None, what: str) -> None:
        """The ``sleep=`` the lease classes take (abortable_sleep's signature)."""
        if abort is not None and abort.is_set():
            raise LockError("ERROR", f"{what}: aborted")
        self.sleep(seconds)

    def io_gate(self, op: str, offset: int, length: int) -> None:
        """FaultyStorage's gate: every I/O yields, so the scheduler picks the order of all I/O."""
        self.sleep(0.0)

    # ------------------------------------------------------------------ actors

    def spawn(self, name: str, fn: Callable[[], None], delay: float = 0.0) -> Actor:
        actor = Actor(name, fn, self.now + max(0.0, delay), next(self._seq))
        thread = threading.Thread(target=self._body, args=(actor,), name=f"sim:{name}", daemon=True)
        actor.thread = thread
        with self._cond:
            self._actors.append(actor)
            actor.state = "sleeping"
        thread.start()
        return actor

    def kill(self, actor: Actor) -> None:
        """The actor dies at its next scheduling point (now, if it is asleep): no more I/O from it."""
        with self._cond:
            if actor.state == "done":
                return
            actor.killed = True
            if actor.state == "sleeping":
                actor.wake_at = min(actor.wake_at, self.now)

    def current(self) -> Actor | None:
        return self._by_thread.get(threading.get_ident())

    def _body(self, actor: Actor) -> None:
        self._by_thread[threading.get_ident()] = actor
        with self._cond:
            while self._running is not actor:
                self._cond.wait()
        try:
            if not actor.killed:
                actor.fn()
        except SimAbort:
            pass
        except BaseException as exc:  # reported by run(): an actor may only fail in expected ways
            actor.error = exc
        finally:
            # Thread ids are reused: forget ours so a later thread is never taken for this actor.
            self._by_thread.pop(threading.get_ident(), None)
            with self._cond:
                actor.state = "done"
                self._running = None
                self._cond.notify_all()

    # ------------------------------------------------------------------ scheduler

    def run(self, until: float, check: Callable[[], None] | None = None, max_steps: int = 200_000) -> None:
        """Run actors until none is left or the clock would pass ``until``; ``check`` runs at every
        scheduling point, with every actor parked. Leftover actors are killed and drained."""
        try:
            self._loop(until, check, max_steps)
        finally:
            self._drain()
        errors = [a for a in self._actors if a.error is not None]
        if errors:
            raise errors[0].error from None  # type: ignore[misc]

    def _wait_parked(self) -> None:
        while self._running is not None:
            if not self._cond.wait(REAL_GUARD):
                raise SimStuck(f"actor {self._running.name} did not yield for {REAL_GUARD} s of real time")

    def _pick(self, until: float | None) -> Actor | None:
        sleepers = [a for a in self._actors if a.state == "sleeping"]
        if not sleepers:
            return None
        t = min(a.wake_at for a in sleepers)
        if until is not None and t > until:
            return None
        ties = sorted((a for a in sleepers if a.wake_at == t), key=lambda a: a.seq)
        chosen = ties[0] if len(ties) == 1 else self.rng.choice(ties)
        self.now = max(self.now, t)
        return chosen

    def _hand(self, actor: Actor) -> None:
        actor.state = "running"
        self._running = actor
        self._cond.notify_all()

    def _loop(self, until: float, check: Callable[[], None] | None, max_steps: int) -> None:
        with self._cond:
            while True:
                self._wait_parked()
                if check is not None:
                    check()
                chosen = self._pick(until)
                if chosen is None:
                    return
                self.steps += 1
                if self.steps > max_steps:
                    raise SimStuck(f"more than {max_steps} scheduling steps")
                self._hand(chosen)

    def _drain(self) -> None:
        """Kill every actor still alive and let each unwind (they raise SimAbort where they sleep)."""
        with self._cond:
            self._wait_parked()
            for a in self._actors:
                if a.state != "done":
                    a.killed = True
            while True:
                self._wait_parked()
                left = sorted((a for a in self._actors if a.state == "sleeping"), key=lambda a: a.seq)
                if not left:
                    break
                self._hand(left[0])
        for a in self._actors:
            if a.thread is not None:
                a.thread.join(REAL_GUARD)
