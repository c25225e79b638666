"""The hosts themselves: systemd-nspawn machines booted from the shared image, each in its own cgroups.

A host's systemd-nspawn is started through cgexec.py, so that it lives in the host's cgroups from its
first instruction on; its pid + start time go to state.json and to ``nspawn.pid`` in the host's dir
(the watchdog player reads it to find the host's init).

A host's root is the image under an overlay: by default nspawn's own (``--volatile=overlay``, a tmpfs
that every boot starts afresh), or with ``persistent_root`` one the harness mounts in the host's dir
(``root/``, upper layer ``upper/``), so that what a host installed survives ``restart`` as on a real disk.

Undo kinds: ``nspawn`` (stop a host for good: release its storage faults, thaw it, kill its init,
its nspawn and whatever is left in its cgroup), ``nspawn-runtime`` (the per-machine dirs systemd
keeps below /run/systemd/nspawn) and ``root-overlay`` (unmount a persistent root).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import cgroups, faults, undo
from .files import write_atomic
from .plan import IN_HOST_WATCHDOGS
from .procs import Children, proc_start_time, running, signal_recorded, stop_recorded, wait_gone
from .records import HostRecord
from .state import State
from .tools import require_tools, run, say
from .watchdog_player import host_init

CGEXEC = Path(__file__).resolve().parent / "cgexec.py"
NSPAWN_RUNTIME = Path("/run/systemd/nspawn")


def init_of(h: HostRecord) -> tuple[int, int] | None:
    """(pid, start time) of the host's init, None when the host is not running."""
    init = host_init(str(Path(h["dir"]) / "nspawn.pid"))
    return (init[0], init[1]) if init else None


def argv(state: State, name: str) -> list[str]:
    h = state.hosts[name]
    hdir = Path(h["dir"])
    config = state.data["config"]
    root = ["--volatile=overlay", f"--directory={config['image']}"] if not config.get("persistent_root") \
        else [f"--directory={hdir / 'root'}"]
    args = [
        require_tools(["systemd-nspawn"])["systemd-nspawn"], "--quiet", "--register=no", "--keep-unit",
        "--boot", *root, "--console=read-only",
        f"--machine={name}", f"--hostname={name}", f"--uuid={h['machine_id']}", "--resolv-conf=off",
        # --uuid is the machine-id: systemd writes it into the (empty, overlaid) /etc/machine-id at boot;
        # a bind mount would look "transient" and fail systemd-machine-id-commit.service.
        "--timezone=off", "--link-journal=no", f"--network-namespace-path=/run/netns/{h['netns']}",
        f"--bind-ro={state.dir / 'etc-hosts'}:/etc/hosts",
        f"--bind-ro={hdir / 'etc/hostname'}:/etc/hostname",
        f"--bind-ro={hdir / 'ssh_host_ed25519_key'}:/etc/ssh/ssh_host_ed25519_key",
        f"--bind-ro={hdir / 'ssh_host_ed25519_key.pub'}:/etc/ssh/ssh_host_ed25519_key.pub",
        f"--bind-ro={hdir / 'root-ssh'}:/root/.ssh",
    ]
    args += [f"--bind={loop['device']}:{loop['path']}" for loop in h["loops"]]
    args += [f"--bind={hdir / 'watchdog'}:{path}" for path in IN_HOST_WATCHDOGS]
    args += [f"--bind-ro={src}:{dst}" for src, dst in config.get("bind_ro", [])]
    return args


def start(state: State, name: str, children: Children) -> None:
    h = state.hosts[name]
    hdir = Path(h["dir"])
    procs_files = [str(Path(p) / "cgroup.procs") for p in h["cgroups"].values()]
    cmd = [sys.executable, str(CGEXEC), *procs_files, "--", *argv(state, name)]
    env = dict(os.environ, SYSTEMD_NSPAWN_LOCK="0")  # the image is shared read-only: no lock files
    log = open(hdir / "nspawn.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        if not h.get("nspawn"):
            Nspawn(host=name).log(state)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    finally:
        log.close()
    rec = children.add(proc)
    h["nspawn"] = rec
    state.save()
    write_atomic(hdir / "nspawn.pid", f"{rec['pid']} {rec['start']}\n")


def mount_root(state: State, name: str) -> None:
    """The persistent root of a host: an overlay of the image (read-only lower) and ``upper/`` in its dir."""
    hdir = Path(state.hosts[name]["dir"])
    for sub in ("root", "upper", "work"):
        (hdir / sub).mkdir(exist_ok=True)
    RootOverlay(host=name, root=str(hdir / "root")).log(state)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={state.data['config']['image']},upperdir={hdir / 'upper'},workdir={hdir / 'work'}",
         str(hdir / "root")])


def is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == path for line in f)


def problem(h: HostRecord) -> str | None:
    """Why the host cannot come up (its nspawn exited, with the end of its log), else None."""
    if running(h.get("nspawn")):
        return None
    log = Path(h["dir"]) / "nspawn.log"
    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
    return f"systemd-nspawn exited; end of {log}:\n{tail}"


def kill(h: HostRecord) -> bool:
    """SIGKILL the host's init, wait for its nspawn to exit; False when it was not running."""
    rec = h.get("nspawn")
    if rec is None or not running(rec):
        return False
    init = init_of(h)
    if init is not None:
        signal_recorded(init[0], init[1], signal.SIGKILL)
    cgroups.thaw_if_frozen(h)
    if not wait_gone(rec["pid"], rec["start"], 15.0):
        say(f"{h['name']}: systemd-nspawn {rec['pid']} still there 15 s after its init died; SIGKILL")
        stop_recorded(rec["pid"], rec["start"], term_timeout=0.1)
    return True


def stop_for_good(h: HostRecord) -> None:
    rec = h.get("nspawn")
    # A process stuck on a hung or throttled path would keep the host (and its cgroups) alive:
    # release its queued I/O first.
    faults.release_storage(h)
    cgroups.thaw_if_frozen(h)
    if rec:
        init = init_of(h)
        if init is not None:
            signal_recorded(init[0], init[1], signal.SIGKILL)
        if not wait_gone(rec["pid"], rec["start"], 15.0):
            stop_recorded(rec["pid"], rec["start"], term_timeout=0.1)
    # Anything still in the host's own cgroup belongs to the host (e.g. its init orphaned by a
    # killed nspawn): it is ours to stop.
    freezer = cgroups.freezer_of(h)
    leftover = cgroups.procs(freezer) if freezer.exists() else []
    for pid in leftover:
        start_time = proc_start_time(pid)
        if start_time is not None:
            say(f"{h['name']}: killing leftover process {pid} in the host's cgroup")
            signal_recorded(pid, start_time, signal.SIGKILL)


# ---------------------------------------------------------------- undo kinds
@undo.kind
@dataclasses.dataclass(frozen=True)
class Nspawn(undo.UndoStep):
    KIND = "nspawn"
    host: str

    def undo(self, state: State) -> None:
        h = state.hosts.get(self.host)
        if h is not None:
            stop_for_good(h)


@undo.kind
@dataclasses.dataclass(frozen=True)
class NspawnRuntime(undo.UndoStep):
    KIND = "nspawn-runtime"
    made: bool
    hosts: list[str]

    @classmethod
    def before_start(cls, hosts: list[str]) -> NspawnRuntime:
        return cls(made=not NSPAWN_RUNTIME.exists(), hosts=list(hosts))

    def undo(self, state: State) -> None:
        propagate = NSPAWN_RUNTIME / "propagate"
        for name in self.hosts:
            with contextlib.suppress(FileNotFoundError):
                (propagate / name).rmdir()
        if self.made:
            for path in (propagate, NSPAWN_RUNTIME):
                with contextlib.suppress(FileNotFoundError):
                    if not any(path.iterdir()):
                        path.rmdir()


@undo.kind
@dataclasses.dataclass(frozen=True)
class RootOverlay(undo.UndoStep):
    KIND = "root-overlay"
    host: str
    root: str

    def undo(self, state: State) -> None:
        if is_mounted(self.root):
            run(["umount", self.root])
