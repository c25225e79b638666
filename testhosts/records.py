"""Typed records: what ``state.json`` holds, and the views the harness prints (describe, status, check-net).

The JSON written is exactly what these TypedDicts describe (docs/harness.md); keys are not renamed.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, TypedDict

JsonValue: TypeAlias = "str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]"
UndoRecord: TypeAlias = "dict[str, JsonValue]"
"""One entry of the undo log: {"kind": KIND, **fields}; the fields are those of its undo.UndoStep."""

Phase = Literal["creating", "up", "destroying"]


# ---------------------------------------------------------------- state.json
class ProcessRecord(TypedDict):
    """A process the harness started: pid + start time (clock ticks) name it for good."""

    pid: int
    start: int | None


class LoopRecord(TypedDict):
    """A host's own loop device over a shared disk (its storage *path*)."""

    disk: int
    path: str  # inside the host, e.g. /dev/lockdisk0
    device: str  # on the controller, e.g. /dev/loop7


class HostRecord(TypedDict):
    name: str
    index: int
    address: str
    netns: str
    veth: str
    dir: str
    machine_id: str
    host_key_pub: str
    cgroups: dict[str, str]  # hierarchy -> the host's cgroup dir in it
    loops: list[LoopRecord]
    watchdog: ProcessRecord | None
    nspawn: ProcessRecord | None


class DiskRecord(TypedDict):
    index: int
    backing: str
    size: int
    sector_size: int
    host_path: str


class ClusterConfig(TypedDict, total=False):
    """The options of `up` (empty until up has checked them)."""

    hosts: int
    names: list[str]
    disks: int
    sector_sizes: list[int]
    disk_size: int
    watchdog_timeout: float
    bind_ro: list[list[str]]
    image: str
    boot_timeout: float
    persistent_root: bool


class StateData(TypedDict):
    format: int
    phase: Phase
    created: float
    pid: int
    made_state_dir: bool
    config: ClusterConfig
    disks: list[DiskRecord]
    hosts: dict[str, HostRecord]
    undo: list[UndoRecord]


# ---------------------------------------------------------------- views
class DiskView(TypedDict):
    index: int
    path: str
    backing_file: str
    size: int
    sector_size: int


class HostDescription(TypedDict):
    name: str
    address: str
    user: str
    port: int
    identity_file: str
    disks: list[str]
    watchdog: str
    netns: str
    instance: str
    watchdogs: list[str]
    loop_devices: dict[str, str]
    host_key: str
    machine_id: str


class Description(TypedDict):
    """`up`'s and `describe`'s output, also written to cluster.json."""

    state_dir: str
    inventory: str
    identity_file: str
    subnet: str
    gateway: str
    bridge: str
    watchdog_timeout: float | None
    image: str | None
    bind_ro: list[list[str]]
    disks: list[DiskView]
    hosts: list[HostDescription]


class MoleculeInstance(TypedDict):
    instance: str
    address: str
    user: str
    port: int
    identity_file: str


class WatchdogSummary(TypedDict):
    running: bool
    timeout: float | None
    armed: bool
    last_pet: float | None
    last_pet_age: float | None
    pets: int
    resets: int
    last_reset: float | None


class PathView(TypedDict):
    path: str
    device: str
    read_only: bool
    throttle: dict[str, int]
    state: str  # "rw" | "ro", "+throttled" when throttled


class StatusRow(TypedDict):
    name: str
    address: str
    alive: bool
    frozen: bool
    nspawn_pid: int | None
    init_pid: int | None
    watchdog: WatchdogSummary
    storage: list[PathView]


class HostRoutes(TypedDict):
    routable: bool
    detail: str


class IsolationReport(TypedDict):
    probe: str
    hosts: dict[str, HostRoutes]
    controller_guard_route: bool
    controller_route_to_hosts: str
    ok: bool


class InventoryHost(TypedDict):
    """A host's variables in the Ansible inventory (inventory.yml)."""

    ansible_host: str
    ansible_port: int
    ansible_user: str
    ansible_ssh_private_key_file: str
    ansible_ssh_common_args: str
    ansible_python_interpreter: str
    lockengine_test_disks: list[str]
    lockengine_test_watchdog: str
