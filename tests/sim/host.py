"""One simulated host: boots, runs the production Daemon above simulated seams, crashes and resets."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from lockengine.config import Config, LockspaceConfig, WatchdogConfig
from lockengine.daemon.engine import Daemon
from lockengine.daemon.escalation import Supervisor
from lockengine.daemon.proc import Runtime
from lockengine.errors import LockError
from lockengine.states import LockspaceState
from lockengine.timeouts import default_kill_grace
from lockengine.watchdog.multiplexer import WatchdogMultiplexer

from .disk import HostIo, SimStorage
from .sched import Proc
from .seams import SimArmed, SimEvent, SimProcesses, SimWatchdog, sim_wait

if TYPE_CHECKING:
    from .world import World

LS = "LS"


class Host:
    def __init__(self, world: World, idx: int, host_id: int, name: str, io_timeout: int, fire_timeout: int,
                 device_timeout: int) -> None:
        self.world = world
        self.idx = idx
        self.host_id = host_id
        self.name = name
        self.io_timeout = io_timeout
        self.fire_timeout = fire_timeout
        self.up = False
        self.boots = 0
        self.io = HostIo(world.sched, random.Random(world.rng.random()))
        self.device = SimWatchdog(self, device_timeout)
        self.armed = SimArmed()
        self.processes = SimProcesses(self)
        self.daemon: Daemon | None = None
        self.dproc: Proc | None = None
        self.daemons = 0
        self.refused: str | None = None

    # ------------------------------------------------------------------ life cycle

    def boot(self) -> None:
        self.up = True
        self.boots += 1
        self.start_daemon()

    def start_daemon(self) -> None:
        w = self.world
        sched = w.sched
        self.daemons += 1
        w.stats["daemons"] += 1
        proc = Proc(f"{self.name}/lockengined#{self.daemons}", owner=self)
        self.dproc = proc
        rt = Runtime(
            clock=sched.clock,
            sleep=lambda s, abort, what: w.abortable_sleep(s, abort, what),
            wait=lambda ev, t: sim_wait(sched, ev, t),
            spawn=lambda name, fn: self._spawn(proc, name, fn),
            open_storage=lambda path: SimStorage(w.disks[path], self.io),
            new_rng=lambda: random.Random(w.rng.random()),
            event=lambda: SimEvent(sched),  # type: ignore[arg-type, return-value]
        )
        kill_grace = default_kill_grace(self.fire_timeout)
        config = Config(
            host_name=self.name, host_name_source="config", io_timeout=self.io_timeout,
            watchdog_fire_timeout=self.fire_timeout, kill_grace=kill_grace, watchdog=WatchdogConfig("none"),
            run_dir="/run/lockengine-sim", syslog=False,
            lockspaces=(LockspaceConfig(LS, self.host_id, w.ls_path, 0, self.io_timeout),),
        )
        mux = w.mux_class(self.device, self.fire_timeout, clock=sched.clock,
                                  wall_clock=sched.clock, wait=lambda ev, t: sim_wait(sched, ev, t))
        daemon = w.make_daemon(config, mux, rt, self)
        self.daemon = daemon

        def start() -> None:
            try:
                daemon.start()
            except LockError as exc:
                self.refused = str(exc)
                self.daemon = None
                w.stats["refused_start"] += 1
                return
            if daemon.refusing is not None:
                self.refused = daemon.refusing
                w.stats["refused_armed"] += 1

        sched.spawn(f"{self.name}/start", proc, start)

    def _spawn(self, proc: Proc, name: str, fn: Callable[[], None]) -> None:
        """The daemon's background tasks: the supervisor and the watchdog multiplexer never block, so
        the simulator calls their step functions directly; every other task is an actor."""
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, Supervisor):
            self._direct_supervisor(proc, owner)
        elif isinstance(owner, WatchdogMultiplexer):
            self._direct_multiplexer(proc, owner)
        else:
            self.world.sched.spawn(f"{self.name}/{name}", proc, fn)

    def _direct_multiplexer(self, proc: Proc, mux: WatchdogMultiplexer) -> None:
        sched = self.world.sched

        def tick() -> None:
            if not proc.alive:
                return
            if proc.frozen_until > sched.now:
                sched.at(proc.frozen_until, tick)
                return
            petting = mux.check()
            sched.at(sched.now + mux.next_pass_in(petting), tick)

        sched.at(sched.now, tick)

    def _direct_supervisor(self, proc: Proc, sup: Supervisor) -> None:
        sched = self.world.sched
        token = [0]

        def schedule(t: float) -> None:
            token[0] += 1
            mine = token[0]
            sched.at(t, lambda: tick(mine))

        def tick(mine: int) -> None:
            if mine != token[0] or not proc.alive or sup._stopping:
                return
            if proc.frozen_until > sched.now:
                schedule(proc.frozen_until)
                return
            sup._kicked.clear()
            wake = sup.supervise_once()
            schedule(max(wake, sched.now + 0.01))

        kicked = sup._kicked
        assert isinstance(kicked, SimEvent)
        kicked.on_set.append(lambda: schedule(sched.now))
        schedule(sched.now)

    def serving(self) -> Daemon | None:
        d = self.daemon
        if d is None or self.dproc is None or not self.dproc.alive or d.refusing is not None:
            return None
        return d

    def lockspace_joined(self) -> bool:
        d = self.daemon
        if d is None or self.dproc is None or not self.dproc.alive:
            return False
        ls = d.lockspaces.get(LS)
        return ls is not None and ls.state == LockspaceState.JOINED

    def crash_daemon(self) -> None:
        """kill -9 of lockengined: its tasks die; its clients and the armed device stay."""
        if self.dproc is not None and self.dproc.alive:
            self.world.sched.kill(self.dproc)
        self.daemon = None
        self.world.hostid_changed(self)

    def reset(self, why: str) -> None:
        """Power cycle (watchdog fire, crash): every process dies now, in-flight writes are lost."""
        if not self.up:
            return
        w = self.world
        w.stats[f"reset_{why}"] += 1
        self.up = False
        self.crash_daemon()
        for c in list(w.clients.values()):
            if c.host is self and c.alive:
                c.die("host reset", notify=False)
        self.io.reset()
        self.device.armed = False
        self.armed.clear()
        w.host_reset(self)
        w.sched.at(w.sched.now + w.rng.uniform(20, 120), self.boot)
