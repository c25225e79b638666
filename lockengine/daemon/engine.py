"""The daemon's state and its commands: lockspaces, registered clients, held leases, escalation.

``Daemon.dispatch`` runs quick, memory-only commands on the socket thread and everything that
touches a disk on a worker pool; a command may also answer later (a synchronous add_lockspace
answers when its join completes, without holding a worker for 2·io).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..config import Config, LockspaceConfig
from ..errors import InputError, LockError
from ..paxos import request as paxos_request
from ..states import LockspaceState
from ..storage import Borrowed
from ..strings import MAX_HOST_ID, LockspaceSpec
from ..watchdog.multiplexer import WatchdogMultiplexer
from . import commands
from .armed import ArmedMarker, ArmedState, refusal_message
from .clients import Client, ClientRegistry, PeerCred
from .counters import CAUSE_RENEWAL, CAUSE_REQUEST, ESCALATION, STEP_REQUEST, STEP_WATCHDOG, Counters
from .escalation import Action, Supervisor, signal_holder
from .lockspace import CleanReleases, Lockspace
from .log import RingHandler, get_logger
from .orphans import EXTERNAL
from .proc import SYSTEM_PROCESSES, SYSTEM_RUNTIME, ProcessControl, Runtime
from .protocol import VERSION, ProtocolError, Request, arg_int
from .resources import RequestAction, ResourceManager, StoragePool
from .workers import WorkerPool

log = get_logger()

Reply = Callable[[dict[str, Any] | BaseException], None]
REM_KILL_WAIT = 10.0  # seconds rem_lockspace/shutdown wait for SIGKILLed holders to go


def bit_seconds(ls: Lockspace, host_id: int) -> float:
    """How long to keep ``host_id``'s bit set for a request (Timeouts.request_bit_seconds)."""
    info = ls.table.info(host_id) if ls.table is not None else None
    return ls.timeouts.request_bit_seconds(info.io_timeout if info is not None else 0)


class CallContext:
    """Who is calling: the connection and the peer's kernel credentials."""

    def __init__(self, conn_id: int, cred: PeerCred, watch: Callable[[Client], None]) -> None:
        self.conn_id = conn_id
        self.cred = cred
        self.watch = watch


class Daemon:
    def __init__(
        self,
        config: Config,
        watchdog: WatchdogMultiplexer,
        ring: RingHandler | None = None,
        *,
        runtime: Runtime = SYSTEM_RUNTIME,
        processes: ProcessControl = SYSTEM_PROCESSES,
        armed: ArmedState | None = None,
    ) -> None:
        self.config = config
        self.watchdog = watchdog
        self.ring = ring
        self.runtime = runtime
        self.clock = runtime.clock
        self.armed = armed if armed is not None else ArmedMarker(config.run_dir)
        self.clients = ClientRegistry(processes)
        self.storages = StoragePool(runtime.open_storage)
        self.lockspaces: dict[str, Lockspace] = {}
        self.clean_releases = CleanReleases()  # rejoins without the busy wait (lockspace.py)
        self.last_errors: dict[str, dict[str, object]] = {}
        self._ls_lock = threading.Lock()
        self.counters = Counters()
        self.resources = ResourceManager(self.storages, self._lockspace, runtime, self.counters)
        self.supervisor = Supervisor(self, runtime, self.counters)
        self.pool = WorkerPool(32, "worker")  # workers.py: one queue put per command, no Future
        # Set when this daemon found its host unclean at start (an armed marker): no joins, no pets.
        self.refusing: str | None = None
        self.used_externally: set[Lockspace] = set()  # sanlock's SET_CONFIG USED (orphans.EXTERNAL)
        self.started = self.clock()
        self.stopping = False
        self.stopped = threading.Event()
        self._holders_event = runtime.event()
        self.on_stop: Callable[[], None] = lambda: None

    def start(self) -> None:
        """Start the watchdog, the supervisor and the configured lockspaces — unless a predecessor left
        the host armed (armed.py): then serve status only and let the watchdog reset the host."""
        prev = self.armed.previous()
        if prev is not None:
            self.refusing = refusal_message(prev, str(getattr(self.armed, "path", "run directory")))
            log.critical("%s", self.refusing)
            return
        system = self.runtime.spawn is SYSTEM_RUNTIME.spawn
        self.watchdog.on_registrations = self._registrations_changed
        self.watchdog.on_stopped = self._watchdog_stopped
        self.watchdog.start(thread=system)
        try:
            if not system:
                self.runtime.spawn("watchdog", self.watchdog.run)
            self.supervisor.start()
            for lsc in self.config.lockspaces:
                try:
                    self.add_lockspace(self._spec_of(lsc), lsc.io_timeout)
                except (LockError, InputError) as exc:
                    log.error("s %s: configured lockspace not joined: %s", lsc.name, exc)
        except BaseException:
            # A start that fails once the device is open must not leave it armed with nothing to
            # protect (the host would reset for no lease). shutdown(clean=True) disarms only while no
            # lockspace is registered; a joined lockspace keeps it armed, as its holders need.
            disarmed = self.watchdog.shutdown(clean=True)
            log.critical("start failed after the watchdog was opened; watchdog %s",
                         "disarmed" if disarmed else "left armed (a lockspace is registered)")
            raise

    def _registrations_changed(self, names: list[str]) -> None:
        if names:
            self.armed.set(os.getpid(), names)
        else:
            self.armed.clear()

    def _watchdog_stopped(self, registration: str) -> None:
        """Petting stopped because of this lockspace's registration (``lockengine_NAME:ID``): the last step."""
        name = registration.removeprefix("lockengine_").rpartition(":")[0] or registration
        self.counters.inc(ESCALATION, lockspace=name, step=STEP_WATCHDOG, cause=CAUSE_RENEWAL)

    @staticmethod
    def _spec_of(lsc: LockspaceConfig) -> LockspaceSpec:
        return LockspaceSpec(lsc.name, lsc.host_id, lsc.path, lsc.offset)

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, ctx: CallContext, req: Request, reply: Reply) -> None:
        handler = commands.HANDLERS.get(req.cmd)
        if handler is None:
            known = ", ".join(sorted(commands.HANDLERS))
            reply(ProtocolError(f"unknown command {req.cmd!r}; known: {known}", "cmd"))
            return
        fn, inline = handler
        if self.stopping and req.cmd not in commands.WHILE_STOPPING:
            reply(LockError("EAGAIN", "the daemon is shutting down"))
            return
        if inline:
            self._run(fn, ctx, req, reply)
        else:
            self.pool.submit(self._run, fn, ctx, req, reply)

    def _run(self, fn: commands.Handler, ctx: CallContext, req: Request, reply: Reply) -> None:
        try:
            result = fn(self, ctx, req.args)
        except (LockError, InputError, ProtocolError) as exc:
            reply(exc)
            return
        except Exception as exc:  # a bug: keep serving, tell the caller, keep the evidence
            log.exception("command %s failed", req.cmd)
            reply(exc)
            return
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda f: reply(f.exception() or f.result()))
        else:
            reply(result)

    # ------------------------------------------------------------------ clients

    def register(self, ctx: CallContext, name: str | None, killpath: list[str] | None) -> Client:
        client = self.clients.register(ctx.cred, ctx.conn_id, name)
        client.killpath = killpath
        ctx.watch(client)
        log.info("client pid %d (%s) registered", client.pid, client.name)
        return client

    def connection_closed(self, conn_id: int) -> None:
        client = self.clients.by_conn(conn_id)
        if client is not None:
            self._client_disconnected(client, "connection closed")

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Background work (releases, request examination): the worker pool, or the runtime's tasks."""
        if self.runtime.spawn is SYSTEM_RUNTIME.spawn:
            self.pool.submit(fn, *args)
        else:
            def task() -> None:
                fn(*args)

            self.runtime.spawn(getattr(fn, "__name__", "task"), task)

    def client_gone(self, client: Client, why: str) -> None:
        """The registered process exited (its pidfd fired). Its leases stay held while its registration
        connection is open: a child that inherited the connection may still use them (sanlock waits for
        the connection to close, too). The release comes with ``connection_closed``."""
        if client.gone or client.pid_exited:
            return
        client.pid_exited = True
        log.info("client pid %d (%s) exited (%s); its leases are released when its connection closes", client.pid,
                 client.name, why)

    def _client_disconnected(self, client: Client, why: str) -> None:
        if not self.clients.remove(client):
            return
        log.info("client pid %d (%s) gone: %s", client.pid, client.name, why)
        self.submit(self._release_client, client)

    def _release_client(self, client: Client) -> None:
        try:
            held = self.resources.client_exited(client)
            for h in held:
                log.info("r %s: released after pid %d exited", h.label, client.pid)
        finally:
            self._holders_event.set()
            self.supervisor.kick()

    def client_for(self, ctx: CallContext, args: dict[str, Any]) -> Client:
        """The client named by ``pid``, or the caller's own registration."""
        if args.get("pid") is not None:
            return self.clients.get(arg_int(args, "pid", low=1))
        client = self.clients.by_conn(ctx.conn_id)
        if client is None:
            raise LockError("ESRCH", "this connection has not registered: register first, or give \"pid\" of a "
                                     "registered process")
        return client

    # ------------------------------------------------------------------ lockspaces

    def _lockspace(self, name: str) -> Lockspace | None:
        with self._ls_lock:
            return self.lockspaces.get(name)

    def lockspace_list(self) -> list[Lockspace]:
        with self._ls_lock:
            return list(self.lockspaces.values())

    def lockspace(self, name: str) -> Lockspace:
        ls = self._lockspace(name)
        if ls is None:
            last = self.last_errors.get(name)
            hint = f"; the last add failed: {last['name']}: {last['message']}" if last else ""
            raise LockError("ENOENT", f"lockspace {name!r} is not joined on this host{hint}")
        return ls

    def add_lockspace(self, spec: LockspaceSpec, io_timeout: int | None) -> Lockspace:
        if self.refusing is not None:
            raise LockError("WD_ERROR", self.refusing)
        if spec.host_id < 1:
            raise InputError("host_id", spec.host_id, f"give this host's id in the lockspace, 1 to {MAX_HOST_ID}")
        if not os.path.exists(spec.path):
            raise InputError("path", spec.path, "give an existing block device or file")
        timeouts = self.config.timeouts(io_timeout)
        with self._ls_lock:
            old = self.lockspaces.get(spec.name)
            if old is not None:
                if old.spec != spec:
                    raise LockError("EINVAL", f"lockspace {spec.name!r} is already in use here as {old.label}")
                errs = {LockspaceState.ADD: "EINPROGRESS", LockspaceState.JOINED: "EEXIST",
                        LockspaceState.REM: "EAGAIN", LockspaceState.FAILED: "EAGAIN"}
                raise LockError(errs[old.state], f"lockspace {old.label} is {old.state} on this host")
            ls = Lockspace(
                spec, host_name=self.config.host_name, timeouts=timeouts, watchdog=self.watchdog, hooks=self,
                # Renewals share the path's lease handle (storage.Borrowed): no thread or buffer of their own.
                renewal_storage=lambda: Borrowed(self.storages.get(spec.path)),
                query_storage=self.storages.get(spec.path), runtime=self.runtime, releases=self.clean_releases,
            )
            self.lockspaces[spec.name] = ls
            self.last_errors.pop(spec.name, None)
        log.info("s %s: add_lockspace, io_timeout %d", ls.label, timeouts.io_timeout)
        ls.start()
        return ls

    def rem_lockspace(self, ls: Lockspace, unused: bool) -> None:
        """Stop the holders (SIGKILL at once, as sanlock does), then free our host id on disk."""
        if ls.state == LockspaceState.FAILED:
            raise LockError("EAGAIN", f"lockspace {ls.label} lost its lease and is recovering; it goes away "
                                      "by itself once every holder is stopped")
        blocked = self.unstoppable(ls)
        if blocked:  # no process to stop (orphans.py): only the user can end it
            raise LockError("EBUSY", f"lockspace {ls.label} {blocked}")
        holders = self.holders(ls)
        if holders and unused:
            pids = ", ".join(str(c.pid) for c in holders)
            raise LockError("EBUSY", f"lockspace {ls.label} has lease holders (pids {pids}); not removing it")
        ls.begin_close()  # no new acquires, and the ballots in flight abort, while the holders are stopped
        left = self._kill_holders(ls, "rem_lockspace")
        if left:
            ls.cancel_close()
            raise LockError("EBUSY", f"lockspace {ls.label}: holders {left} did not exit after SIGKILL; "
                                     "host id kept")
        ls.stop(release=True)
        log.info("s %s: removed", ls.label)

    def unstoppable(self, ls: Lockspace) -> str | None:
        """What keeps ``ls`` held with no process to stop (orphans.py), or None."""
        orphans = self.resources.orphans(ls.name)
        if orphans:
            return (f"holds orphan leases ({', '.join(h.label for h in orphans)}); release them (REL_ORPHAN) or "
                    "adopt them first")
        if ls in self.used_externally:
            return "is in use outside lockengine (set_config USED); clear it with set_config UNUSED first"
        return None

    def set_used(self, ls: Lockspace, used: bool) -> None:
        """sanlock's SET_CONFIG USED/UNUSED: while set, ``ls`` counts as held (orphans.EXTERNAL)."""
        if not used:
            self.used_externally.discard(ls)
        elif ls.state != LockspaceState.JOINED:
            raise LockError("ENOSPC", f"lockspace {ls.label} is {ls.state} on this host, not joined")
        else:
            self.used_externally.add(ls)
        log.info("s %s: set_config %s", ls.label, "USED" if used else "UNUSED")

    def _kill_holders(self, ls: Lockspace, why: str) -> list[int]:
        deadline = self.clock() + REM_KILL_WAIT
        last_sent = 0.0
        while True:
            holders = {c: h for c, h in self.holders(ls).items() if c.holding()}
            if not holders:
                return []
            now = self.clock()
            if now >= deadline:
                return [c.pid for c in holders]
            if now - last_sent >= 1.0:
                last_sent = now
                for client, leases in holders.items():
                    signal_holder(client, Action.SIGKILL, f"{why} of {ls.name}; holds {', '.join(leases)}",
                                  counters=self.counters, lockspace=ls.name, cause=why)
            self.runtime.wait(self._holders_event, 0.2)
            self._holders_event.clear()

    # hooks from Lockspace (LockspaceHooks)

    def lockspace_failed(self, ls: Lockspace, reason: str) -> None:
        self.supervisor.recover(ls, reason)

    def lockspace_ended(self, ls: Lockspace) -> None:
        with self._ls_lock:
            if self.lockspaces.get(ls.name) is ls:
                del self.lockspaces[ls.name]
            if ls.error is not None:
                self.last_errors[ls.name] = ls.error
        self.resources.drop_lockspace(ls.name)
        self.used_externally.discard(ls)
        self.supervisor.kick()

    def requests_seen(self, ls: Lockspace, senders: list[int]) -> None:
        self.submit(self.examine, ls)

    # hooks from Supervisor (SupervisedDaemon)

    def joined_lockspaces(self) -> list[Lockspace]:
        with self._ls_lock:
            return [ls for ls in self.lockspaces.values() if ls.state == LockspaceState.JOINED]

    def holders(self, ls: Lockspace) -> dict[Client, list[str]]:
        out: dict[Client, list[str]] = {}
        for h in self.resources.in_lockspace(ls.name):
            out.setdefault(h.client, []).append(h.label)
        if ls in self.used_externally:
            out[EXTERNAL] = ["used outside lockengine (set_config USED)"]
        return out

    def recovery_done(self, ls: Lockspace) -> None:
        ls.forget()
        with self._ls_lock:
            if self.lockspaces.get(ls.name) is ls:
                del self.lockspaces[ls.name]
            self.last_errors[ls.name] = {"name": "ERROR", "code": -201,
                                         "message": f"lease lost: {ls.failed_reason}"}
        self.resources.drop_lockspace(ls.name)
        self.used_externally.discard(ls)
        log.warning("s %s: dropped after recovery; add it again once storage is healthy", ls.label)

    # ------------------------------------------------------------------ requests

    def request(self, spec: Any, lver: int | None, force_mode: int) -> dict[str, Any]:
        ls = self._lockspace(spec.lockspace)
        io = ls.io_timeout if ls is not None else self.config.io_timeout
        leader = paxos_request(self.storages.get(spec.path), spec.offset, spec.lockspace, spec.name, lver,
                               force_mode, io_timeout=io)
        out: dict[str, Any] = {"owner_id": leader.owner_id, "owner_generation": leader.owner_generation,
                               "lver": leader.lver + 1 if lver is None else lver, "force_mode": force_mode}
        if leader.timestamp == 0:
            out.update(free=True, notified=False, message="the lease is free; nothing was written")
            return out
        out["free"] = False
        if ls is None or ls.state != LockspaceState.JOINED or ls.delta is None:
            out.update(notified=False, message=f"lockspace {spec.lockspace} is not joined here: the request is "
                                               "on disk, but the owner is told only when it examines")
        elif leader.owner_id == ls.host_id:
            acted = self.examine(ls)  # held on this host: act now, there is no bit to see
            out.update(notified=True, local=True, acted=[a.held.label for a in acted])
        else:
            ls.delta.request_bit(leader.owner_id, bit_seconds(ls, leader.owner_id))
            ls.renew_now()
            out.update(notified=True, local=False)
        log.info("r %s:%s: request lver %d mode %d written; owner host %d", spec.lockspace, spec.name, out["lver"],
                 force_mode, leader.owner_id)
        return out

    def examine(self, ls: Lockspace) -> list[RequestAction]:
        actions = self.resources.examine(ls.name)
        for a in actions:
            client = a.held.client
            action = Action.SIGKILL if a.force_mode == 1 else Action.KILLPATH if client.killpath else Action.SIGTERM
            mode = "force" if a.force_mode == 1 else "graceful"
            self.counters.inc(ESCALATION, lockspace=ls.name, step=STEP_REQUEST, cause=CAUSE_REQUEST)
            signal_holder(client, action, f"{mode} request for {a.held.label} (lver {a.req_lver})",
                          counters=self.counters, lockspace=ls.name, cause=CAUSE_REQUEST)
        return actions

    # ------------------------------------------------------------------ status

    def status(self, detail: bool) -> dict[str, Any]:
        with self._ls_lock:
            spaces = list(self.lockspaces.values())
        daemon: dict[str, Any] = {
            "host_name": self.config.host_name, "pid": os.getpid(), "version": __version__, "protocol": VERSION,
            "run_dir": self.config.run_dir, "fire_timeout": self.config.watchdog_fire_timeout,
            "kill_grace": self.config.kill_grace, "io_timeout": self.config.io_timeout,
            "watchdog": self.watchdog.status(), "monotime": int(self.clock()),
            "uptime": round(self.clock() - self.started, 1), "stopping": self.stopping,
            "refusing": self.refusing,
        }
        if detail:
            daemon["config"] = self.config.as_dict()
        return {
            "daemon": daemon,
            "lockspaces": [ls.describe(detail) for ls in spaces],
            "clients": [c.as_dict() for c in self.clients.all()],
            "resources": [h.as_dict() for h in self.resources.all()],
            "recovering": [{"lockspace": r.ls.name, "reason": r.reason, "forced": r.forced,
                            "sigkill_in": round(max(0.0, r.sigkill_at - self.clock()), 1)}
                           for r in self.supervisor.recovering()],
            "counters": self.counters.snapshot(),
        }

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, force: bool) -> dict[str, Any]:
        with self._ls_lock:
            spaces = list(self.lockspaces.values())
        if spaces and not force:
            names = ", ".join(ls.name for ls in spaces)
            raise LockError("EBUSY", f"lockspaces still joined ({names}); remove them first or use force")
        self.stopping = True
        threading.Thread(target=self._shutdown, args=(spaces,), name="shutdown", daemon=True).start()
        return {"stopping": True, "lockspaces": [ls.name for ls in spaces]}

    def _shutdown(self, spaces: list[Lockspace]) -> None:
        log.warning("shutting down: %d lockspace(s) to remove", len(spaces))
        for ls in spaces:
            try:
                if ls.state == LockspaceState.FAILED:
                    # Recovering: the holders get SIGKILL now rather than at 8·io + kill_grace.
                    left = self._kill_holders(ls, "shutdown")
                    if left:
                        raise LockError("EBUSY", f"holders {left} did not exit after SIGKILL")
                    self.recovery_done(ls)
                elif ls.state in (LockspaceState.ADD, LockspaceState.JOINED):
                    self.resources.release_orphans(ls.name, "")  # forced: orphans go, written while joined
                    self.used_externally.discard(ls)
                    self.rem_lockspace(ls, unused=False)
            except LockError as exc:
                # Left registered with the watchdog, which stays armed: nothing else stops them now.
                log.error("s %s: not removed cleanly: %s", ls.label, exc)
                ls.stop(release=False)
        self.supervisor.stop()
        clean = self.watchdog.shutdown(clean=True)
        log.warning("stopped (watchdog %s)", "disarmed" if clean else "left armed")
        self.storages.close()
        self.stopped.set()
        self.on_stop()

    def kill_self_signal(self, signum: int) -> None:
        """SIGTERM/SIGINT: a forced shutdown (systemctl stop must finish)."""
        log.warning("signal %s: forced shutdown", signal.Signals(signum).name)
        if not self.stopping:
            self.shutdown(force=True)

