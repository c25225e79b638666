"""The daemon's views in sanlock's shapes: the GET_LOCKSPACES and GET_HOSTS lists and the record streams
of STATUS and HOST_STATUS (``sanlock client status``, ``gets``, ``host_status`` print these). Pure code
over the dictionaries ``Daemon.status()`` and ``Lockspace.hosts()`` return."""

from __future__ import annotations

from typing import Any

from ... import __version__
from ...states import HostState, LockspaceState, ResourceState
from . import wire
from .wire import WireDisk, WireHost, WireLockspace, WireResource

HOST_FLAGS: dict[str, int] = {HostState.UNKNOWN: wire.HOST_UNKNOWN, HostState.FREE: wire.HOST_FREE,
                              HostState.LIVE: wire.HOST_LIVE, HostState.FAIL: wire.HOST_FAIL,
                              HostState.DEAD: wire.HOST_DEAD}
# A lockspace's list in STATUS: anything not adding or joined is on its way out, "rem".
LIST_OF_STATE: dict[str, str] = {LockspaceState.ADD: "add", LockspaceState.JOINED: "spaces"}


def lockspace_flags(state: str) -> int:
    return wire.LSF_ADD if state == LockspaceState.ADD else 0 if state == LockspaceState.JOINED else wire.LSF_REM


def lockspace_list(spaces: list[dict[str, Any]]) -> list[bytes]:
    """GET_LOCKSPACES: one sanlk_lockspace per lockspace, flags ADD / 0 / REM."""
    return [WireLockspace(s["lockspace"], s["host_id"], lockspace_flags(s["state"]),
                          WireDisk(s["path"], s["offset"])).encode() for s in spaces]


def host_list(hosts: list[dict[str, Any]], want: int) -> list[bytes]:
    """GET_HOSTS: host ``want`` only, or (0) every slot with a non-zero timestamp."""
    out = []
    for info in hosts:
        if (want and info["host_id"] != want) or (not want and not info["timestamp"]):
            continue
        out.append(WireHost(info["host_id"], info["generation"], info["timestamp"], info["io_timeout"],
                            HOST_FLAGS.get(str(info["state"]), wire.HOST_UNKNOWN)).encode())
    return out


def host_records(hosts: list[dict[str, Any]]) -> bytes:
    """HOST_STATUS: one type-5 record per host seen (data32 host_id, data64 its timestamp)."""
    records = []
    for info in hosts:
        text = (f"last_check={int(info['last_check'])} last_live={int(info['last_live'])} last_req=0 "
                f"owner_id={info['owner_id']} owner_generation={info['generation']} "
                f"timestamp={info['timestamp']} io_timeout={info['io_timeout']} owner_name={info['host_name']}")
        records.append(wire.encode_state(wire.STATE_HOST, "", text, info["host_id"], info["timestamp"]))
    return b"".join(records)


def status_records(st: dict[str, Any], upto: int) -> bytes:
    """STATUS: the daemon record, then clients, lockspaces (each followed by its sanlk_lockspace) and
    held resources (each followed by its sanlk_resource and disk); ``upto`` 1/2/3 stops after the
    daemon/client/lockspace section, as sanlock's filter does."""
    dm = st["daemon"]
    parts = [wire.encode_state(wire.STATE_DAEMON, dm["host_name"], (
        f"our_host_name={dm['host_name']} use_watchdog={int(dm['watchdog'].get('backend') != 'none')} "
        f"io_timeout={dm['io_timeout']} kill_grace_seconds={dm['kill_grace']} monotime={dm['monotime']} "
        f"version_str=3.8.5 version_hex={wire.VERSION_CODE:08x} smproto_hex={wire.PROTO:08x} "
        f"lockengine_version={__version__}"))]
    if upto != 1:
        for c in st["clients"]:
            parts.append(wire.encode_state(wire.STATE_CLIENT, str(c["name"]), f"pid={c['pid']}", int(c["pid"])))
    if upto not in (1, 2):
        for s in st["lockspaces"]:
            parts.append(wire.encode_state(wire.STATE_LOCKSPACE, s["lockspace"], (
                f"list={LIST_OF_STATE.get(s['state'], 'rem')} io_timeout={s['io_timeout']} "
                f"host_generation={s['generation']} renewal_last_success={s['renewal_last_success']}"),
                0, s["host_id"]))
            parts.append(WireLockspace(s["lockspace"], s["host_id"], 0, WireDisk(s["path"], s["offset"])).encode())
    if upto not in (1, 2, 3):
        for r in st["resources"]:
            if r["state"] != ResourceState.HELD:
                continue
            parts.append(wire.encode_state(wire.STATE_RESOURCE, r["resource"], f"list=held pid={r['pid']}",
                                           int(r["pid"]), int(r["lver"])))
            parts.append(WireResource(r["lockspace"], r["resource"], int(r["lver"]),
                                      flags=wire.RES_SHARED if r["shared"] else 0,
                                      disks=(WireDisk(r["path"], r["offset"]),)).encode())
    return b"".join(parts)


def renewal_records(renewals: list[dict[str, Any]]) -> bytes:
    """RENEWAL: one type-6 record per remembered renewal (data64 its timestamp)."""
    records = []
    for r in renewals:
        text = (f"timestamp={r['timestamp']} read_ms={int(r['read_ms'])} write_ms={int(r['write_ms'])} "
                f"next_timeouts=0 next_errors={0 if r['result'] == 0 else 1}")
        records.append(wire.encode_state(wire.STATE_RENEWAL, "", text, 0, int(r["timestamp"])))
    return b"".join(records)


def log_text(lines: list[str], limit: int = 1 << 20) -> bytes:
    """LOG_DUMP: the newest log lines, at most ``limit`` bytes (sanlock's buffer is 1 MiB)."""
    raw = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode("utf-8", "replace")
    return raw[-limit:]
