"""Whole lockengine daemons on a simulated shared disk: hosts, clients, faults and the invariants.

Each host runs the production ``Daemon`` (with its real Lockspace renewal task, Supervisor,
ResourceManager and WatchdogMultiplexer) above the seams of lockengine/daemon/proc.py: simulated time
and tasks (sched.py), simulated storage (disk.py), simulated client processes and a simulated
watchdog device that resets the host ``timeout`` seconds after its last pet.

What is checked, at the step where it could first go wrong:
  * ``two_hosts``: a resource is used by client processes on two hosts at once (exclusive against
    anything). A use lasts from the client's acquire returning until the process (or the child that
    inherited its connection) stops using it, dies, or its host is reset — so a holder the escalation
    cannot kill keeps using its lease until the watchdog resets its host;
  * ``host_id``: a host id is believed held (lockspace JOINED) by two live hosts;
  * ``lost``: at the end of a world, with faults healed and clients gone, a lease cannot be acquired
    within its bound.
"""


from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockengine.config import Config
from lockengine.daemon.clients import PeerCred
from lockengine.daemon.engine import CallContext, Daemon
from lockengine.daemon.proc import Runtime
from lockengine.errors import InputError, LockError
from lockengine.ondisk import LEADER_SIZE, Geometry, lockspace_area, new_delta_leader, resource_area
from lockengine.states import LockspaceState
from lockengine.strings import Disk, LockspaceSpec, ResourceSpec
from lockengine.timeouts import Timeouts
from lockengine.watchdog.multiplexer import WatchdogMultiplexer

from .clients import DaemonGone, SimClientProc
from .disk import SimDisk
from .host import LS, Host
from .sched import Actor, Scheduler, SimAbort
from .seams import sim_wait

_DISK_DIR = tempfile.mkdtemp(prefix="lockengine-sim-")  # the paths must exist (add_lockspace checks)


def disk_path(name: str) -> str:
    path = os.path.join(_DISK_DIR, name)
    if not os.path.exists(path):
        open(path, "wb").close()
    return path


@dataclass
class Violation:
    kind: str
    time: float
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at t={self.time:.3f}: {self.detail}"


@dataclass
class WorldParams:
    hosts: int
    sector_size: int
    resources: int
    duration: float
    fire_timeout: int
    io_timeouts: list[int]
    clients_per_host: float  # mean client processes started per host per 1000 s
    fault_rate: float  # mean faults per 1000 s in the whole world
    faults: tuple[str, ...]
    device_timeouts: list[int] = field(default_factory=list)  # per host; empty: fire_timeout
    fire_timeouts: list[int] = field(default_factory=list)  # per host config; empty: fire_timeout
    host_names: list[str] = field(default_factory=list)
    host_ids: list[int] = field(default_factory=list)
    end_check: bool = True
    hold_mean: float = 120.0  # mean seconds a client uses a lease
    unkillable: float = 0.0  # probability that a new client ignores every signal (escalation fails)
    inherit: float = 0.1  # probability that a holder forks a child inheriting its connection
    boot_at: list[float] = field(default_factory=list)  # per host: first boot time (default: 0-5 s)
    shared: float = 0.3  # probability that an acquire is shared
    scripted: list[tuple[float, str, int, float]] = field(default_factory=list)  # (at, kind, host index, value)
    operator: bool = True  # rejoin failed or left lockspaces every 200-600 s, as an operator would


ALL_FAULTS = (
    "host_crash", "daemon_crash_restart", "daemon_crash_reboot", "client_crash", "io_delay", "io_eio",
    "io_hang", "late_write", "storage_readonly", "storage_hung", "frozen", "unkillable", "inherited_conn",
    "rem_lockspace", "large_io_hang",
)


def default_daemon(config: Config, mux: WatchdogMultiplexer, rt: Runtime, host: Host) -> Daemon:
    return Daemon(config, mux, runtime=rt, processes=host.processes, armed=host.armed)


class World:
    def __init__(self, seed: int, params: WorldParams, make_daemon: Callable[..., Daemon] | None = None) -> None:
        self.seed = seed
        self.params = params
        self.rng = random.Random(seed)
        self.sched = Scheduler(random.Random(self.rng.random()))
        self.stats: Any = _Stats()
        self.violations: list[Violation] = []
        self.make_daemon = make_daemon or default_daemon
        self.mux_class: type[WatchdogMultiplexer] = WatchdogMultiplexer
        g = Geometry(params.sector_size, 1 << 20)
        self.geometry = g
        size = (1 + params.resources) << 20
        self.ls_path = disk_path(f"disk-{params.sector_size}")
        disk = SimDisk(self.ls_path, size, params.sector_size)
        io0 = params.io_timeouts[0]
        disk.land(0, lockspace_area(LS, g, io0))
        first = bytearray(g.sector_size)
        first[:LEADER_SIZE] = new_delta_leader(LS, g, io0).encode()
        disk.land(0, bytes(first))
        for r in range(params.resources):
            disk.land((1 + r) << 20, resource_area(LS, self.res_name(r), g, 0))
        self.disks = {self.ls_path: disk}
        self.hosts: list[Host] = []
        for i in range(params.hosts):
            fire = params.fire_timeouts[i] if params.fire_timeouts else params.fire_timeout
            dev = params.device_timeouts[i] if params.device_timeouts else fire
            name = params.host_names[i] if params.host_names else f"host{i + 1}"
            hid = params.host_ids[i] if params.host_ids else i + 1
            self.hosts.append(Host(self, i, hid, name, params.io_timeouts[i], fire, dev))
        self.clients: dict[int, SimClientProc] = {}
        self._pid = 1000
        # resource -> list of (client, mode) using it now
        self.users: dict[str, list[tuple[SimClientProc, str]]] = {}
        self.hostid_holder: dict[int, Host] = {}
        self.sched.after_step = self._after_step
        self.stopped = False

    # ------------------------------------------------------------------ helpers
    def res_name(self, r: int) -> str:
        return f"R{r}"

    def spec(self, r: int, shared: bool) -> ResourceSpec:
        return ResourceSpec(LS, self.res_name(r), (Disk(self.ls_path, (1 + r) << 20),), None, shared)

    def new_pid(self) -> int:
        self._pid += 1
        return self._pid

    def faults_count(self, kind: str) -> None:
        self.stats["faults"][kind] = self.stats["faults"].get(kind, 0) + 1

    def abortable_sleep(self, seconds: float, abort: Any, what: str) -> None:
        if abort is None:
            self.sched.sleep(seconds)
        elif sim_wait(self.sched, abort, seconds):
            raise LockError("ERROR", f"{what}: aborted")

    def violation(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, self.sched.now, detail))

    # ------------------------------------------------------------------ invariants
    def start_using(self, c: SimClientProc, res: str, mode: str) -> None:
        others = [(o, m) for o, m in self.users.get(res, []) if o.host is not c.host]
        for o, m in others:
            if mode == "ex" or m == "ex":
                state = "its lockspace joined" if o.host.lockspace_joined() else "its lockspace not joined"
                self.violation("two_hosts", f"{res}: {c.host.name} pid {c.pid} ({mode}) while {o.host.name} pid "
                               f"{o.pid} ({m}, {state}) still uses it")
        self.users.setdefault(res, []).append((c, mode))
        c.using[res] = mode
        self.stats["acquired"] += 1

    def stop_using_one(self, c: SimClientProc, res: str) -> None:
        self.users[res] = [(o, m) for o, m in self.users.get(res, []) if o is not c]
        c.using.pop(res, None)

    def stop_using(self, c: SimClientProc) -> None:
        for res in list(c.using):
            self.stop_using_one(c, res)

    def hostid_changed(self, host: Host) -> None:
        believes = host.up and host.lockspace_joined()
        holder = self.hostid_holder.get(host.host_id)
        if believes:
            if holder is not None and holder is not host and holder.up and holder.lockspace_joined():
                self.violation("host_id", f"host id {host.host_id} held by {host.name} and {holder.name}")
            self.hostid_holder[host.host_id] = host
        elif holder is host:
            del self.hostid_holder[host.host_id]

    def host_reset(self, host: Host) -> None:
        self.hostid_changed(host)

    def _after_step(self, actor: Actor) -> None:
        host = actor.proc.owner
        if host is not None:
            self.hostid_changed(host)

    # ------------------------------------------------------------------ faults and workload
    def _schedule_clients(self) -> None:
        p = self.params
        rate = p.clients_per_host * p.hosts / 1000.0
        if rate <= 0:
            return

        def spawn_one() -> None:
            if self.stopped:
                return
            host = self.rng.choice(self.hosts)
            if host.serving() is not None:
                c = SimClientProc(self, host, self.new_pid())
                self.clients[c.pid] = c
                self.sched.spawn(f"{host.name}/client{c.pid}", c.proc, c.program)
            self.sched.at(self.sched.now + self.rng.expovariate(rate), spawn_one)

        self.sched.at(self.sched.now + self.rng.expovariate(rate), spawn_one)

    def _schedule_faults(self) -> None:
        p = self.params
        kinds = [k for k in p.faults if k not in ("inherited_conn",)]
        if not kinds or p.fault_rate <= 0:
            return
        rate = p.fault_rate / 1000.0

        def one() -> None:
            if self.stopped:
                return
            self.inject(self.rng.choice(kinds), self.rng.choice(self.hosts))
            self.sched.at(self.sched.now + self.rng.expovariate(rate), one)

        self.sched.at(self.sched.now + self.rng.expovariate(rate), one)

    def inject(self, kind: str, host: Host) -> None:
        rng, sched = self.rng, self.sched
        if not host.up:
            return
        self.faults_count(kind)
        io = host.io
        epoch = io.epoch
        dur = rng.uniform(5, 250)

        def heal(fn: Callable[[], None]) -> None:
            sched.at(sched.now + dur, lambda: fn() if io.epoch == epoch else None)

        if kind == "host_crash":
            host.reset("crash")
        elif kind == "daemon_crash_restart":
            host.crash_daemon()
            sched.at(sched.now + rng.uniform(0.0, 5.0), lambda: host.start_daemon() if host.up and
                     io.epoch == epoch and host.daemon is None else None)
        elif kind == "daemon_crash_reboot":
            host.crash_daemon()
            sched.at(sched.now + rng.uniform(1.0, 30.0), lambda: host.reset("reboot") if io.epoch == epoch else None)
        elif kind == "client_crash":
            live = [c for c in self.clients.values() if c.host is host and c.alive and c.parent is None]
            if live:
                rng.choice(live).die("crash")
        elif kind == "unkillable":
            live = [c for c in self.clients.values() if c.host is host and c.alive]
            if live:
                rng.choice(live).unkillable = True
        elif kind == "io_delay":
            io.faults.slow = rng.uniform(0.5, 3.0) * host.io_timeout
            heal(lambda: setattr(io.faults, "slow", 0.0))
        elif kind == "io_eio":
            io.faults.eio = rng.uniform(0.1, 1.0)
            heal(lambda: setattr(io.faults, "eio", 0.0))
        elif kind == "io_hang":
            io.faults.hang = rng.uniform(0.1, 1.0)
            heal(lambda: setattr(io.faults, "hang", 0.0))
        elif kind == "large_io_hang":
            io.faults.hang_large = rng.uniform(0.5, 1.0)
            heal(lambda: setattr(io.faults, "hang_large", 0.0))
        elif kind == "late_write":
            io.faults.late = rng.uniform(0.2, 1.0)
            heal(lambda: setattr(io.faults, "late", 0.0))
        elif kind == "storage_readonly":
            io.faults.mode = "readonly"
            heal(lambda: setattr(io.faults, "mode", "ok"))
        elif kind == "storage_hung":
            io.faults.mode = "hung"
            heal(lambda: setattr(io.faults, "mode", "ok"))
        elif kind == "rem_lockspace":
            self._rem_and_add(host)
        elif kind == "frozen":
            if host.dproc is not None:
                host.dproc.frozen_until = sched.now + rng.uniform(5, 200)
        else:
            raise ValueError(kind)

    def _operator_rejoins(self) -> None:
        """As an operator (or the collection's role) would: join again where the lockspace failed or
        was left; the daemon does not rejoin by itself after a lost lease."""
        for h in self.hosts:
            d, proc = h.serving(), h.dproc
            if d is not None and proc is not None and LS not in d.lockspaces:
                spec = LockspaceSpec(LS, h.host_id, self.ls_path, 0)
                self.sched.spawn(f"{h.name}/rejoin", proc, lambda d=d, sp=spec, io=h.io_timeout: self._rejoin(d, sp, io))

    def _schedule_operator(self) -> None:
        def tick() -> None:
            if self.stopped:
                return
            self._operator_rejoins()
            self.sched.at(self.sched.now + self.rng.uniform(200, 600), tick)

        self.sched.at(self.sched.now + self.rng.uniform(200, 600), tick)

    @staticmethod
    def _rejoin(d: Daemon, spec: LockspaceSpec, io: int) -> None:
        with contextlib.suppress(LockError, InputError):
            d.add_lockspace(spec, io)

    def script(self, kind: str, host: Host, seconds: float) -> None:
        """A fault at a chosen time and host, for a chosen time (regression worlds)."""
        self.faults_count(kind)
        io, epoch = host.io, host.io.epoch
        if kind == "lockspace_area_hang":  # renewals' area reads hang; single-sector and lease I/O work
            io.faults.hang_area = 0
            self.sched.at(self.sched.now + seconds, lambda: setattr(io.faults, "hang_area", -1)
                          if io.epoch == epoch else None)
        else:
            raise ValueError(kind)

    def _rem_and_add(self, host: Host) -> None:
        """rem_lockspace (SIGKILLs the holders, aborts ballots in flight, frees the host id), then join
        again once it is gone."""
        d, proc = host.serving(), host.dproc
        ls = d.lockspaces.get(LS) if d is not None else None
        if d is None or proc is None or ls is None or ls.state != LockspaceState.JOINED:
            return
        sched, rng = self.sched, self.rng

        def rem() -> None:
            try:
                d.rem_lockspace(ls, unused=False)
            except LockError:
                self.stats["rem_refused"] += 1
                return
            self.stats["rem_done"] += 1
            sched.sleep(rng.uniform(1.0, 60.0))
            for _ in range(100):
                if LS not in d.lockspaces:
                    break
                sched.sleep(host.io_timeout)
            with contextlib.suppress(LockError, InputError):
                d.add_lockspace(ls.spec, host.io_timeout)
                self.stats["rem_readded"] += 1

        sched.spawn(f"{host.name}/rem", proc, rem)

    # ------------------------------------------------------------------ run
    def run(self) -> list[Violation]:
        p = self.params
        for i, h in enumerate(self.hosts):
            delay = p.boot_at[i] if p.boot_at else self.rng.uniform(0, 5) + i * 0.01
            self.sched.at(self.sched.now + delay, h.boot)
        self._schedule_clients()
        self._schedule_faults()
        if p.operator:
            self._schedule_operator()
        for at, kind, idx, value in p.scripted:
            self.sched.at(self.sched.now + at, lambda k=kind, i=idx, v=value: self.script(k, self.hosts[i], v))
        try:
            self.sched.run(self.sched.now + p.duration)
            self.stopped = True
            if p.end_check and not self.violations:
                self._end_check()
        finally:
            self.sched.shutdown()
        return self.violations

    def _end_check(self) -> None:
        """Liveness: heal everything, let the clients go, then every lease must be acquirable in time."""
        for h in self.hosts:
            h.io.faults.mode, h.io.faults.slow, h.io.faults.eio = "ok", 0.0, 0.0
            h.io.faults.hang = h.io.faults.late = h.io.faults.hang_large = 0.0
            h.io.faults.hang_area = -1
            if h.dproc is not None:
                h.dproc.frozen_until = 0.0
        for c in list(self.clients.values()):
            if c.alive:  # unkillable ones too: on a fenced host they died with it, elsewhere they finish
                c.die("end of run")
        io_max = max(h.io_timeout for h in self.hosts)
        fire_max = max(max(h.fire_timeout, h.device.timeout) for h in self.hosts)
        t = Timeouts(io_max, fire_max)
        # A dead holder's host is reset by its watchdog within 8·io + fire; then others wait host_dead.
        settle = t.id_renewal_fail_seconds + fire_max + 150.0
        self.sched.run(self.sched.now + settle)
        # As an operator would: join again where the lockspace failed or was left (the daemon does not
        # rejoin by itself after a lost lease).
        self._operator_rejoins()
        self.sched.run(self.sched.now + t.delta_acquire_busy_wait + t.delta_large_delay)
        bound = t.paxos_acquire_held_max + 4 * t.host_dead_seconds + 60.0
        deadline = self.sched.now + bound
        probe_host = next((h for h in self.hosts if h.serving() is not None and h.lockspace_joined()), None)
        if probe_host is None:
            self.sched.run(deadline)
            probe_host = next((h for h in self.hosts if h.serving() is not None and h.lockspace_joined()), None)
            if probe_host is None:
                self.violation("lost", "no host could rejoin the lockspace after the faults healed")
                return
        got: dict[str, bool] = {}
        last_error: dict[str, str] = {}
        probe = SimClientProc(self, probe_host, self.new_pid())
        self.clients[probe.pid] = probe
        d = probe_host.serving()
        assert d is not None
        probe.daemon, probe.dproc = d, probe_host.dproc

        def prog() -> None:
            ctx = CallContext(probe.conn_id, PeerCred(probe.pid, 0, 0), lambda c: None)
            probe.dclient = probe.call(lambda: d.register(ctx, None, None))
            dclient = probe.dclient
            while self.sched.now < deadline and len(got) < self.params.resources:
                for r in range(self.params.resources):
                    name = self.res_name(r)
                    if got.get(name):
                        continue
                    spec = self.spec(r, False)
                    try:
                        probe.call(lambda sp=spec: d.resources.acquire(dclient, [sp]))
                        got[name] = True
                        self.start_using(probe, name, "ex")
                    except LockError as exc:
                        last_error[name] = str(exc)
                    except DaemonGone:
                        last_error[name] = "the probe host's daemon died"
                        return
                self.sched.sleep(10.0)

        self.sched.spawn(f"{probe_host.name}/probe", probe.proc, prog)
        self.sched.run(deadline)
        for r in range(self.params.resources):
            if not got.get(self.res_name(r)):
                self.violation("lost", f"{self.res_name(r)} not acquirable within {bound:.0f} s after the faults "
                               f"healed (probe on {probe_host.name}: {last_error.get(self.res_name(r))})")

    @property
    def host_seconds(self) -> float:
        return self.params.hosts * self.params.duration


class _Stats(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        if key == "faults":
            self[key] = {}
            return self[key]
        return 0


__all__ = ["ALL_FAULTS", "SimAbort", "World", "WorldParams"]
