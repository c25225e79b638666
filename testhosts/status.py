"""What a running cluster looks like: per host alive/frozen, its watchdog, its storage paths; and the
network isolation check (route lookups only: no packet is sent)."""

from __future__ import annotations

import time
from pathlib import Path

from . import cgroups, network, nspawn, storage, watchdog
from .plan import BRIDGE
from .procs import running
from .records import HostRecord, HostRoutes, IsolationReport, PathView, StatusRow, WatchdogSummary
from .state import State


def path_views(h: HostRecord) -> list[PathView]:
    views: list[PathView] = []
    for loop in h["loops"]:
        dev = loop["device"]
        present = Path(dev).exists()
        read_only = storage.is_read_only(dev) if present else False
        throttle = storage.throttle_of(cgroups.blkio_of(h), dev) if present else {}
        words = (["ro"] if read_only else ["rw"]) + (["throttled"] if throttle else [])
        views.append({"path": loop["path"], "device": dev, "read_only": read_only, "throttle": throttle,
                      "state": "+".join(words)})
    return views


def watchdog_summary(h: HostRecord, now: float) -> WatchdogSummary:
    wd = watchdog.status_of(h)
    last_pet = wd.get("last_pet")
    resets = wd.get("resets", [])
    return {
        "running": wd.get("running", False), "timeout": wd.get("timeout"),
        "armed": wd.get("armed", False), "last_pet": last_pet,
        "last_pet_age": round(now - last_pet, 2) if last_pet else None,
        "pets": wd.get("pets", 0), "resets": len(resets),
        "last_reset": resets[-1]["time"] if resets else None,
    }


def status(state: State) -> list[StatusRow]:
    now = time.time()
    rows: list[StatusRow] = []
    for h in state.hosts.values():
        rec = h.get("nspawn")
        alive = running(rec)
        init = nspawn.init_of(h) if alive else None
        rows.append({
            "name": h["name"], "address": h["address"], "alive": init is not None, "frozen": cgroups.is_frozen(h),
            "nspawn_pid": rec["pid"] if alive and rec else None, "init_pid": init[0] if init else None,
            "watchdog": watchdog_summary(h, now),
            "storage": path_views(h),
        })
    return rows


def check_isolation(state: State, probe: str = "192.0.2.1") -> IsolationReport:
    """Route lookups only (no packet sent): nothing outside the test subnet is routable from a host,
    and the controller routes the wider test range to `unreachable`."""
    hosts: dict[str, HostRoutes] = {}
    for h in state.hosts.values():
        routable, detail = network.route_get_in_netns(h["name"], probe)
        hosts[h["name"]] = {"routable": routable, "detail": detail}
    guard = network.guard_route_present()
    first = next(iter(state.hosts.values()), None)
    to_host = network.route_get_controller(first["address"]) if first is not None else ""
    return {"probe": probe, "hosts": hosts, "controller_guard_route": guard,
            "controller_route_to_hosts": to_host,
            "ok": not any(v["routable"] for v in hosts.values()) and guard and f"dev {BRIDGE}" in to_host}
