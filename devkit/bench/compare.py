"""lockengine and the real sanlock side by side, on one loop device, in one run.

    python -m devkit.bench.compare [--count 50] [--io-timeout 10] [--lockspaces 10] [--leases 100]
                                       [--idle-seconds 60] [--clients 1,8,32] [--resources 400]
                                       [--growth 1,10,100] [--growth-idle 10] [--held-leases 10,1000,4000] [--json]

Prints, for both daemons: median acquire and release latency through their client APIs (sanlock's
Python binding, our Python client), the time to join a never-used host-id slot and to rejoin the one
it released, acquires/s and releases/s with 1, 8 and 32 concurrent client processes over RESOURCES
leases (throughput.py; both daemons run at once and the client counts alternate between them, so a
noisy machine hits both alike), and the daemon's RSS and idle CPU while it holds LOCKSPACES lockspaces with LEASES leases each; how RSS,
threads and idle CPU grow with joined lockspaces (--growth) and with leases held in one lockspace
(--held-leases), also after idling and after removing them, with the slope of each growth; then
lockengine/sanlock ratios. A measurement, never a test assertion. Needs root (losetup), sanlock and
python3-sanlock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lockengine.client import Client
from lockengine.init import init_lockspace, init_resource
from lockengine.ondisk import Geometry
from lockengine.states import LockspaceState
from lockengine.storage import DirectStorage

from ..sanlockd import DEBIAN_PYTHON, SanlockDaemon
from .throughput import run_clients, shares

MiB = 1 << 20
SIDE_SCRIPT = Path(__file__).with_name("sanlock_side.py")
TICKS = os.sysconf("SC_CLK_TCK")


class LoopDevice:
    def __init__(self, backing: Path, size: int) -> None:
        with open(backing, "wb") as f:
            f.truncate(size)
        out = subprocess.run(["losetup", "--show", "-f", str(backing)], capture_output=True, text=True, check=True)
        self.path = out.stdout.strip()

    def close(self) -> None:
        subprocess.run(["losetup", "-d", self.path], check=False)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def idle_cpu_percent(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


class LockengineDaemon:
    def __init__(self, run_dir: Path, host_name: str, io_timeout: int) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        conf = run_dir / "lockengine.conf"
        conf.write_text(json.dumps({"host_name": host_name, "io_timeout": io_timeout, "log_level": "info"}))
        env = dict(os.environ, LOCKENGINE_RUN_DIR=str(run_dir))
        env.pop("NOTIFY_SOCKET", None)
        with open(run_dir / "daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lockengine.daemon.main", "--config", str(conf), "--watchdog", "none"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.socket = str(run_dir / "lockengined.sock")
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lockengined exited: {(run_dir / 'daemon.log').read_text()[-2000:]}")
            try:
                with Client(self.socket, timeout=5) as c:
                    c.hello()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def init_areas(path: str, space: str, ls_off: int, resources: list[tuple[str, int]], io: int) -> None:
    geom = Geometry(512, MiB)
    with DirectStorage(path) as st:
        init_lockspace(st, space, ls_off, geom, io_timeout=io, force=True)
        for name, off in resources:
            init_resource(st, space, name, off, geom, force=True)


def lockengine_latency(d: LockengineDaemon, path: str, ls_off: int, res_off: int, count: int, io: int) -> dict[str, float]:
    with Client(d.socket, timeout=600) as c:
        t = time.monotonic()
        c.add_lockspace("BENCH", 1, path, ls_off, io_timeout=io)
        join_s = time.monotonic() - t
        c.register("bench")
        res = f"BENCH:R0:{path}:{res_off}"
        acq: list[float] = []
        rel: list[float] = []
        for _ in range(count):
            t0 = time.perf_counter()
            c.acquire([res])
            t1 = time.perf_counter()
            c.release([res])
            t2 = time.perf_counter()
            acq.append((t1 - t0) * 1000)
            rel.append((t2 - t1) * 1000)
        c.release()
    with Client(d.socket, timeout=600) as c:
        c.rem_lockspace("BENCH")
    return {"join_s": join_s, "acquire_ms": statistics.median(acq), "release_ms": statistics.median(rel)}


def hold_layout(base: int, lockspaces: int, leases: int) -> list[tuple[str, int, list[tuple[str, int]]]]:
    stride = (leases + 1) * MiB
    return [
        (f"HOLD{i}", base + i * stride, [(f"R{j}", base + i * stride + (j + 1) * MiB) for j in range(leases)])
        for i in range(lockspaces)
    ]


def lockengine_hold(d: LockengineDaemon, path: str, layout: list[tuple[str, int, list[tuple[str, int]]]], io: int) -> Client:
    c = Client(d.socket, timeout=600).connect()
    for name, off, _ in layout:
        c.add_lockspace(name, 1, path, off, io_timeout=io, wait=False)
    for name, _, _ in layout:
        while c.inq_lockspace(name).get("state") != LockspaceState.JOINED:
            time.sleep(0.2)
    c.register("bench-hold")
    for name, _, resources in layout:
        for res, roff in resources:
            c.acquire([f"{name}:{res}:{path}:{roff}"])
    return c  # stays connected: the leases live as long as this client


def throughput(sl: SanlockDaemon, le: LockengineDaemon, path: str, areas: dict[str, tuple[int, list[int]]],
               clients: list[int], io: int, say: Any) -> dict[str, dict[str, float]]:
    """acquires/s and releases/s of both daemons at each client count, alternating daemons."""
    sl_off, sl_res = areas["TPS"]
    le_off, le_res = areas["TPL"]
    sl.client("add_lockspace", "-o", str(io), "-s", f"TPS:1:{path}:{sl_off}")
    with Client(le.socket, timeout=600) as c:
        c.add_lockspace("TPL", 1, path, le_off, io_timeout=io)
    out: dict[str, dict[str, float]] = {"sanlock": {}, "lockengine": {}}
    for n in clients:
        say(f"== throughput, {n} client(s), {len(sl_res)} leases: sanlock, then lockengine")
        sl_cmds = [[DEBIAN_PYTHON, str(SIDE_SCRIPT), "worker", "TPS", path, ",".join(map(str, part))]
                   for part in shares(sl_res, n)]
        le_cmds = [[sys.executable, "-m", "devkit.bench.throughput", "worker", le.socket, "TPL", path,
                    ",".join(map(str, part))] for part in shares(le_res, n)]
        assert sl.proc is not None
        for key, value in run_clients(sl_cmds, env=sl.env, daemon_pid=sl.proc.pid).items():
            out["sanlock"][f"{key}_{n}"] = value
        for key, value in run_clients(le_cmds, daemon_pid=le.pid).items():
            out["lockengine"][f"{key}_{n}"] = value
    sl.client("rem_lockspace", "-s", f"TPS:1:{path}:{sl_off}")
    with Client(le.socket, timeout=600) as c:
        c.rem_lockspace("TPL")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    io, n_ls, n_leases = args.io_timeout, args.lockspaces, args.leases
    clients = [int(x) for x in args.clients.split(",") if x] if args.resources else []
    n_res = args.resources if clients else 0
    tp_base = 8 * MiB
    steps = [int(x) for x in args.growth.split(",") if x]
    growth_base = tp_base + 2 * (n_res + 1) * MiB
    hold_base = growth_base + 2 * max(steps, default=0) * MiB
    held_steps = [int(x) for x in args.held_leases.split(",") if x]
    held_base = hold_base + 2 * n_ls * (n_leases + 1) * MiB
    n_held = max(held_steps, default=0)
    size = held_base + 2 * (n_held + 1) * MiB + 8 * MiB
    work = Path(tempfile.mkdtemp(prefix="lockengine-bench-", dir="/var/tmp"))
    results: dict[str, Any] = {"io_timeout": io, "count": args.count, "lockspaces": n_ls, "leases": n_leases,
                               "clients": clients, "resources": n_res, "growth": steps,
                               "growth_idle": args.growth_idle, "held_leases": held_steps}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        loop = LoopDevice(work / "disk.img", size)
        stack.callback(loop.close)
        path = loop.path
        results["device"] = path
        # Separate areas per daemon, so neither starts from the other's leftovers.
        init_areas(path, "BENCH", 0, [("R0", 1 * MiB)], io)
        init_areas(path, "BENCH", 2 * MiB, [("R0", 3 * MiB)], io)
        areas: dict[str, tuple[int, list[int]]] = {}
        for i, name in enumerate(("TPS", "TPL")):
            base = tp_base + i * (n_res + 1) * MiB
            areas[name] = (base, [base + (j + 1) * MiB for j in range(n_res)])
            init_areas(path, name, base, [(f"T{off}", off) for off in areas[name][1]], io)
        gbases = {"sanlock": growth_base, "lockengine": growth_base + max(steps, default=0) * MiB}
        for gbase in gbases.values():
            for i in range(max(steps, default=0)):
                init_areas(path, f"G{i}", gbase + i * MiB, [], io)
        sl_layout = hold_layout(hold_base, n_ls, n_leases)
        le_layout = hold_layout(hold_base + n_ls * (n_leases + 1) * MiB, n_ls, n_leases)
        for name, off, resources in sl_layout + le_layout:
            init_areas(path, name, off, resources, io)
        # Named apart from the LOCKSPACES x LEASES section's HOLD* lockspaces (both stay joined).
        held_layouts = {side: ("HELD", *hold_layout(held_base + i * (n_held + 1) * MiB, 1, n_held)[0][1:])
                        if held_steps else None for i, side in enumerate(("sanlock", "lockengine"))}
        for layout in held_layouts.values():
            if layout is not None:
                init_areas(path, layout[0], layout[1], layout[2], io)

        def say(message: str) -> None:
            if not args.json:
                print(message, flush=True)

        sl = SanlockDaemon(work / "sanlock", "bench-sanlock")
        sl.start()
        stack.callback(sl.stop)
        le = LockengineDaemon(work / "lockengine", "bench-lockengine", io)
        stack.callback(le.stop)
        assert sl.proc is not None
        results["sanlock"] = {"start_rss_mib": rss_mib(sl.proc.pid), "start_threads": threads(sl.proc.pid)}
        results["lockengine"] = {"start_rss_mib": rss_mib(le.pid), "start_threads": threads(le.pid)}

        os.sync()  # the initialisation's dirty pages must not be written back during the measurements
        # Two rounds, the daemons taking turns; each figure is the mean of its two medians.
        rounds: dict[str, list[dict[str, float]]] = {"sanlock": [], "lockengine": []}
        for r in (1, 2):
            say(f"== on {path}: join, {args.count} acquire/release: sanlock, then lockengine (round {r} of 2)")
            out = sl.python(str(SIDE_SCRIPT), "latency", path, "0", str(MiB), str(args.count), str(io), "1")
            rounds["sanlock"].append(json.loads(out.stdout))
            rounds["lockengine"].append(lockengine_latency(le, path, 2 * MiB, 3 * MiB, args.count, io))
        for side, pair in rounds.items():
            results[side].update({k: statistics.mean(f[k] for f in pair) for k in pair[0] if k != "join_s"})
            # Round 1 joins a never-used host-id slot; round 2 rejoins the slot round 1 released.
            results[side].update(join_new_s=pair[0]["join_s"], rejoin_released_s=pair[1]["join_s"])

        say("== CLI: client status (median of 15 process runs each, taking turns)")
        for side, figures in cli_figures(sl, le, work / "pycache").items():
            results[side].update(figures)

        if clients:
            tp = throughput(sl, le, path, areas, clients, io, say)
            results["sanlock"].update(tp["sanlock"])
            results["lockengine"].update(tp["lockengine"])

        if steps:
            for side, figures in growth(sl, le, path, gbases, steps, args.growth_idle, io, say).items():
                results[side].update(figures)

        if held_steps:
            for side, figures in held_growth(sl, le, path, held_layouts, held_steps, args.growth_idle, io,
                                             say).items():
                results[side].update(figures)

        if n_ls:
            say(f"== sanlock: {n_ls} lockspaces x {n_leases} leases, then {args.idle_seconds} s idle")
            holder = _sanlock_hold(sl, path, sl_layout, io)
            try:
                results["sanlock"].update(held_figures(sl.proc.pid, args.idle_seconds))
            finally:
                holder.kill()
                holder.wait()
            say(f"== lockengine: {n_ls} lockspaces x {n_leases} leases, then {args.idle_seconds} s idle")
            c = lockengine_hold(le, path, le_layout, io)
            try:
                results["lockengine"].update(held_figures(le.pid, args.idle_seconds))
            finally:
                c.close()
    for side in ("sanlock", "lockengine"):
        results[side].update(slopes(results[side], steps, held_steps))
    ratios = {}
    for key, a in results["lockengine"].items():
        b = results["sanlock"].get(key)
        if isinstance(a, (int, float)) and b:
            ratios[key] = a / b
    results["ratio_lockengine_to_sanlock"] = ratios
    return results


def median_wall_ms(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int = 11) -> dict[str, float]:
    """Median wall time of each whole process, start to exit; the commands take turns (noise hits all)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def cli_figures(sl: SanlockDaemon, le: LockengineDaemon, pycache: Path) -> dict[str, dict[str, float]]:
    """``client status`` through each daemon's own CLI, and a bare interpreter start.

    As installed: byte code cached (a private PYTHONPYCACHEPREFIX, written by a first run), whatever
    PYTHONDONTWRITEBYTECODE the calling shell has."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(pycache), LOCKENGINE_RUN_DIR=str(le.run_dir))
    cli = [sys.executable, "-c", "import sys; from lockengine.cli.main import main; sys.exit(main())", "client",
           "status"]
    median_wall_ms({"warm-up": (cli, env)}, runs=1)  # writes the byte code
    ms = median_wall_ms({"le": (cli, env), "bare": ([sys.executable, "-c", "pass"], env),
                         "sl": ([sl.binary, "client", "status"], sl.env)}, runs=15)
    return {"sanlock": {"cli_status_ms": ms["sl"]},
            "lockengine": {"cli_status_ms": ms["le"], "bare_python_ms": ms["bare"]}}


def growth(sl: SanlockDaemon, le: LockengineDaemon, path: str, bases: dict[str, int], steps: list[int],
           idle: float, io: int, say: Any) -> dict[str, dict[str, float]]:
    """RSS, threads and idle CPU with 1 / 10 / 100 ... joined lockspaces (no leases), then after
    removing them all; the daemons take turns at each step."""
    out: dict[str, dict[str, float]] = {"sanlock": {}, "lockengine": {}}
    assert sl.proc is not None
    joined = 0
    for n in steps:
        new = range(joined, n)
        say(f"== growth: {n} lockspace(s), then {idle:g} s idle: sanlock, then lockengine")
        layout: list[tuple[str, int, list[tuple[str, int]]]] = [(f"G{i}", bases["sanlock"] + i * MiB, []) for i in new]
        holder = _sanlock_hold(sl, path, layout, io)  # "ready": joined; the lockspaces outlive the process
        holder.kill()
        holder.wait()
        out["sanlock"].update({f"{k}_ls{n}": v for k, v in held_figures(sl.proc.pid, idle).items()})
        with Client(le.socket, timeout=600) as c:
            for i in new:
                c.add_lockspace(f"G{i}", 1, path, bases["lockengine"] + i * MiB, io_timeout=io, wait=False)
            for i in new:
                while c.inq_lockspace(f"G{i}").get("state") != "JOINED":
                    time.sleep(0.2)
        out["lockengine"].update({f"{k}_ls{n}": v for k, v in held_figures(le.pid, idle).items()})
        joined = n
    say(f"== growth: removing the {joined} lockspaces")
    rems = [subprocess.Popen([sl.binary, "client", "rem_lockspace", "-s", f"G{i}:1:{path}:{bases['sanlock'] + i * MiB}"],
                             env=sl.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(joined)]
    for p in rems:
        p.wait(timeout=600)
    with Client(le.socket, timeout=600) as c:
        for i in range(joined):
            c.rem_lockspace(f"G{i}")
    time.sleep(2)
    for side, pid in (("sanlock", sl.proc.pid), ("lockengine", le.pid)):
        out[side].update({"rss_mib_removed": rss_mib(pid), "threads_removed": float(threads(pid))})
    return out


def held_growth(sl: SanlockDaemon, le: LockengineDaemon, path: str,
                layouts: dict[str, tuple[str, int, list[tuple[str, int]]] | None], steps: list[int], idle: float,
                io: int, say: Any) -> dict[str, dict[str, float]]:
    """RSS, threads and idle CPU with 10 / 1 000 / 4 000 ... leases held in one lockspace by one
    registered client, the daemons taking turns at each step; then after releasing them all."""
    out: dict[str, dict[str, float]] = {"sanlock": {}, "lockengine": {}}
    sl_layout, le_layout = layouts["sanlock"], layouts["lockengine"]
    assert sl.proc is not None and sl_layout is not None and le_layout is not None
    leases = ",".join(f"{res}={off}" for res, off in sl_layout[2])
    holder = subprocess.Popen(
        ["/usr/bin/python3", str(SIDE_SCRIPT), "holdsteps", sl_layout[0], path, str(sl_layout[1]), str(io), "1", leases],
        env=sl.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None

    def tell(line: str) -> str:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(line + "\n")
        holder.stdin.flush()
        return holder.stdout.readline().strip()

    try:
        if (said := holder.stdout.readline().strip()) != "ready":
            raise RuntimeError(f"sanlock holder said {said!r}")
        name, ls_off, resources = le_layout
        with Client(le.socket, timeout=600) as c:
            c.add_lockspace(name, 1, path, ls_off, io_timeout=io)
            c.register("bench-held")
            held = 0
            for n in steps:
                say(f"== held leases: {n} in one lockspace, then {idle:g} s idle: sanlock, then lockengine")
                if (said := tell(f"acquire {n}")) != f"held {n}":
                    raise RuntimeError(f"sanlock holder said {said!r}")
                out["sanlock"].update({f"{k}_held{n}": v for k, v in held_figures(sl.proc.pid, idle).items()})
                for res, off in resources[held:n]:
                    c.acquire([f"{name}:{res}:{path}:{off}"])
                held = n
                out["lockengine"].update({f"{k}_held{n}": v for k, v in held_figures(le.pid, idle).items()})
            say(f"== held leases: releasing the {held}")
            if (said := tell("release")) != "released":
                raise RuntimeError(f"sanlock holder said {said!r}")
            c.release()
            time.sleep(2)
            for side, pid in (("sanlock", sl.proc.pid), ("lockengine", le.pid)):
                out[side].update({"rss_mib_released": rss_mib(pid), "threads_released": float(threads(pid))})
    finally:
        holder.kill()
        holder.wait()
    return out


def slopes(fig: dict[str, float], steps: list[int], held_steps: list[int]) -> dict[str, float]:
    """How steeply each figure grows: per added lockspace (first to last growth step) and per 1 000
    held leases (first to last held step). A growth row no steeper than sanlock's has ratio <= 1."""
    out: dict[str, float] = {}
    for keys, points, per, suffix in ((("rss_mib", "idle_rss_mib", "threads", "idle_cpu_percent"), steps, 1, "ls"),
                                      (("rss_mib", "idle_rss_mib", "threads", "idle_cpu_percent"), held_steps, 1000,
                                       "held")):
        if len(points) < 2:
            continue
        lo, hi = points[0], points[-1]
        for k in keys:
            a, b = fig.get(f"{k}_{suffix}{lo}"), fig.get(f"{k}_{suffix}{hi}")
            if a is not None and b is not None:
                out[f"{k}_slope_{suffix}"] = (b - a) * per / (hi - lo)
    return out


def held_figures(pid: int, idle_seconds: float) -> dict[str, float]:
    """RSS and threads while holding, idle CPU over ``idle_seconds``, and RSS after that idle time."""
    out = {"rss_mib": rss_mib(pid), "threads": float(threads(pid))}
    out["idle_cpu_percent"] = idle_cpu_percent(pid, idle_seconds)
    out["idle_rss_mib"] = rss_mib(pid)
    return out


def _sanlock_hold(sl: SanlockDaemon, path: str, layout: list[tuple[str, int, list[tuple[str, int]]]], io: int) -> subprocess.Popen[str]:
    spec = json.dumps([[name, off, resources] for name, off, resources in layout])
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(SIDE_SCRIPT), "holdspec", path, str(io), "1", spec],
        env=sl.env, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"sanlock holder said {line!r}")
    return proc


def render(r: dict[str, Any]) -> str:
    rows = [
        ("acquire median (ms)", "acquire_ms", "{:.2f}"),
        ("release median (ms)", "release_ms", "{:.2f}"),
        ("join a never-used host-id slot (s)", "join_new_s", "{:.2f}"),
        ("rejoin the slot it released (s)", "rejoin_released_s", "{:.2f}"),
    ]
    for n in r["clients"]:
        rows.append((f"acquires/s, {n} client(s)", f"acquire_per_s_{n}", "{:.0f}"))
        rows.append((f"releases/s, {n} client(s)", f"release_per_s_{n}", "{:.0f}"))
        rows.append(("  daemon CPU per acquire (ms)", f"acquire_cpu_ms_{n}", "{:.3f}"))
        rows.append(("  daemon CPU per release (ms)", f"release_cpu_ms_{n}", "{:.3f}"))
    held = f"{r['lockspaces']} ls x {r['leases']} leases"
    rows += [
        ("CLI client status, whole process (ms)", "cli_status_ms", "{:.1f}"),
        ("bare python -c pass (ms)", "bare_python_ms", "{:.1f}"),
        ("RSS at start (MiB)", "start_rss_mib", "{:.1f}"),
        ("threads at start", "start_threads", "{:.0f}"),
        (f"RSS, {held} (MiB)", "rss_mib", "{:.1f}"),
        (f"threads, {held}", "threads", "{:.0f}"),
        ("idle CPU, same (% of a core)", "idle_cpu_percent", "{:.3f}"),
        ("RSS after the idle time (MiB)", "idle_rss_mib", "{:.1f}"),
    ]
    for n in r["growth"]:
        rows += [
            (f"RSS, {n} lockspace(s) (MiB)", f"rss_mib_ls{n}", "{:.1f}"),
            (f"  after {r['growth_idle']:g} s idle (MiB)", f"idle_rss_mib_ls{n}", "{:.1f}"),
            ("  threads", f"threads_ls{n}", "{:.0f}"),
            ("  idle CPU (% of a core)", f"idle_cpu_percent_ls{n}", "{:.2f}"),
        ]
    if r["growth"]:
        rows += [("RSS after removing them (MiB)", "rss_mib_removed", "{:.1f}"),
                 ("threads after removing them", "threads_removed", "{:.0f}"),
                 ("slope: RSS per added lockspace (MiB)", "rss_mib_slope_ls", "{:.3f}"),
                 ("  idle RSS per added lockspace (MiB)", "idle_rss_mib_slope_ls", "{:.3f}"),
                 ("  threads per added lockspace", "threads_slope_ls", "{:.2f}"),
                 ("  idle CPU per added lockspace (%)", "idle_cpu_percent_slope_ls", "{:.4f}")]
    for n in r.get("held_leases", []):
        rows += [
            (f"RSS, {n} leases held (MiB)", f"rss_mib_held{n}", "{:.1f}"),
            (f"  after {r['growth_idle']:g} s idle (MiB)", f"idle_rss_mib_held{n}", "{:.1f}"),
            ("  threads", f"threads_held{n}", "{:.0f}"),
            ("  idle CPU (% of a core)", f"idle_cpu_percent_held{n}", "{:.2f}"),
        ]
    if r.get("held_leases"):
        rows += [("RSS after releasing them (MiB)", "rss_mib_released", "{:.1f}"),
                 ("slope: RSS per 1000 held leases (MiB)", "rss_mib_slope_held", "{:.3f}"),
                 ("  idle CPU per 1000 held leases (%)", "idle_cpu_percent_slope_held", "{:.4f}")]
    out = [f"device {r['device']}, io_timeout {r['io_timeout']} s, n={r['count']}, {r['resources']} leases for "
           "throughput",
           f"{'':38} {'lockengine':>12} {'sanlock':>12} {'ratio':>8}"]
    for label, key, fmt in rows:
        a, b = r["lockengine"].get(key), r["sanlock"].get(key)
        ratio = r["ratio_lockengine_to_sanlock"].get(key)
        out.append(
            f"{label:38} {fmt.format(a) if a is not None else '-':>12} {fmt.format(b) if b is not None else '-':>12} "
            f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>8}"
        )
    le = r["lockengine"]
    if le.get("cli_status_ms") and le.get("bare_python_ms"):
        out.append(f"lockengine client status / bare python start: {le['cli_status_ms'] / le['bare_python_ms']:.2f}x")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devkit.bench.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=50, help="acquire/release pairs per daemon (default 50)")
    p.add_argument("--io-timeout", type=int, default=10, help="io_timeout for both daemons (default 10)")
    p.add_argument("--lockspaces", type=int, default=10, help="lockspaces held for the RSS/CPU figure (0: skip)")
    p.add_argument("--leases", type=int, default=100, help="leases held per lockspace (default 100)")
    p.add_argument("--idle-seconds", type=float, default=60, help="how long idle CPU is measured (default 60)")
    p.add_argument("--clients", default="1,8,32", help="client counts for the throughput rows (default 1,8,32)")
    p.add_argument("--resources", type=int, default=400, help="leases the throughput clients share (0: skip)")
    p.add_argument("--growth", default="1,10,100", help="lockspace counts for the growth rows (default 1,10,100; "
                   "empty: skip)")
    p.add_argument("--growth-idle", type=float, default=10, help="idle seconds per growth step (default 10)")
    p.add_argument("--held-leases", default="10,1000,4000", help="lease counts held in one lockspace for the "
                   "held-leases rows (default 10,1000,4000; empty: skip; each lease is a 1 MiB area per daemon)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args(argv)
    r = run(args)
    print(json.dumps(r, indent=2) if args.json else render(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
