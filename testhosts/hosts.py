"""One host's identity on the controller: its dir, hostname, machine-id, SSH host key, the controller's
key in its authorized_keys, its watchdog FIFO, its cgroups and its network namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from . import cgroups, keys, network
from .files import write_atomic
from .plan import GATEWAY
from .state import State


def write_etc_hosts(path: Path, names: Sequence[str]) -> None:
    """The /etc/hosts every host gets: the controller and every host by name."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
             f"{GATEWAY} lockengine-controller"]
    lines += [f"{network.host_address(i)} {name}" for i, name in enumerate(names, 1)]
    path.write_text("\n".join(lines) + "\n")


def make_host(state: State, index: int, name: str, identity_file: Path) -> None:
    """Host number `index` (1-based): its files, its record, its cgroups and network (not started)."""
    hdir = state.dir / "hosts" / name
    hdir.mkdir(parents=True)
    machine_id = uuid.uuid4().hex
    (hdir / "etc").mkdir()
    (hdir / "etc" / "hostname").write_text(name + "\n")
    (hdir / "etc" / "machine-id").write_text(machine_id + "\n")
    pub = keys.make_ed25519(hdir / "ssh_host_ed25519_key", f"root@{name}")
    root_ssh = hdir / "root-ssh"
    root_ssh.mkdir(mode=0o700)
    write_atomic(root_ssh / "authorized_keys", Path(f"{identity_file}.pub").read_text(), 0o600)
    os.mkfifo(hdir / "watchdog", 0o600)
    cg = cgroups.host_dirs(name)
    address = network.host_address(index)
    state.hosts[name] = {
        "name": name, "index": index, "address": address, "netns": network.netns_name(name),
        "veth": network.veth_name(name), "dir": str(hdir), "machine_id": machine_id, "host_key_pub": pub,
        "cgroups": {h: str(p) for h, p in cg.items()}, "loops": [], "watchdog": None, "nspawn": None,
    }
    state.save()
    cgroups.make_host_cgroups(state, cg)
    network.make_host_network(state, name, address)
