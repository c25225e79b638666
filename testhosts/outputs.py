"""What `up` hands to its users: the description (cluster.json, `describe`), molecule's instance
config, and the Ansible inventory (inventory.yml)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .files import write_atomic
from .plan import BRIDGE, COMMAND, GATEWAY, IN_HOST_WATCHDOGS, SUBNET
from .records import Description, HostDescription, HostRecord, InventoryHost, MoleculeInstance
from .state import State

SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
INVENTORY_GROUP = "lockengine_testhosts"


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


def host_view(h: HostRecord, identity_file: Path) -> Host:
    return Host(name=h["name"], address=h["address"], user="root", port=22, identity_file=str(identity_file),
                disks=[loop["path"] for loop in h["loops"]], netns=h["netns"])


def describe(state: State, identity_file: Path, inventory: Path) -> Description:
    hosts: list[HostDescription] = []
    for h in state.hosts.values():
        view = host_view(h, identity_file)
        hosts.append({
            "name": view.name, "address": view.address, "user": view.user, "port": view.port,
            "identity_file": view.identity_file, "disks": view.disks, "watchdog": view.watchdog,
            "netns": view.netns, "instance": h["name"], "watchdogs": list(IN_HOST_WATCHDOGS),
            "loop_devices": {loop["path"]: loop["device"] for loop in h["loops"]},
            "host_key": h["host_key_pub"].strip(), "machine_id": h["machine_id"],
        })
    config = state.data["config"]
    return {
        "state_dir": str(state.dir), "inventory": str(inventory),
        "identity_file": str(identity_file), "subnet": SUBNET, "gateway": GATEWAY, "bridge": BRIDGE,
        "watchdog_timeout": config.get("watchdog_timeout"), "image": config.get("image"),
        "bind_ro": config.get("bind_ro", []),
        "disks": [{"index": d["index"], "path": d["host_path"], "backing_file": d["backing"],
                   "size": d["size"], "sector_size": d["sector_size"]} for d in state.data["disks"]],
        "hosts": hosts,
    }


def molecule_instances(hosts: list[Host]) -> list[MoleculeInstance]:
    return [{"instance": h.name, "address": h.address, "user": h.user, "port": h.port,
             "identity_file": h.identity_file} for h in hosts]


def write_description(path: Path, description: Description) -> None:
    write_atomic(path, json.dumps(description, indent=2) + "\n")


def write_inventory(path: Path, state: State, identity_file: Path) -> None:
    disks = [d["host_path"] for d in state.data["disks"]]
    group: dict[str, InventoryHost] = {}
    for h in state.hosts.values():
        group[h["name"]] = {
            "ansible_host": h["address"], "ansible_port": 22, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(identity_file),
            "ansible_ssh_common_args": SSH_COMMON_ARGS, "ansible_python_interpreter": "/usr/bin/python3",
            "lockengine_test_disks": list(disks), "lockengine_test_watchdog": IN_HOST_WATCHDOGS[0],
        }
    inventory = {"all": {"children": {INVENTORY_GROUP: {"hosts": group}}}}
    write_atomic(path, f"# written by {COMMAND} up\n"
                 + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False, width=1000))
