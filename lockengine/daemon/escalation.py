"""Stopping lease holders: recovery after a lost lockspace, and requests from other hosts (facts §8, §10).

Recovery of a failed lockspace signals every process holding a lease in it, each at most once a
second and at most KILL_COUNT_MAX times:
  * until last_success + 8·io + kill_grace: the holder's killpath program (once) if it registered
    one and kill_grace > 0, else SIGTERM;
  * from then on (or at once for rem_lockspace and forced shutdown): SIGKILL.
A client that restricted itself (sanlock's RESTRICT_SIGKILL / RESTRICT_SIGTERM) gets the other signal
instead, on every path that signals a holder (``restricted``); a holder that survives its signals is
still ended by the watchdog, which stops petting at 8·io whatever the holders do.
When no holder is left the lockspace is dropped and its watchdog registration removed, so petting
resumes; the watchdog itself stopped petting at 8·io (the multiplexer's expiry), so a holder that
cannot be killed gets the host reset before other hosts may take its leases.

One supervisor thread does all of this. It sleeps until the next deadline (a lockspace's 6·io
warning or 8·io failure, or the next kill tick) instead of polling.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from .clients import Client
from .counters import CAUSE_RECOVERY, ESCALATION, STEP_KILLPATH, STEP_SIGKILL, STEP_SIGTERM, Counters
from .lockspace import Lockspace
from .log import get_logger
from .orphans import is_orphan_holder
from .proc import SYSTEM_RUNTIME, Runtime

log = get_logger("escalation")

KILL_COUNT_MAX = 100
KILL_INTERVAL = 1.0
IDLE_WAKE = 3600.0


class Action(StrEnum):
    """One escalation step for one lease holder (its value is what the log says)."""

    SIGTERM = "SIGTERM"
    SIGKILL = "SIGKILL"
    KILLPATH = "killpath"
    WAIT = "wait"  # its killpath program was run: give it until the SIGKILL time


@dataclass
class Recovery:
    ls: Lockspace
    started: float
    sigkill_at: float
    forced: bool
    reason: str
    stuck: set[int] = field(default_factory=set)


def choose_action(now: float, rec: Recovery, client: Client, kill_grace: int) -> Action:
    """The signal for one holder at one tick (pure, so the timeline is unit-testable)."""
    if rec.forced or now >= rec.sigkill_at:
        return Action.SIGKILL
    if client.killpath and kill_grace > 0:
        return Action.WAIT if client.killpath_sent else Action.KILLPATH
    return Action.SIGTERM


def restricted(client: Client, action: Action) -> Action:
    """sanlock's restrict rule: SIGTERM in place of SIGKILL for a client that may not get SIGKILL, then
    SIGKILL in place of SIGTERM for one that may not get SIGTERM (both set: SIGKILL). Killpath is as is."""
    if action == Action.SIGKILL and client.no_sigkill:
        action = Action.SIGTERM
    if action == Action.SIGTERM and client.no_sigterm:
        action = Action.SIGKILL
    return action


def signal_holder(client: Client, action: Action, why: str, *, counters: Counters | None = None,
                  lockspace: str = "", cause: str = "") -> bool:
    """Send one escalation step and log it with the pid and the leases; False if the pid is gone.
    A step taken is counted in ``counters`` (escalation steps by lockspace, step and cause)."""
    action = restricted(client, action)
    if action == Action.KILLPATH:
        client.killpath_sent = True
        client.processes.run_killpath(client, why)  # the process-control seam (production: run_killpath)
        sent = True
    else:
        sig = signal.SIGKILL if action == Action.SIGKILL else signal.SIGTERM
        sent = client.signal(sig)
        if sent:
            log.warning("kill pid %d (%s) %s count %d: %s", client.pid, client.name, action, client.kill_count + 1,
                        why)
    if sent and counters is not None:
        step = {Action.KILLPATH: STEP_KILLPATH, Action.SIGKILL: STEP_SIGKILL}.get(action, STEP_SIGTERM)
        counters.inc(ESCALATION, lockspace=lockspace, step=step, cause=cause)
    return sent


class SupervisedDaemon(Protocol):
    """What the supervisor needs from the daemon."""

    def joined_lockspaces(self) -> list[Lockspace]: ...

    def holders(self, ls: Lockspace) -> dict[Client, list[str]]: ...

    def recovery_done(self, ls: Lockspace) -> None: ...


class Supervisor:
    def __init__(self, daemon: SupervisedDaemon, runtime: Runtime = SYSTEM_RUNTIME,
                 counters: Counters | None = None) -> None:
        self.daemon = daemon
        self.runtime = runtime
        self.counters = counters
        self.clock = runtime.clock
        self._recoveries: dict[int, Recovery] = {}
        self._cond = threading.Condition()
        self._kicked = runtime.event()
        self._stopping = False
        self._thread = threading.Thread(target=self.run, name="supervisor", daemon=True)

    def start(self) -> None:
        if self.runtime.spawn is SYSTEM_RUNTIME.spawn:
            self._thread.start()
        else:
            self.runtime.spawn("supervisor", self.run)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
        self._kicked.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def kick(self) -> None:
        """Something changed (a join, a failure, a client exit): look again now."""
        self._kicked.set()

    def recover(self, ls: Lockspace, reason: str, *, forced: bool = False) -> None:
        now = self.clock()
        sigkill_at = now if forced else ls.last_success + ls.timeouts.sigkill_seconds
        with self._cond:
            old = self._recoveries.get(id(ls))
            if old is not None:
                old.forced = old.forced or forced
                if forced:
                    old.sigkill_at = min(old.sigkill_at, now)
            else:
                self._recoveries[id(ls)] = Recovery(ls, now, sigkill_at, forced, reason)
                log.error("s %s: recovery: %s; holders get %s until %.1f s from now, then SIGKILL", ls.name,
                          reason, "SIGKILL" if forced else "killpath/SIGTERM", max(0.0, sigkill_at - now))
        self._kicked.set()

    def recovering(self) -> list[Recovery]:
        with self._cond:
            return list(self._recoveries.values())

    # ------------------------------------------------------------------ thread

    def run(self) -> None:
        """The supervisor's task: a pass, then sleep until the next deadline or a kick."""
        while True:
            with self._cond:
                if self._stopping:
                    return
            wake = self.supervise_once()
            with self._cond:
                if self._stopping:
                    return
            self.runtime.wait(self._kicked, wake - self.clock())
            self._kicked.clear()

    def supervise_once(self) -> float:
        """One supervisor pass (the step the task repeats); returns when the next one is due."""
        now = self.clock()
        try:
            return self._pass(now)
        except Exception:  # a bug here must never end deadline checks silently
            log.exception("supervisor pass failed")
            return now + KILL_INTERVAL

    def _pass(self, now: float) -> float:
        wake = now + IDLE_WAKE
        for ls in self.daemon.joined_lockspaces():
            at = ls.check_deadline(now)
            if at is not None:
                wake = min(wake, at)
        for rec in self.recovering():
            at = self._tick(rec, now)
            if at is None:
                with self._cond:
                    self._recoveries.pop(id(rec.ls), None)
                log.warning("s %s: recovery done: all pids clear after %.1f s", rec.ls.name, now - rec.started)
                self.daemon.recovery_done(rec.ls)
            else:
                wake = min(wake, at)
        return wake

    def _tick(self, rec: Recovery, now: float) -> float | None:
        """Signal the holders that are due; None when no holder is left."""
        holders = self.daemon.holders(rec.ls)
        # A holder counts until its connection closes: a child that inherited it may use the leases.
        live = {c: leases for c, leases in holders.items() if c.holding()}
        if not live:
            return None
        grace = rec.ls.timeouts.kill_grace_seconds
        wake = now + KILL_INTERVAL
        for client, leases in live.items():
            if is_orphan_holder(client):  # no process: only its user (or the watchdog) ends these
                if client.conn_id not in rec.stuck:
                    rec.stuck.add(client.conn_id)  # negative: never a pid
                    log.error("s %s: %s: no process to stop; the watchdog resets the host unless released "
                              "(REL_ORPHAN, set_config UNUSED)", rec.ls.name, ", ".join(leases))
                continue
            if client.kill_count >= KILL_COUNT_MAX:
                if client.pid not in rec.stuck:
                    rec.stuck.add(client.pid)
                    log.error("s %s: killing pids stuck: pid %d (%s) survived %d signals; holds %s", rec.ls.name,
                              client.pid, client.name, client.kill_count, ", ".join(leases))
                continue
            due = client.last_kill + KILL_INTERVAL
            if now < due:
                wake = min(wake, due)
                continue
            action = choose_action(now, rec, client, grace)
            if action == Action.WAIT:
                wake = min(wake, rec.sigkill_at)
                continue
            why = (f"lockspace {rec.ls.name} {rec.reason}; holds {', '.join(leases)}; "
                   f"SIGKILL at {max(0.0, rec.sigkill_at - now):.1f} s")
            if signal_holder(client, action, why, counters=self.counters, lockspace=rec.ls.name,
                             cause=CAUSE_RECOVERY):
                client.kill_count += 1
                client.last_kill = now
        return max(wake, now + 0.05)
