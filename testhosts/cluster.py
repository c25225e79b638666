"""The test cluster: N systemd-nspawn hosts on a bridge, shared loop-device disks, faults, watchdogs.

Python API (used by pytest system tests, the demo, and through the CLI by molecule):

    from tests.cluster import Cluster
    c = Cluster()                       # state dir: $LOCKENGINE_TESTHOSTS_STATE or /run/lockengine-testhosts
    c.up(3, disks=2, sector_size=512, watchdog_timeout=10)
    rc, out, err = c.run("node1", "hostname", timeout=10)
    c.fail_storage("node3"); c.heal_storage("node3")
    c.down()
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import cgroups, image, keys, net, storage
from .common import (
    BRIDGE,
    CGROUP_HIERARCHIES,
    DEFAULT_DISK_SIZE,
    DEFAULT_IMAGE_DIR,
    DEFAULT_STATE_DIR,
    DEFAULT_WATCHDOG_TIMEOUT,
    GATEWAY,
    GUARD,
    IMAGE_ENV,
    IN_HOST_DISK,
    IN_HOST_WATCHDOGS,
    MAX_HOSTS,
    STATE_ENV,
    SUBNET,
    HarnessError,
    proc_start_time,
    require_tools,
    same_process,
    say,
    signal_recorded,
    stop_recorded,
    wait_gone,
    write_atomic,
)
from .ssh import SshPool
from .state import State, locked_dir
from .watchdog import host_init, read_events, read_status

HERE = Path(__file__).resolve().parent
CGEXEC = HERE / "cgexec.py"
WATCHDOG = HERE / "watchdog.py"
NSPAWN_RUNTIME = Path("/run/systemd/nspawn")
CONTROLLER_TOOLS = ("ip", "losetup", "blockdev", "systemd-nspawn", "umount")
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


@dataclass(frozen=True)
class Host:
    """What a client needs to reach one host (also molecule's instance config keys)."""

    name: str
    address: str
    user: str
    port: int
    identity_file: str
    disks: list[str] = field(default_factory=list)
    watchdog: str = IN_HOST_WATCHDOGS[0]
    netns: str = ""


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


def default_image_dir() -> Path:
    return Path(os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE_DIR)


def _parse_bind(spec: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(spec, tuple):
        src, dst = spec
    else:
        if spec.count(":") != 1:
            raise HarnessError(f"--bind-ro {spec!r}: expected SRC:DST (absolute paths, no other ':')")
        src, dst = spec.split(":")
    if not os.path.isabs(src) or not os.path.isabs(dst):
        raise HarnessError(f"--bind-ro {src}:{dst}: both paths must be absolute")
    if not os.path.exists(src):
        raise HarnessError(f"--bind-ro {src}:{dst}: {src} does not exist")
    return os.path.realpath(src), dst


HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")  # a hostname, and "lev-" + it fits IFNAMSIZ (15)


def _host_names(n: int, prefix: str, names: Sequence[str] | None) -> list[str]:
    chosen = list(names) if names is not None else [f"{prefix}{i}" for i in range(1, n + 1)]
    if len(chosen) != n:
        raise HarnessError(f"{len(chosen)} host names given for {n} hosts")
    for name in chosen:
        if not HOST_NAME.match(name):
            raise HarnessError(f"host name {name!r}: use lower-case letters, digits and '-', starting with a letter, "
                               f"at most 11 characters (network interface names are limited to 15)")
    if len(set(chosen)) != n:
        raise HarnessError(f"host names must be distinct: {chosen}")
    return chosen


class Cluster:
    def __init__(self, state_dir: str | Path | None = None, *, image_dir: str | Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.state_dir = self.state_dir.absolute()
        self.image_dir = Path(image_dir) if image_dir is not None else default_image_dir()
        self._ssh: SshPool | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ paths and description
    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def description_path(self) -> Path:
        return self.state_dir / "cluster.json"

    @property
    def identity_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    def _state(self) -> State:
        state = State.load(self.state_dir)
        if state is None:
            raise HarnessError(f"no test cluster is up in {self.state_dir} (run `python -m tests.cluster up N`)")
        return state

    def is_up(self) -> bool:
        state = State.load(self.state_dir)
        return state is not None and state.data.get("phase") == "up"

    @property
    def hosts(self) -> list[Host]:
        state = self._state()
        return [self._host_view(state, h) for h in state.hosts.values()]

    def host(self, name: str) -> Host:
        state = self._state()
        return self._host_view(state, state.host(name))

    def _host_view(self, state: State, h: dict[str, Any]) -> Host:
        return Host(name=h["name"], address=h["address"], user="root", port=22,
                    identity_file=str(self.identity_file), disks=[loop["path"] for loop in h["loops"]],
                    netns=h["netns"])

    def describe(self) -> dict[str, Any]:
        state = self._state()
        hosts = []
        for h in state.hosts.values():
            view = asdict(self._host_view(state, h))
            view["instance"] = h["name"]
            view["watchdogs"] = list(IN_HOST_WATCHDOGS)
            view["loop_devices"] = {loop["path"]: loop["device"] for loop in h["loops"]}
            view["host_key"] = h["host_key_pub"].strip()
            view["machine_id"] = h["machine_id"]
            hosts.append(view)
        config = state.data["config"]
        return {
            "state_dir": str(self.state_dir), "inventory": str(self.inventory_path),
            "identity_file": str(self.identity_file), "subnet": SUBNET, "gateway": GATEWAY, "bridge": BRIDGE,
            "watchdog_timeout": config.get("watchdog_timeout"), "image": config.get("image"),
            "bind_ro": config.get("bind_ro", []),
            "disks": [{"index": d["index"], "path": d["host_path"], "backing_file": d["backing"],
                       "size": d["size"], "sector_size": d["sector_size"]} for d in state.data["disks"]],
            "hosts": hosts,
        }

    def molecule_instances(self) -> list[dict[str, Any]]:
        return [{"instance": h.name, "address": h.address, "user": h.user, "port": h.port,
                 "identity_file": h.identity_file} for h in self.hosts]

    # ------------------------------------------------------------------ up
    def up(self, n: int, *, disks: int = 1, sector_size: int | Sequence[int] = 512,
           disk_size: int = DEFAULT_DISK_SIZE, watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
           bind_ro: Sequence[str | tuple[str, str]] = (), prefix: str = "node", names: Sequence[str] | None = None,
           boot_timeout: float = 120.0, keep_on_failure: bool = False) -> dict[str, Any]:
        """Start n hosts; return the machine-readable description (also in cluster.json).

        Hosts are named <prefix>1..<prefix>n unless `names` (n of them) is given; host i gets 10.231.0.(10+i).
        """
        sizes = self._validate_up(n, disks, sector_size, disk_size, watchdog_timeout)
        host_names = _host_names(n, prefix, names)
        binds = [_parse_bind(b) for b in bind_ro]
        if ":" in str(self.state_dir):
            raise HarnessError(f"state dir {self.state_dir} must not contain ':' (nspawn bind syntax)")
        existing = State.load(self.state_dir)
        if existing is not None:
            raise HarnessError(self._already_up_message(existing))
        if os.geteuid() != 0:
            raise HarnessError("the test hosts need root (network namespaces, loop devices, cgroups, nspawn)")
        require_tools(CONTROLLER_TOOLS)
        cgroups.check_hierarchies()
        root = image.ensure_image(self.image_dir)  # a cache, not part of the cluster: kept by down
        net.check_free()
        made_dir = self._make_state_dir()
        with locked_dir(self.state_dir):
            existing = State.load(self.state_dir)
            if existing is not None:  # lost a race with another `up`
                raise HarnessError(self._already_up_message(existing))
            state = State.new(self.state_dir, made_dir)
            state.data["config"] = {
                "hosts": n, "names": host_names, "disks": disks, "sector_sizes": sizes, "disk_size": disk_size,
                "watchdog_timeout": watchdog_timeout, "bind_ro": [list(b) for b in binds], "image": str(root),
                "boot_timeout": boot_timeout,
            }
            state.save()
            started = time.monotonic()
            try:
                self._build(state, host_names, sizes, disk_size, watchdog_timeout, boot_timeout)
            except BaseException as exc:
                if keep_on_failure:
                    say(f"up failed ({exc}); leaving what was made for inspection: run `down` to remove it")
                else:
                    say(f"up failed ({exc}); removing what was made")
                    try:
                        self._teardown(state)
                    except BaseException as cleanup_exc:  # keep the original error; down can retry
                        say(f"cleanup after the failed up was incomplete ({cleanup_exc}); run `down` again")
                raise
            say(f"{n} host(s) up in {time.monotonic() - started:.1f} s; inventory: {self.inventory_path}")
            return self.describe()

    @staticmethod
    def _validate_up(n: int, disks: int, sector_size: int | Sequence[int], disk_size: int,
                     watchdog_timeout: float) -> list[int]:
        if not 1 <= n <= MAX_HOSTS:
            raise HarnessError(f"number of hosts must be 1..{MAX_HOSTS}, not {n}")
        if not 0 <= disks <= 16:
            raise HarnessError(f"number of disks must be 0..16, not {disks}")
        sizes = [sector_size] * disks if isinstance(sector_size, int) else list(sector_size)
        if isinstance(sector_size, int) and sector_size not in (512, 4096):
            raise HarnessError(f"sector size must be 512 or 4096, not {sector_size}")
        if not isinstance(sector_size, int) and len(sizes) != disks:
            raise HarnessError(f"{len(sizes)} sector sizes given for {disks} disk(s): give one, or one per disk")
        bad = [s for s in sizes if s not in (512, 4096)]
        if bad:
            raise HarnessError(f"sector size must be 512 or 4096, not {bad[0]}")
        if disk_size < 1024 * 1024 or disk_size % 4096:
            raise HarnessError(f"disk size must be at least 1 MiB and a multiple of 4096, not {disk_size}")
        if watchdog_timeout <= 0:
            raise HarnessError(f"watchdog timeout must be positive, not {watchdog_timeout}")
        return sizes

    def _already_up_message(self, state: State) -> str:
        hosts = ", ".join(state.hosts) or "none yet"
        phase = state.data.get("phase")
        if phase == "up":
            return (f"a test cluster is already up in {self.state_dir} (hosts: {hosts}); "
                    f"run `python -m tests.cluster down` first")
        return (f"{self.state_dir} holds a cluster in phase {phase!r} (an interrupted up or down?): "
                f"run `python -m tests.cluster down` to remove what it made")

    def _make_state_dir(self) -> bool:
        try:
            self.state_dir.mkdir(parents=True, mode=0o700)
            return True
        except FileExistsError:
            if not self.state_dir.is_dir():
                raise HarnessError(f"state dir {self.state_dir} exists and is not a directory") from None
            if any(p.name != "state.json" for p in self.state_dir.iterdir()):
                raise HarnessError(f"state dir {self.state_dir} exists and is not empty; refusing to use it") from None
            return False

    def _build(self, state: State, names: list[str], sizes: list[int], disk_size: int, watchdog_timeout: float,
               boot_timeout: float) -> None:
        say(f"starting {len(names)} host(s) in {self.state_dir}")
        keys.make_ed25519(self.identity_file, "lockengine-testhosts controller")
        hosts_file = self.state_dir / "etc-hosts"
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
                 f"{GATEWAY} lockengine-controller"]
        lines += [f"{net.host_address(i)} {name}" for i, name in enumerate(names, 1)]
        hosts_file.write_text("\n".join(lines) + "\n")

        # network (record first: a half-made step is still undone)
        state.record("netns-dir", made_dir=not net.NETNS_DIR.exists(), made_mount=not net.netns_dir_is_mount())
        state.record("bridge", name=BRIDGE)
        net.make_bridge()
        state.record("guard-route", dst=GUARD)
        net.make_guard_route()
        for parent in cgroups.parent_dirs():
            if not parent.exists():
                state.record("cgroup-parent", path=str(parent))
                parent.mkdir()

        for i, name in enumerate(names, 1):
            self._make_host(state, i, name)

        # shared disks: one backing file each, one loop device per host over it (before the hosts
        # start: nspawn binds device nodes at start)
        disks_dir = self.state_dir / "disks"
        disks_dir.mkdir()
        for d, sector in enumerate(sizes):
            backing = disks_dir / f"disk{d}.img"
            state.record("disk", backing=str(backing))
            storage.make_backing_file(backing, disk_size)
            state.data["disks"].append({"index": d, "backing": str(backing), "size": disk_size,
                                        "sector_size": sector, "host_path": IN_HOST_DISK.format(index=d)})
            state.save()
            for name in names:
                dev = storage.attach(backing, sector)
                state.hosts[name]["loops"].append({"disk": d, "path": IN_HOST_DISK.format(index=d), "device": dev})
                state.save()
                if storage.sector_size(dev) != sector:
                    raise HarnessError(f"{dev}: logical sector size is {storage.sector_size(dev)}, wanted {sector}")

        for name in names:
            self._start_watchdog(state, name, watchdog_timeout)
        # systemd-nspawn keeps per-machine mount-propagation dirs below /run/systemd/nspawn
        state.record("nspawn-runtime", made=not NSPAWN_RUNTIME.exists(), hosts=names)
        for name in names:
            self._start_nspawn(state, name)
        self._wait_ready(state, names, boot_timeout)
        state.data["phase"] = "up"
        state.save()
        self._write_outputs(state)

    def _make_host(self, state: State, index: int, name: str) -> None:
        hdir = self.state_dir / "hosts" / name
        hdir.mkdir(parents=True)
        machine_id = uuid.uuid4().hex
        (hdir / "etc").mkdir()
        (hdir / "etc" / "hostname").write_text(name + "\n")
        (hdir / "etc" / "machine-id").write_text(machine_id + "\n")
        host_key = hdir / "ssh_host_ed25519_key"
        pub = keys.make_ed25519(host_key, f"root@{name}")
        root_ssh = hdir / "root-ssh"
        root_ssh.mkdir(mode=0o700)
        write_atomic(root_ssh / "authorized_keys", Path(f"{self.identity_file}.pub").read_text(), 0o600)
        os.mkfifo(hdir / "watchdog", 0o600)
        cg = cgroups.host_dirs(name)
        state.hosts[name] = {
            "name": name, "index": index, "address": net.host_address(index), "netns": net.netns_name(name),
            "veth": net.veth_name(name), "dir": str(hdir), "machine_id": machine_id, "host_key_pub": pub,
            "cgroups": {h: str(p) for h, p in cg.items()}, "loops": [], "watchdog": None, "nspawn": None,
        }
        state.save()
        for path in cg.values():
            state.record("cgroup", path=str(path))
            path.mkdir()
        state.record("netns", name=net.netns_name(name))
        state.record("link", name=net.veth_name(name))
        net.make_netns(name, net.host_address(index))

    def _start_watchdog(self, state: State, name: str, timeout: float) -> None:
        h = state.hosts[name]
        hdir = Path(h["dir"])
        status = hdir / "watchdog.json"
        log = open(hdir / "watchdog.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, str(WATCHDOG), "--fifo", str(hdir / "watchdog"), "--status", str(status),
                 "--events", str(hdir / "watchdog.events"), "--timeout", str(timeout),
                 "--nspawn-pidfile", str(hdir / "nspawn.pid"),
                 "--freezer", str(Path(h["cgroups"]["freezer"]) / "freezer.state")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self._children[proc.pid] = proc
        start = proc_start_time(proc.pid)
        h["watchdog"] = {"pid": proc.pid, "start": start}
        state.record("process", role="watchdog", host=name, pid=proc.pid, start=start)
        deadline = time.monotonic() + 10
        while not status.exists():  # its reader is open once it wrote its first status
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"watchdog of {name} did not start: {(hdir / 'watchdog.log').read_text()[-500:]}")
            time.sleep(0.02)

    def _nspawn_argv(self, state: State, name: str) -> list[str]:
        h = state.hosts[name]
        hdir = Path(h["dir"])
        config = state.data["config"]
        argv = [
            require_tools(["systemd-nspawn"])["systemd-nspawn"], "--quiet", "--register=no", "--keep-unit",
            "--boot", "--volatile=overlay", "--console=read-only", f"--directory={config['image']}",
            f"--machine={name}", f"--hostname={name}", f"--uuid={h['machine_id']}", "--resolv-conf=off",
            # --uuid is the machine-id: systemd writes it into the (empty, overlaid) /etc/machine-id at boot;
            # a bind mount would look "transient" and fail systemd-machine-id-commit.service.
            "--timezone=off", "--link-journal=no", f"--network-namespace-path=/run/netns/{h['netns']}",
            f"--bind-ro={self.state_dir / 'etc-hosts'}:/etc/hosts",
            f"--bind-ro={hdir / 'etc/hostname'}:/etc/hostname",
            f"--bind-ro={hdir / 'ssh_host_ed25519_key'}:/etc/ssh/ssh_host_ed25519_key",
            f"--bind-ro={hdir / 'ssh_host_ed25519_key.pub'}:/etc/ssh/ssh_host_ed25519_key.pub",
            f"--bind-ro={hdir / 'root-ssh'}:/root/.ssh",
        ]
        argv += [f"--bind={loop['device']}:{loop['path']}" for loop in h["loops"]]
        argv += [f"--bind={hdir / 'watchdog'}:{path}" for path in IN_HOST_WATCHDOGS]
        argv += [f"--bind-ro={src}:{dst}" for src, dst in config.get("bind_ro", [])]
        return argv

    def _start_nspawn(self, state: State, name: str) -> None:
        h = state.hosts[name]
        hdir = Path(h["dir"])
        procs_files = [str(Path(p) / "cgroup.procs") for p in h["cgroups"].values()]
        argv = [sys.executable, str(CGEXEC), *procs_files, "--", *self._nspawn_argv(state, name)]
        env = dict(os.environ, SYSTEMD_NSPAWN_LOCK="0")  # the image is shared read-only: no lock files
        log = open(hdir / "nspawn.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            if not h.get("nspawn"):
                state.record("nspawn", host=name)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)
        finally:
            log.close()
        self._children[proc.pid] = proc
        start = proc_start_time(proc.pid)
        h["nspawn"] = {"pid": proc.pid, "start": start}
        state.save()
        write_atomic(hdir / "nspawn.pid", f"{proc.pid} {start}\n")

    def _nspawn_problem(self, state: State, name: str) -> str | None:
        rec = state.hosts[name].get("nspawn")
        if rec and same_process(rec["pid"], rec["start"]):
            return None
        log = Path(state.hosts[name]["dir"]) / "nspawn.log"
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        return f"systemd-nspawn exited; end of {log}:\n{tail}"

    def _wait_ready(self, state: State, names: Sequence[str], timeout: float) -> None:
        say(f"waiting for sshd on {', '.join(names)}")
        deadline = time.monotonic() + timeout
        for name in names:
            h = state.hosts[name]

            def problem(name: str = name) -> str | None:
                return self._nspawn_problem(state, name)

            self.ssh.wait_ready(name, h["address"], h["host_key_pub"], max(1.0, deadline - time.monotonic()),
                                problem)

    def _write_outputs(self, state: State) -> None:
        write_atomic(self.description_path, json.dumps(self.describe(), indent=2) + "\n")
        inventory: dict[str, Any] = {"all": {"children": {"lockengine_testhosts": {"hosts": {}}}}}
        group = inventory["all"]["children"]["lockengine_testhosts"]["hosts"]
        disks = [d["host_path"] for d in state.data["disks"]]
        for h in state.hosts.values():
            group[h["name"]] = {
                "ansible_host": h["address"], "ansible_port": 22, "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.identity_file),
                "ansible_ssh_common_args": SSH_COMMON_ARGS, "ansible_python_interpreter": "/usr/bin/python3",
                "lockengine_test_disks": list(disks), "lockengine_test_watchdog": IN_HOST_WATCHDOGS[0],
            }
        write_atomic(self.inventory_path, "# written by python -m tests.cluster up\n"
                     + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False, width=1000))

    # ------------------------------------------------------------------ ssh
    @property
    def ssh(self) -> SshPool:
        if self._ssh is None:
            self._ssh = SshPool(self.identity_file)
        return self._ssh

    def run(self, host: str, cmd: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """Run a shell command on a host over SSH (paramiko): (exit status, stdout, stderr).

        Raises HostTimeout when the host does not answer in time (frozen, hung I/O) and
        HostUnreachable when it refuses the connection (stopped, crashed, reset).
        """
        h = self._state().host(host)
        return self.ssh.run(host, h["address"], h["host_key_pub"], cmd, timeout)

    def host_key_fingerprint(self, host: str, timeout: float = 10.0) -> str:
        """SHA256 fingerprint of the host key the host's live sshd presents."""
        h = self._state().host(host)
        key = self.ssh.server_key(host, h["address"], timeout)
        return keys.fingerprint(f"{key.get_name()} {key.get_base64()}")

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()

    # ------------------------------------------------------------------ lifecycle of one host
    def init_pid(self, host: str) -> int | None:
        h = self._state().host(host)
        init = host_init(str(Path(h["dir"]) / "nspawn.pid"))
        return init[0] if init else None

    def crash(self, host: str) -> None:
        """Kill the host at once (SIGKILL of its init: every process in it dies)."""
        with self._locked() as state:
            h = state.host(host)
            if not self._kill_host(state, h):
                raise HarnessError(f"{host} is not running")
            self.ssh.drop(host)

    def restart(self, host: str, timeout: float | None = None) -> None:
        """Boot the host again with the same hostname, machine-id, host keys and address.

        A running host is reset first (as a hard reset would); storage faults stay as they are.
        """
        with self._locked() as state:
            h = state.host(host)
            self._kill_host(state, h)
            self.ssh.drop(host)
            freezer = Path(h["cgroups"]["freezer"])
            if cgroups.freezer_state(freezer) != "THAWED":  # frozen while down: boot it thawed
                cgroups.set_frozen(freezer, False)
            self._start_nspawn(state, host)
            self._wait_ready(state, [host], timeout or state.data["config"].get("boot_timeout", 120.0))

    def _kill_host(self, state: State, h: dict[str, Any]) -> bool:
        """SIGKILL the host's init, wait for its nspawn to exit; False when it was not running."""
        rec = h.get("nspawn")
        if not rec or not same_process(rec["pid"], rec["start"]):
            return False
        init = host_init(str(Path(h["dir"]) / "nspawn.pid"))
        if init is not None:
            signal_recorded(init[0], init[1], signal.SIGKILL)
        # cgroup-v1 freezer holds even SIGKILL: a frozen host must thaw to die.
        freezer = Path(h["cgroups"]["freezer"])
        if freezer.exists() and cgroups.freezer_state(freezer) != "THAWED":
            cgroups.set_frozen(freezer, False)
        if not wait_gone(rec["pid"], rec["start"], 15.0):
            say(f"{h['name']}: systemd-nspawn {rec['pid']} still there 15 s after its init died; SIGKILL")
            stop_recorded(rec["pid"], rec["start"], term_timeout=0.1)
        self._reap_children()
        return True

    def _reap_children(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    # ------------------------------------------------------------------ faults
    def _loops(self, h: dict[str, Any], disk: int | None) -> list[dict[str, Any]]:
        loops: list[dict[str, Any]] = h["loops"]
        if disk is None:
            return loops
        chosen = [loop for loop in loops if loop["disk"] == disk]
        if not chosen:
            raise HarnessError(f"{h['name']} has no disk {disk} (disks: {[loop['disk'] for loop in loops]})")
        return chosen

    def fail_storage(self, host: str, disk: int | None = None) -> None:
        """The host's path fails: its writes get EPERM (reads still work); other hosts are unaffected."""
        with self._locked() as state:
            for loop in self._loops(state.host(host), disk):
                storage.set_read_only(loop["device"], True)

    def slow_storage(self, host: str, iops: int = 1, *, bps: int = 0, disk: int | None = None) -> None:
        """Throttle the host's path (blkio, this host's cgroup only): iops=1 makes each I/O take ~1 s."""
        if iops < 0 or bps < 0 or (iops == 0 and bps == 0):
            raise HarnessError("slow-storage needs a positive --iops or --bps")
        with self._locked() as state:
            h = state.host(host)
            for loop in self._loops(h, disk):
                storage.set_throttle(Path(h["cgroups"]["blkio"]), loop["device"], iops=iops, bps=bps)

    def hang_storage(self, host: str, disk: int | None = None) -> None:
        """I/O of the host on its path hangs (1 byte/s: a 512-byte I/O takes ~8 minutes) until healed."""
        self.slow_storage(host, 0, bps=1, disk=disk)

    def heal_storage(self, host: str, disk: int | None = None) -> None:
        """Undo fail/slow/hang: writable again, no throttle (queued I/O is released)."""
        with self._locked() as state:
            h = state.host(host)
            for loop in self._loops(h, disk):
                storage.set_read_only(loop["device"], False)
                storage.set_throttle(Path(h["cgroups"]["blkio"]), loop["device"])

    def freeze(self, host: str) -> None:
        """Every process of the host stops (freezer cgroup): a hung host."""
        with self._locked() as state:
            h = state.host(host)
            cgroups.set_frozen(Path(h["cgroups"]["freezer"]), True)

    def thaw(self, host: str) -> None:
        with self._locked() as state:
            h = state.host(host)
            cgroups.set_frozen(Path(h["cgroups"]["freezer"]), False)

    # ------------------------------------------------------------------ watchdog
    def watchdog(self, host: str) -> dict[str, Any]:
        """The virtual watchdog's state: armed, armed_at, last_pet, pets, resets [...] (times: epoch s)."""
        h = self._state().host(host)
        status = read_status(str(Path(h["dir"]) / "watchdog.json"))
        rec = h.get("watchdog")
        status["running"] = bool(rec and same_process(rec["pid"], rec["start"]))
        return status

    def watchdog_resets(self, host: str) -> list[dict[str, Any]]:
        resets: list[dict[str, Any]] = self.watchdog(host).get("resets", [])
        return resets

    def watchdog_events(self, host: str) -> list[dict[str, Any]]:
        h = self._state().host(host)
        return read_events(str(Path(h["dir"]) / "watchdog.events"))

    # ------------------------------------------------------------------ status
    def status(self) -> list[dict[str, Any]]:
        state = self._state()
        now = time.time()
        result = []
        for h in state.hosts.values():
            rec = h.get("nspawn")
            running = bool(rec and same_process(rec["pid"], rec["start"]))
            init = host_init(str(Path(h["dir"]) / "nspawn.pid")) if running else None
            freezer = Path(h["cgroups"]["freezer"])
            frozen = freezer.exists() and cgroups.freezer_state(freezer) in ("FROZEN", "FREEZING")
            wd = self.watchdog(h["name"])
            last_pet = wd.get("last_pet")
            disks = []
            for loop in h["loops"]:
                dev = loop["device"]
                read_only = storage.is_read_only(dev) if Path(dev).exists() else False
                throttle = storage.throttle_of(Path(h["cgroups"]["blkio"]), dev) if Path(dev).exists() else {}
                words = (["ro"] if read_only else ["rw"]) + (["throttled"] if throttle else [])
                disks.append({"path": loop["path"], "device": dev, "read_only": read_only, "throttle": throttle,
                              "state": "+".join(words)})
            result.append({
                "name": h["name"], "address": h["address"], "alive": init is not None, "frozen": frozen,
                "nspawn_pid": rec["pid"] if running and rec else None, "init_pid": init[0] if init else None,
                "watchdog": {
                    "running": wd.get("running", False), "timeout": wd.get("timeout"),
                    "armed": wd.get("armed", False), "last_pet": last_pet,
                    "last_pet_age": round(now - last_pet, 2) if last_pet else None,
                    "pets": wd.get("pets", 0), "resets": len(wd.get("resets", [])),
                    "last_reset": wd["resets"][-1]["time"] if wd.get("resets") else None,
                },
                "storage": disks,
            })
        return result

    def check_isolation(self, probe: str = "192.0.2.1") -> dict[str, Any]:
        """Route lookups only (no packet sent): nothing outside the test subnet is routable from a host,
        and the controller routes the wider test range to `unreachable`."""
        state = self._state()
        hosts = {}
        for h in state.hosts.values():
            routable, detail = net.route_get_in_netns(h["name"], probe)
            hosts[h["name"]] = {"routable": routable, "detail": detail}
        guard = net.guard_route_present()
        to_host = net.route_get_controller(next(iter(state.hosts.values()))["address"]) if state.hosts else ""
        return {"probe": probe, "hosts": hosts, "controller_guard_route": guard,
                "controller_route_to_hosts": to_host,
                "ok": not any(v["routable"] for v in hosts.values()) and guard and f"dev {BRIDGE}" in to_host}

    # ------------------------------------------------------------------ down
    def down(self) -> bool:
        """Remove everything this cluster made (also after a failed or interrupted up).

        Returns False when there was nothing to remove.
        """
        self.close()
        if State.load(self.state_dir) is None:
            return False
        with locked_dir(self.state_dir):
            state = State.load(self.state_dir)
            if state is None:
                return False
            self._teardown(state)
        return True

    def _teardown(self, state: State) -> None:
        self.close()
        state.data["phase"] = "destroying"
        state.save()
        errors: list[str] = []
        for entry in list(reversed(state.undo)):
            try:
                self._undo(state, entry)
            except Exception as exc:  # keep going: remove all we can, report the rest
                errors.append(f"{entry['kind']} {entry}: {exc}")
                continue
            state.forget(entry)
        self._reap_children()
        if errors:
            raise HarnessError("down could not remove everything (state kept; run down again):\n  "
                               + "\n  ".join(errors))
        made_dir = state.data.get("made_state_dir", False)
        for path in sorted(self.state_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        if made_dir:
            self.state_dir.rmdir()

    def _undo(self, state: State, entry: dict[str, Any]) -> None:
        kind = entry["kind"]
        if kind == "nspawn":
            h = state.hosts.get(entry["host"])
            if h is not None:
                self._stop_host_for_good(h)
        elif kind == "process":
            stop_recorded(entry["pid"], entry["start"])
        elif kind == "disk":
            backing = Path(entry["backing"])
            for dev in storage.loops_over(backing):
                storage.detach(dev, backing)
            deadline = time.monotonic() + 10
            while storage.loops_over(backing):  # detach is asynchronous while the device closes
                if time.monotonic() > deadline:
                    raise HarnessError(f"loop devices {storage.loops_over(backing)} over {backing} stay attached")
                time.sleep(0.05)
            backing.unlink(missing_ok=True)
        elif kind == "link":
            net.delete_link(entry["name"])
        elif kind == "netns":
            net.delete_netns(entry["name"])
        elif kind == "cgroup":
            cgroups.remove(Path(entry["path"]))
        elif kind == "cgroup-parent":
            parent = Path(entry["path"])
            # shared by every cluster on this machine: removed only when no host cgroup is left in it
            if parent.exists() and not any(p.is_dir() for p in parent.iterdir()):
                parent.rmdir()
        elif kind == "guard-route":
            net.delete_guard_route()
        elif kind == "bridge":
            net.delete_link(entry["name"])
        elif kind == "nspawn-runtime":
            propagate = NSPAWN_RUNTIME / "propagate"
            for name in entry["hosts"]:
                with contextlib.suppress(FileNotFoundError):
                    (propagate / name).rmdir()
            if entry["made"]:
                for path in (propagate, NSPAWN_RUNTIME):
                    with contextlib.suppress(FileNotFoundError):
                        if not any(path.iterdir()):
                            path.rmdir()
        elif kind == "netns-dir":
            net.release_netns_dir(entry["made_dir"], entry["made_mount"])
        else:
            raise HarnessError(f"unknown undo entry {kind!r}")

    def _stop_host_for_good(self, h: dict[str, Any]) -> None:
        rec = h.get("nspawn")
        # A process stuck on a hung or throttled path would keep the host (and its cgroups) alive:
        # release its queued I/O first. Best effort: a loop device may already be gone.
        for loop in h.get("loops", []):
            with contextlib.suppress(Exception):
                storage.set_read_only(loop["device"], False)
                storage.set_throttle(Path(h["cgroups"]["blkio"]), loop["device"])
        freezer = Path(h["cgroups"]["freezer"])
        if freezer.exists() and cgroups.freezer_state(freezer) != "THAWED":
            cgroups.set_frozen(freezer, False)
        if rec:
            init = host_init(str(Path(h["dir"]) / "nspawn.pid"))
            if init is not None:
                signal_recorded(init[0], init[1], signal.SIGKILL)
            if not wait_gone(rec["pid"], rec["start"], 15.0):
                stop_recorded(rec["pid"], rec["start"], term_timeout=0.1)
        # Anything still in the host's own cgroup belongs to the host (e.g. its init orphaned by a
        # killed nspawn): it is ours to stop.
        leftover = cgroups.procs(freezer) if freezer.exists() else []
        for pid in leftover:
            start = proc_start_time(pid)
            if start is not None:
                say(f"{h['name']}: killing leftover process {pid} in the host's cgroup")
                signal_recorded(pid, start, signal.SIGKILL)

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _locked(self) -> Iterator[State]:
        self._state()  # a clear error when nothing is up
        with locked_dir(self.state_dir):
            yield self._state()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


__all__ = ["CGROUP_HIERARCHIES", "Cluster", "Host", "default_image_dir", "default_state_dir"]
