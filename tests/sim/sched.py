"""A deterministic, seeded scheduler of simulated tasks over simulated time.

Each task (a lockspace's renewal task, the supervisor, the watchdog multiplexer, a worker, a client
program) is an *actor* whose code may block deep inside production calls (a ballot's sleeps, a
storage read). So an actor runs on its own thread, but only while it holds the baton: exactly one
actor runs at any moment, and it hands the baton back whenever it sleeps or does I/O (both go through
this scheduler). Threads never race; the order is the seed's. Timers (a watchdog firing, a late write
landing, a fault starting) run on the scheduler's own thread between actor steps.

The next thing to run is the earliest wake-up; ties are broken by the seeded ``random.Random``.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

REAL_GUARD = 120.0  # real seconds an actor may run without yielding before the run is declared stuck


class SimAbort(BaseException):
    """Raised inside an actor whose process was killed; BaseException so engine code never swallows it."""


class SimStuck(AssertionError):
    pass


@dataclass(eq=False)
class Proc:
    """A simulated process: its actors die together; a frozen process's actors do not run."""

    name: str
    alive: bool = True
    frozen_until: float = 0.0
    actors: list[Actor] = field(default_factory=list)


@dataclass(eq=False)
class Actor:
    name: str
    proc: Proc
    fn: Callable[[], None]
    sem: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    token: int = 0
    killed: bool = False
    done: bool = False
    started: bool = False
    error: BaseException | None = None
    on_done: list[Callable[[Actor], None]] = field(default_factory=list)


class Scheduler:
    def __init__(self, rng: random.Random, start: float = 1000.0) -> None:
        self.now = start
        self.rng = rng
        self.steps = 0
        self._heap: list[tuple[float, float, int, object]] = []
        self._seq = itertools.count()
        self._local = threading.local()
        self._main = threading.Semaphore(0)
        self._errors: list[tuple[str, BaseException]] = []
        self._live: dict[int, Actor] = {}
        self.after_step: Callable[[Actor | None], None] = lambda a: None

    # ------------------------------------------------------------------ inside actors

    def current(self) -> Actor | None:
        return getattr(self._local, "actor", None)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        actor = self.current()
        if actor is None:
            raise RuntimeError("sleep outside an actor")
        if actor.killed:
            raise SimAbort(actor.name)
        self._push(self.now + max(0.0, seconds), actor)
        self._main.release()
        actor.sem.acquire()
        if actor.killed:
            raise SimAbort(actor.name)

    def block(self) -> None:
        """Park the current actor until ``wake(actor)``."""
        actor = self.current()
        assert actor is not None
        if actor.killed:
            raise SimAbort(actor.name)
        actor.token += 1  # no timed wake-up is valid any more
        self._main.release()
        actor.sem.acquire()
        if actor.killed:
            raise SimAbort(actor.name)

    def wake(self, actor: Actor, delay: float = 0.0) -> None:
        if not actor.done:
            self._push(self.now + delay, actor)

    # ------------------------------------------------------------------ outside

    def spawn(self, name: str, proc: Proc, fn: Callable[[], None], delay: float = 0.0) -> Actor:
        actor = Actor(name, proc, fn)
        proc.actors.append(actor)
        if not proc.alive:
            actor.done = actor.killed = True
            return actor
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

    def _body(self, actor: Actor) -> None:
        self._local.actor = actor
        actor.sem.acquire()
        try:
            if not actor.killed:
                actor.fn()
        except SimAbort:
            pass
        except BaseException as exc:  # an actor may only fail in expected ways: the run reports it
            actor.error = exc
            self._errors.append((actor.name, exc))
        finally:
            actor.done = True
            self._main.release()

    def _finished(self, actor: Actor) -> None:
        for cb in actor.on_done:
            cb(actor)
        actor.on_done.clear()

    def _run_actor(self, actor: Actor) -> None:
        if not actor.started:
            actor.started = True
            self._live[id(actor)] = actor
            threading.Thread(target=self._body, args=(actor,), name=f"sim:{actor.name}", daemon=True).start()
        actor.sem.release()
        if not self._main.acquire(timeout=REAL_GUARD):
            raise SimStuck(f"actor {actor.name} did not yield for {REAL_GUARD} s of real time")
        if actor.done:
            self._live.pop(id(actor), None)
            proc = actor.proc
            if actor in proc.actors:
                proc.actors.remove(actor)
            self._finished(actor)

    def run(self, until: float, max_steps: int = 50_000_000) -> None:
        while self._heap:
            t, _, _, item = self._heap[0]
            if t > until:
                break
            heapq.heappop(self._heap)
            if isinstance(item, tuple):
                actor, token = item
                if token != actor.token or actor.done:
                    continue
                if actor.proc.frozen_until > t and not actor.killed:
                    self._push(actor.proc.frozen_until, actor)
                    continue
                self.now = max(self.now, t)
                self.steps += 1
                if self.steps > max_steps:
                    raise SimStuck(f"more than {max_steps} steps")
                self._run_actor(actor)
                if self._errors:
                    name, exc = self._errors[0]
                    raise AssertionError(f"actor {name} failed: {exc!r}") from exc
                self.after_step(actor)
            else:
                self.now = max(self.now, t)
                item()  # type: ignore[operator]
                self.after_step(None)
        self.now = max(self.now, until)

    def shutdown(self) -> None:
        """Kill and unwind every actor still alive, so no thread is left behind."""
        self._heap.clear()
        for actor in list(self._live.values()):
            actor.killed = True
            if not actor.done:
                self._run_actor(actor)
        self._live.clear()
