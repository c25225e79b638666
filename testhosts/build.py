"""Making a cluster, in order: controller key and /etc/hosts, network, cgroups, hosts, shared disks,
watchdog players, then the hosts boot; each thing is logged for undo before it is made."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from . import cgroups, hosts, keys, network, nspawn, storage, watchdog
from .procs import Children
from .records import HostRecord
from .ssh import SshPool
from .state import State
from .tools import say


def build(state: State, names: Sequence[str], sizes: Sequence[int], disk_size: int, watchdog_timeout: float,
          boot_timeout: float, identity_file: Path, ssh: SshPool, children: Children) -> None:
    say(f"starting {len(names)} host(s) in {state.dir}")
    keys.make_ed25519(identity_file, "lockengine-testhosts controller")
    hosts.write_etc_hosts(state.dir / "etc-hosts", names)
    network.make_network(state)
    cgroups.make_parents(state)
    for i, name in enumerate(names, 1):
        hosts.make_host(state, i, name, identity_file)
    # shared disks before the hosts start: nspawn binds device nodes at start
    storage.make_shared_disks(state, state.dir / "disks", names, sizes, disk_size)
    for name in names:
        watchdog.start_player(state, name, watchdog_timeout, children)
    # systemd-nspawn keeps per-machine mount-propagation dirs below /run/systemd/nspawn
    nspawn.NspawnRuntime.before_start(list(names)).log(state)
    for name in names:
        if state.data["config"].get("persistent_root"):
            nspawn.mount_root(state, name)
        nspawn.start(state, name, children)
    wait_ready(state, names, boot_timeout, ssh)
    state.data["phase"] = "up"
    state.save()


def wait_ready(state: State, names: Sequence[str], timeout: float, ssh: SshPool) -> None:
    """Until `timeout` in all: an SSH login to each host (giving up at once when its nspawn died)."""
    say(f"waiting for sshd on {', '.join(names)}")
    deadline = time.monotonic() + timeout
    for name in names:
        h = state.hosts[name]

        def problem(h: HostRecord = h) -> str | None:
            return nspawn.problem(h)

        ssh.wait_ready(name, h["address"], h["host_key_pub"], max(1.0, deadline - time.monotonic()), problem)
