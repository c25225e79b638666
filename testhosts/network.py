"""The test network: bridge lebr0 (10.231.0.1/24), one netns + veth per host, an unreachable guard.

Safety rules (DESIGN.md §4): hosts get no default route and no nameserver; the controller routes only
10.231.0.0/24 to the bridge (the kernel's connected route of the bridge address), and an
``unreachable 10.231.0.0/16`` route makes sure a mistyped address in the wider range never leaves the
machine.  Nothing here sends a packet anywhere but to the netns addresses.

Undo kinds: ``netns-dir`` (/run/netns as `ip netns` first made it), ``bridge``, ``guard-route``,
``netns`` and ``link`` (a host's veth).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

from . import undo
from .errors import HarnessError
from .plan import BRIDGE, COMMAND, FIRST_HOST_OCTET, GATEWAY, GUARD, NETNS_PREFIX, PREFIXLEN, SUBNET, VETH_PREFIX
from .state import State
from .tools import run

NETNS_DIR = Path("/run/netns")


def host_address(index: int) -> str:
    """Address of host number `index` (1-based): 10.231.0.11, .12, ..."""
    return str(ipaddress.ip_network(SUBNET)[FIRST_HOST_OCTET - 1 + index])


def netns_name(host: str) -> str:
    return f"{NETNS_PREFIX}{host}"


def veth_name(host: str) -> str:
    return f"{VETH_PREFIX}{host}"


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _routes(*args: str) -> list[dict[str, object]]:
    out = run(["ip", "-json", "route", "show", *args]).stdout.strip()
    routes: list[dict[str, object]] = json.loads(out) if out else []
    return routes


def check_free() -> None:
    """Refuse to start when anything of ours (or anything in our range) already exists."""
    if link_exists(BRIDGE):
        raise HarnessError(f"bridge {BRIDGE} already exists: another test cluster is up (run `{COMMAND} "
                           f"down`, with --state if it was started with one) or something else uses the name")
    guard = ipaddress.ip_network(GUARD)
    for table in ("main", "local"):
        for route in _routes("table", table):
            dst = str(route.get("dst", ""))
            if dst in ("default", ""):
                continue
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.version == 4 and net.overlaps(guard):
                raise HarnessError(f"route {dst} ({route.get('type', 'unicast')}, table {table}) already covers the "
                                   f"test range {GUARD}: a cluster is up or something else uses it; not touching it")


def netns_dir_is_mount() -> bool:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return any(line.split()[4] == str(NETNS_DIR) for line in lines)


def make_bridge() -> None:
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{GATEWAY}/{PREFIXLEN}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def make_guard_route() -> None:
    run(["ip", "route", "add", "unreachable", GUARD])


def make_netns(host: str, address: str) -> None:
    ns, veth = netns_name(host), veth_name(host)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/{PREFIXLEN}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    # Deliberately no default route: only the test subnet is reachable from the host.


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", "dev", name])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "del", name])


def guard_route_present() -> bool:
    return any(route.get("dst") == GUARD for route in _routes("table", "main", "type", "unreachable"))


def delete_guard_route() -> None:
    if guard_route_present():
        run(["ip", "route", "del", "unreachable", GUARD])


def release_netns_dir(made_dir: bool, made_mount: bool) -> None:
    """Undo what `ip netns add` did to /run/netns on our first use, if nobody else uses it now."""
    if not NETNS_DIR.exists() or any(NETNS_DIR.iterdir()):
        return
    if made_mount and netns_dir_is_mount():
        run(["umount", str(NETNS_DIR)], check=False)
    if made_dir and not netns_dir_is_mount():
        NETNS_DIR.rmdir()


def route_get_in_netns(host: str, address: str) -> tuple[bool, str]:
    """Ask the host's routing table (no packet is sent) whether `address` is routable."""
    proc = run(["ip", "-n", netns_name(host), "route", "get", address], check=False)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def route_get_controller(address: str) -> str:
    proc = run(["ip", "route", "get", address], check=False)
    return (proc.stdout + proc.stderr).strip()


# ---------------------------------------------------------------- undo kinds
@undo.kind
@dataclasses.dataclass(frozen=True)
class NetnsDir(undo.UndoStep):
    KIND = "netns-dir"
    made_dir: bool
    made_mount: bool

    @classmethod
    def before_first_netns(cls) -> NetnsDir:
        return cls(made_dir=not NETNS_DIR.exists(), made_mount=not netns_dir_is_mount())

    def undo(self, state: State) -> None:
        release_netns_dir(self.made_dir, self.made_mount)


@undo.kind
@dataclasses.dataclass(frozen=True)
class Bridge(undo.UndoStep):
    KIND = "bridge"
    name: str

    def undo(self, state: State) -> None:
        delete_link(self.name)


@undo.kind
@dataclasses.dataclass(frozen=True)
class GuardRoute(undo.UndoStep):
    KIND = "guard-route"
    dst: str

    def undo(self, state: State) -> None:
        delete_guard_route()


@undo.kind
@dataclasses.dataclass(frozen=True)
class Netns(undo.UndoStep):
    KIND = "netns"
    name: str

    def undo(self, state: State) -> None:
        delete_netns(self.name)


@undo.kind
@dataclasses.dataclass(frozen=True)
class Link(undo.UndoStep):
    KIND = "link"
    name: str

    def undo(self, state: State) -> None:
        delete_link(self.name)


def make_network(state: State) -> None:
    """The bridge and the guard route (each logged before it is made)."""
    NetnsDir.before_first_netns().log(state)
    Bridge(name=BRIDGE).log(state)
    make_bridge()
    GuardRoute(dst=GUARD).log(state)
    make_guard_route()


def make_host_network(state: State, host: str, address: str) -> None:
    """The host's network namespace and its veth on the bridge."""
    Netns(name=netns_name(host)).log(state)
    Link(name=veth_name(host)).log(state)
    make_netns(host, address)
