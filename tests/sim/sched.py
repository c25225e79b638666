"""A deterministic, seeded scheduler of simulated tasks over simulated time.

Tasks come in two kinds:
  * *direct* tasks (timers): a function the scheduler calls at a simulated time — the watchdog
    multiplexer's pass, the supervisor's pass, a fault, a watchdog firing, a late write landing. They
    never block.
  * *actors*: code that blocks deep inside production calls (a ballot's sleeps, a renewal's storage
    I/O). An actor runs on its own thread, but only while it holds the baton: exactly one thread runs
    at any moment, and an actor passes the baton on whenever it sleeps or does I/O (both go through
    this scheduler). Threads never race; the order is the seed's.

Whoever holds the baton picks what runs next: the earliest entry, ties broken by the seeded
``random.Random``. Timers run inline; an actor gets the baton handed over directly (one thread switch
per step, none when the same actor goes on).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REAL_GUARD = 600.0  # real seconds the run may go without returning before it is declared stuck


def _locked() -> Any:
    """A plain lock, taken: the cheapest way for one thread to wait until another hands over."""
    lock = threading.Lock()
    lock.acquire()
    return lock


class SimAbort(BaseException):
    """Raised inside an actor whose process was killed; BaseException so engine code never swallows it."""


class SimStuck(AssertionError):
    pass


@dataclass(eq=False)
class Proc:
    """A simulated process: its actors die together; a frozen process's tasks do not run."""

    name: str
    alive: bool = True
    frozen_until: float = 0.0
    actors: list[Actor] = field(default_factory=list)
    owner: Any = None  # what the simulation attaches (its host)


@dataclass(eq=False)
class Actor:
    name: str
    proc: Proc
    fn: Callable[[], None]
    sem: Any = field(default_factory=_locked)  # a held Lock: release() hands the baton to this actor
    token: int = 0
    killed: bool = False
    done: bool = False
    started: bool = False
    on_done: list[Callable[[Actor], None]] = field(default_factory=list)


class Scheduler:
    def __init__(self, rng: random.Random, start: float = 1000.0) -> None:
        self.now = start
        self.rng = rng
        self.steps = 0
        self.until = start
        self._heap: list[tuple[float, float, int, Any]] = []
        self._seq = itertools.count()
        self._local = threading.local()
        self._main = _locked()
        self._errors: list[tuple[str, BaseException]] = []
        self._live: dict[int, Actor] = {}
        self._inline = False
        self.after_step: Callable[[Actor], None] = lambda a: None

    # ------------------------------------------------------------------ inside actors

    def current(self) -> Actor | None:
        if self._inline:
            return None
        return getattr(self._local, "actor", None)

    def clock(self) -> float:
        return self.now

    def _me(self) -> Actor:
        actor = self.current()
        if actor is None:
            raise RuntimeError("a direct task tried to block (sleep, I/O): only actors may")
        return actor

    def sleep(self, seconds: float) -> None:
        actor = self._me()
        if actor.killed:
            raise SimAbort(actor.name)
        self._push(self.now + max(0.0, seconds), actor)
        self._yield(actor)

    def block(self) -> None:
        """Park the current actor until ``wake(actor)``."""
        actor = self._me()
        if actor.killed:
            raise SimAbort(actor.name)
        actor.token += 1  # no earlier wake-up is valid any more
        self._yield(actor)

    def wake(self, actor: Actor, delay: float = 0.0) -> None:
        if not actor.done:
            self._push(self.now + delay, actor)

    def _yield(self, actor: Actor) -> None:
        self.after_step(actor)
        nxt = self._next()
        if nxt is not actor:
            self._handoff(nxt)
            actor.sem.acquire()
        if actor.killed:
            raise SimAbort(actor.name)

    # ------------------------------------------------------------------ scheduling

    def spawn(self, name: str, proc: Proc, fn: Callable[[], None], delay: float = 0.0) -> Actor:
        actor = Actor(name, proc, fn)
        if not proc.alive:
            actor.done = actor.killed = True
            return actor
        proc.actors.append(actor)
        self._push(self.now + max(0.0, delay), actor)
        return actor

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (max(t, self.now), self.rng.random(), next(self._seq), fn))

    def kill(self, proc: Proc) -> None:
        """Every actor of ``proc`` dies at its next scheduling point (now, for parked ones)."""
        proc.alive = False
        for a in proc.actors:
            if not a.done:
                a.killed = True
                if a.started:
                    self._push(self.now, a)
                else:
                    a.done = True
                    self._finished(a)
        proc.actors = [a for a in proc.actors if not a.done]

    def _push(self, t: float, actor: Actor) -> None:
        actor.token += 1
        heapq.heappush(self._heap, (t, self.rng.random(), next(self._seq), (actor, actor.token)))

    def _finished(self, actor: Actor) -> None:
        self._live.pop(id(actor), None)
        if actor in actor.proc.actors:
            actor.proc.actors.remove(actor)
        callbacks, actor.on_done = actor.on_done, []
        for cb in callbacks:
            cb(actor)

    def _next(self) -> Actor | None:
        """Run due timers inline; return the next actor to run, or None when the run should return."""
        heap = self._heap
        while heap and not self._errors:
            t, _, _, item = heap[0]
            if t > self.until:
                return None
            heapq.heappop(heap)
            if isinstance(item, tuple):
                actor: Actor = item[0]
                if item[1] != actor.token or actor.done:
                    continue
                if actor.proc.frozen_until > t and not actor.killed:
                    self._push(actor.proc.frozen_until, actor)
                    continue
                if t > self.now:
                    self.now = t
                self.steps += 1
                return actor
            if t > self.now:
                self.now = t
            self._inline = True
            try:
                item()
            except BaseException as exc:  # a bug in a direct task: the run reports it
                self._errors.append((getattr(item, "__name__", "timer"), exc))
            finally:
                self._inline = False
        return None

    def _handoff(self, nxt: Actor | None) -> None:
        if nxt is None:
            self._main.release()
        elif not nxt.started:
            nxt.started = True
            self._live[id(nxt)] = nxt
            threading.Thread(target=self._body, args=(nxt,), name=f"sim:{nxt.name}", daemon=True).start()
        else:
            nxt.sem.release()

    def _body(self, actor: Actor) -> None:
        self._local.actor = actor
        try:
            if not actor.killed:
                actor.fn()
        except SimAbort:
            pass
        except BaseException as exc:  # an actor may only fail in expected ways: the run reports it
            self._errors.append((actor.name, exc))
        actor.done = True
        self._finished(actor)
        self.after_step(actor)
        self._handoff(self._next())

    def run(self, until: float) -> None:
        self.until = until
        nxt = self._next()
        if nxt is not None:
            self._handoff(nxt)
            if not self._main.acquire(timeout=REAL_GUARD):
                raise SimStuck(f"no return to the scheduler for {REAL_GUARD} s of real time")
        if self._errors:
            name, exc = self._errors[0]
            raise AssertionError(f"task {name} failed: {exc!r}") from exc
        self.now = max(self.now, until)

    def shutdown(self) -> None:
        """Kill and unwind every actor still alive, so no thread is left behind."""
        self._heap = [e for e in self._heap if isinstance(e[3], tuple)]
        heapq.heapify(self._heap)
        for actor in list(self._live.values()):
            actor.killed = True
            self._push(self.now, actor)
        self._errors.clear()
        while self._live:
            self.until = self.now
            nxt = self._next()
            if nxt is None:
                break
            self._handoff(nxt)
            self._main.acquire(timeout=REAL_GUARD)
        self._heap.clear()
