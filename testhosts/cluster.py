"""The test cluster, as Python sees it: one object per state dir, each method one harness command.

    from testhosts import Cluster
    c = Cluster()                       # state dir: $LOCKENGINE_TESTHOSTS_STATE or /run/lockengine-testhosts
    c.up(3, disks=2, sector_size=512, watchdog_timeout=10)
    rc, out, err = c.run("node1", "hostname", timeout=10)
    c.fail_storage("node3"); c.heal_storage("node3")
    c.down()

The work is done by the modules this one calls (build, teardown, nspawn, faults, watchdog, status,
outputs); here are the locking of the state dir and the order of steps.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import build, cgroups, faults, image, keys, network, nspawn, options, outputs, status, teardown, watchdog
from .errors import HarnessError
from .outputs import Host
from .plan import (
    COMMAND,
    CONTROLLER_TOOLS,
    DEFAULT_BOOT_TIMEOUT,
    DEFAULT_DISK_SIZE,
    DEFAULT_WATCHDOG_TIMEOUT,
    default_image_dir,
    default_state_dir,
)
from .procs import Children
from .records import Description, IsolationReport, MoleculeInstance, StatusRow
from .ssh import SshPool
from .state import State, locked_dir
from .tools import require_tools, say
from .watchdog_player import ResetRecord, WatchdogEvent, WatchdogStatus


class Cluster:
    def __init__(self, state_dir: str | Path | None = None, *, image_dir: str | Path | None = None) -> None:
        self.state_dir = (Path(state_dir) if state_dir is not None else default_state_dir()).absolute()
        self.image_dir = Path(image_dir) if image_dir is not None else default_image_dir()
        self._ssh: SshPool | None = None
        self._children = Children()

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
            raise HarnessError(f"no test cluster is up in {self.state_dir} (run `{COMMAND} up N`)")
        return state

    def is_up(self) -> bool:
        state = State.load(self.state_dir)
        return state is not None and state.data.get("phase") == "up"

    @property
    def hosts(self) -> list[Host]:
        return [outputs.host_view(h, self.identity_file) for h in self._state().hosts.values()]

    def host(self, name: str) -> Host:
        return outputs.host_view(self._state().host(name), self.identity_file)

    def describe(self) -> Description:
        return outputs.describe(self._state(), self.identity_file, self.inventory_path)

    def molecule_instances(self) -> list[MoleculeInstance]:
        return outputs.molecule_instances(self.hosts)

    # ------------------------------------------------------------------ up
    def up(self, n: int, *, disks: int = 1, sector_size: int | Sequence[int] = 512,
           disk_size: int = DEFAULT_DISK_SIZE, watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
           bind_ro: Sequence[str | tuple[str, str]] = (), prefix: str = "node", names: Sequence[str] | None = None,
           boot_timeout: float = DEFAULT_BOOT_TIMEOUT, keep_on_failure: bool = False,
           persistent_root: bool = False) -> Description:
        """Start n hosts; return the machine-readable description (also in cluster.json).

        Hosts are named <prefix>1..<prefix>n unless `names` (n of them) is given; host i gets 10.231.0.(10+i).
        With `persistent_root`, what a host writes to its root survives `restart` (an overlay in its dir).
        """
        sizes = options.check_up(n, disks, sector_size, disk_size, watchdog_timeout)
        host_names = options.host_names(n, prefix, names)
        binds = [options.parse_bind(b) for b in bind_ro]
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
        network.check_free()
        made_dir = self._make_state_dir()
        with locked_dir(self.state_dir):
            existing = State.load(self.state_dir)
            if existing is not None:  # lost a race with another `up`
                raise HarnessError(self._already_up_message(existing))
            state = State.new(self.state_dir, made_dir)
            state.data["config"] = {
                "hosts": n, "names": host_names, "disks": disks, "sector_sizes": sizes, "disk_size": disk_size,
                "watchdog_timeout": watchdog_timeout, "bind_ro": [list(b) for b in binds], "image": str(root),
                "boot_timeout": boot_timeout, "persistent_root": persistent_root,
            }
            state.save()
            started = time.monotonic()
            try:
                build.build(state, host_names, sizes, disk_size, watchdog_timeout, boot_timeout,
                            self.identity_file, self.ssh, self._children)
                description = self.describe()
                outputs.write_description(self.description_path, description)
                outputs.write_inventory(self.inventory_path, state, self.identity_file)
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

    def _already_up_message(self, state: State) -> str:
        hosts = ", ".join(state.hosts) or "none yet"
        phase = state.data.get("phase")
        if phase == "up":
            return (f"a test cluster is already up in {self.state_dir} (hosts: {hosts}); "
                    f"run `{COMMAND} down` first")
        return (f"{self.state_dir} holds a cluster in phase {phase!r} (an interrupted up or down?): "
                f"run `{COMMAND} down` to remove what it made")

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
        init = nspawn.init_of(self._state().host(host))
        return init[0] if init else None

    def crash(self, host: str) -> None:
        """Kill the host at once (SIGKILL of its init: every process in it dies)."""
        with self._locked() as state:
            killed = nspawn.kill(state.host(host))
            self._children.reap()
            if not killed:
                raise HarnessError(f"{host} is not running")
            self.ssh.drop(host)

    def restart(self, host: str, timeout: float | None = None) -> None:
        """Boot the host again with the same hostname, machine-id, host keys and address.

        A running host is reset first (as a hard reset would); storage faults stay as they are.
        """
        with self._locked() as state:
            h = state.host(host)
            nspawn.kill(h)
            self._children.reap()
            self.ssh.drop(host)
            cgroups.thaw_if_frozen(h)  # frozen while down: boot it thawed
            nspawn.start(state, host, self._children)
            build.wait_ready(state, [host], timeout or state.data["config"].get("boot_timeout", DEFAULT_BOOT_TIMEOUT),
                             self.ssh)

    # ------------------------------------------------------------------ faults
    def fail_storage(self, host: str, disk: int | None = None) -> None:
        """The host's path fails: its writes get EPERM (reads still work); other hosts are unaffected."""
        with self._locked() as state:
            faults.fail_storage(state.host(host), disk)

    def slow_storage(self, host: str, iops: int = 1, *, bps: int = 0, disk: int | None = None) -> None:
        """Throttle the host's path (blkio, this host's cgroup only): iops=1 makes each I/O take ~1 s."""
        faults.check_throttle(iops, bps)  # bad input is refused before anything else
        with self._locked() as state:
            faults.slow_storage(state.host(host), iops, bps, disk)

    def hang_storage(self, host: str, disk: int | None = None) -> None:
        """I/O of the host on its path hangs (1 byte/s: a 512-byte I/O takes ~8 minutes) until healed."""
        self.slow_storage(host, 0, bps=1, disk=disk)

    def heal_storage(self, host: str, disk: int | None = None) -> None:
        """Undo fail/slow/hang: writable again, no throttle (queued I/O is released)."""
        with self._locked() as state:
            faults.heal_storage(state.host(host), disk)

    def freeze(self, host: str) -> None:
        """Every process of the host stops (freezer cgroup): a hung host."""
        with self._locked() as state:
            faults.freeze(state.host(host))

    def thaw(self, host: str) -> None:
        with self._locked() as state:
            faults.thaw(state.host(host))

    # ------------------------------------------------------------------ watchdog
    def watchdog(self, host: str) -> WatchdogStatus:
        """The virtual watchdog's state: armed, armed_at, last_pet, pets, resets [...] (times: epoch s)."""
        return watchdog.status_of(self._state().host(host))

    def watchdog_resets(self, host: str) -> list[ResetRecord]:
        return self.watchdog(host).get("resets", [])

    def watchdog_events(self, host: str) -> list[WatchdogEvent]:
        return watchdog.events_of(self._state().host(host))

    # ------------------------------------------------------------------ status
    def status(self) -> list[StatusRow]:
        return status.status(self._state())

    def check_isolation(self, probe: str = "192.0.2.1") -> IsolationReport:
        """Route lookups only (no packet sent): nothing outside the test subnet is routable from a host,
        and the controller routes the wider test range to `unreachable`."""
        return status.check_isolation(self._state(), probe)

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
        try:
            teardown.undo_all(state)
        finally:
            self._children.reap()
        teardown.remove_state_dir(state)

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
