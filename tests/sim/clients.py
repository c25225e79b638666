"""Simulated client processes: register, acquire, use, release, request, exit, crash, fork."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockengine.daemon.clients import Client, PeerCred
from lockengine.daemon.engine import CallContext, Daemon
from lockengine.errors import InputError, LockError

from .sched import Proc

if TYPE_CHECKING:
    from .host import Host
    from .world import World


class DaemonGone(Exception):
    """The daemon a client talked to died during the call (the client sees EOF)."""


class SimClientProc:
    """A client process on a host: registers, acquires, uses, releases, exits or crashes."""

    def __init__(self, world: World, host: Host, pid: int) -> None:
        self.world = world
        self.host = host
        self.pid = pid
        self.proc = Proc(f"{host.name}/client{pid}", owner=host)
        self.alive = True
        self.daemon: Daemon | None = None
        self.dproc: Proc | None = None
        self.dclient: Client | None = None
        self.conn_id = pid
        self.using: dict[str, str] = {}
        self.term_ok = world.rng.random() < 0.8
        self.unkillable = world.rng.random() < world.params.unkillable
        self.child: SimClientProc | None = None
        self.parent: SimClientProc | None = None
        self.conn_open = False
        self.killpath = world.rng.random() < 0.3

    # -- process events
    def signalled(self, sig: int) -> None:
        w = self.world
        if sig == signal.SIGKILL:
            if not self.unkillable:
                self.die("SIGKILL")
        elif self.term_ok and not self.unkillable:  # SIGTERM or killpath: exits after cleaning up
            w.sched.at(w.sched.now + w.rng.uniform(0.01, 2.0),
                       lambda: self.die("SIGTERM") if self.alive else None)

    def die(self, why: str, notify: bool = True) -> None:
        if not self.alive:
            return
        self.alive = False
        self.world.sched.kill(self.proc)
        self.world.stop_using(self)
        if notify and self.parent is None:
            self._tell_daemon("pid")
        if notify:
            holder = self.parent if self.parent is not None else self
            if not (holder.alive or (holder.child is not None and holder.child.alive)):
                holder._tell_daemon("conn")

    def _tell_daemon(self, what: str) -> None:
        """The daemon's server sees the pidfd fire or the connection close (if that daemon still runs)."""
        d, dproc, dclient = self.daemon, self.dproc, self.dclient
        if what == "conn":
            self.conn_open = False
        if d is None or dproc is None or not dproc.alive or dclient is None:
            return
        if what == "pid":
            self.world.sched.spawn("pidfd", dproc, lambda: d.client_gone(dclient, "process exited"))
        else:
            self.world.sched.spawn("eof", dproc, lambda: d.connection_closed(self.conn_id))

    # -- talking to the daemon
    def call(self, fn: Callable[[], Any]) -> Any:
        sched = self.world.sched
        me = sched.current()
        assert me is not None
        dproc = self.dproc
        if dproc is None or not dproc.alive:
            raise DaemonGone()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["r"] = fn()
            except (LockError, InputError) as exc:
                box["e"] = exc
            except OSError as exc:  # storage errors reach the client as an error reply, too
                box["e"] = LockError("EIO", str(exc))

        a = sched.spawn(f"{self.host.name}/call{self.pid}", dproc, run)
        a.on_done.append(lambda _a: sched.wake(me))
        sched.block()
        if "r" in box:
            return box["r"]
        if "e" in box:
            raise box["e"]
        raise DaemonGone()

    def program(self) -> None:
        w = self.world
        rng = w.rng
        sched = w.sched
        d = self.host.serving()
        if d is None:
            return
        self.daemon, self.dproc = d, self.host.dproc
        ctx = CallContext(self.conn_id, PeerCred(self.pid, 0, 0), lambda c: None)
        try:
            self.dclient = self.call(lambda: d.register(ctx, None, ["/bin/true"] if self.killpath else None))
        except (LockError, DaemonGone):
            self.die("register failed")
            return
        self.conn_open = True
        try:
            for _ in range(rng.randint(1, 4)):
                sched.sleep(rng.expovariate(1 / 30))
                r = rng.randrange(w.params.resources)
                shared = rng.random() < w.params.shared
                if rng.random() < 0.15:
                    self._request_other(d, r)
                    continue
                spec = w.spec(r, shared)
                dclient = self.dclient
                try:
                    nowait = rng.random() < 0.5
                    self.call(lambda c=dclient, sp=spec, nw=nowait: d.resources.acquire(c, [sp], nowait=nw))
                except LockError:
                    continue
                w.start_using(self, w.res_name(r), "sh" if shared else "ex")
                if "inherited_conn" in w.params.faults and rng.random() < w.params.inherit:
                    self._fork_child(w.res_name(r), "sh" if shared else "ex")
                sched.sleep(rng.expovariate(1 / w.params.hold_mean))
                if self.child is not None:
                    break
                end = rng.random()
                if end < 0.7:
                    w.stop_using_one(self, w.res_name(r))
                    with contextlib.suppress(LockError, DaemonGone):
                        self.call(lambda c=dclient, sp=spec: d.resources.release(c, [sp]))
                elif end < 0.85:
                    w.stats["client_exit_holding"] += 1
                    break
                else:
                    w.stats["faults"]["client_crash"] = w.stats["faults"].get("client_crash", 0) + 1
                    break
        except DaemonGone:
            sched.sleep(rng.expovariate(1 / 200))  # the daemon died: the client keeps its leases a while
        sched.at(sched.now, lambda: self.die("exit"))
        sched.block()

    def _request_other(self, d: Daemon, r: int) -> None:
        spec = self.world.spec(r, False)
        mode = 1 if self.world.rng.random() < 0.3 else 2
        try:
            self.call(lambda: d.request(spec, None, mode))
            self.world.stats["requests"] += 1
        except (LockError, DaemonGone):
            pass

    def _fork_child(self, res: str, mode: str) -> None:
        """A child inherits the registration connection and uses the lease; the parent exits."""
        w = self.world
        child = SimClientProc(w, self.host, w.new_pid())
        child.parent = self
        child.term_ok = False  # the daemon cannot signal it: it does not know its pid
        self.child = child
        w.clients[child.pid] = child
        w.faults_count("inherited_conn")
        w.start_using(child, res, mode)

        def child_prog() -> None:
            w.sched.sleep(w.rng.expovariate(1 / 300))
            w.sched.at(w.sched.now, lambda: child.die("exit"))
            w.sched.block()

        w.sched.spawn(f"{self.host.name}/child{child.pid}", child.proc, child_prog)
