"""The daemon's views in sanlock's record shapes (what ``sanlock client status/gets/host_status`` parse)."""

from __future__ import annotations

import struct
from typing import Any

from lockengine.daemon.sanlock import views, wire


def host(host_id: int, timestamp: int, state: str) -> dict[str, Any]:
    return {"host_id": host_id, "owner_id": host_id, "generation": 3, "timestamp": timestamp, "host_name": f"h{host_id}",
            "io_timeout": 1, "last_check": 100.5, "last_live": 99.9, "state": state}


def test_get_hosts_lists_live_slots_or_the_one_asked_for() -> None:
    hosts = [host(1, 50, "LIVE"), host(2, 0, "FREE"), host(3, 70, "DEAD")]
    everyone = views.host_list(hosts, 0)
    assert [wire.decode_host(b, 0) for b in everyone] == [wire.WireHost(1, 3, 50, 1, wire.HOST_LIVE),
                                                         wire.WireHost(3, 3, 70, 1, wire.HOST_DEAD)]
    assert [wire.decode_host(b, 0).flags for b in views.host_list(hosts, 2)] == [wire.HOST_FREE]
    assert views.host_list(hosts, 9) == []


def test_lockspace_flags_follow_the_state() -> None:
    spaces = [{"lockspace": n, "host_id": 1, "path": "/d", "offset": 0, "state": st}
              for n, st in (("A", "ADD"), ("B", "JOINED"), ("C", "REM"), ("D", "FAILED"))]
    flags = [struct.unpack_from("<I", b, 56)[0] for b in views.lockspace_list(spaces)]
    assert flags == [wire.LSF_ADD, 0, wire.LSF_REM, wire.LSF_REM]


def status(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"daemon": {"host_name": "h1", "watchdog": {"backend": "none"}, "io_timeout": 1, "kill_grace": 3,
                       "monotime": 7},
            "clients": [{"pid": 42, "name": "vm1"}],
            "lockspaces": [{"lockspace": "LS", "host_id": 1, "path": "/d", "offset": 0, "state": "ADD",
                            "io_timeout": 1, "generation": 0, "renewal_last_success": 0}],
            "resources": resources}


def test_status_stream_and_its_filter() -> None:
    held = {"lockspace": "LS", "resource": "R1", "path": "/d", "offset": 1 << 20, "lver": 4, "shared": True,
            "pid": 42, "state": "HELD"}
    acquiring = dict(held, resource="R2", state="ACQUIRING")
    raw = views.status_records(status([held, acquiring]), 0)
    kind, _, _, name, text, off = wire.decode_state(raw, 0)
    assert (kind, name) == (wire.STATE_DAEMON, "h1") and "smproto_hex=00000001" in text and "use_watchdog=0" in text
    kind, pid, _, name, _, off = wire.decode_state(raw, off)
    assert (kind, pid, name) == (wire.STATE_CLIENT, 42, "vm1")
    kind, _, host_id, name, text, off = wire.decode_state(raw, off)
    assert (kind, host_id, name) == (wire.STATE_LOCKSPACE, 1, "LS") and "list=add" in text
    assert wire.decode_lockspace(raw, off).disk == wire.WireDisk("/d", 0)
    off += wire.LOCKSPACE_SIZE
    kind, pid, lver, name, _, off = wire.decode_state(raw, off)
    assert (kind, pid, lver, name) == (wire.STATE_RESOURCE, 42, 4, "R1")
    res, off = wire.decode_resource(raw, off, with_disks=True)
    assert res.flags == wire.RES_SHARED and res.disks == (wire.WireDisk("/d", 1 << 20),)
    assert off == len(raw)  # R2 is still being acquired: not listed
    assert views.status_records(status([held]), 1) == raw[: len(views.status_records(status([]), 1))]
    assert len(views.status_records(status([held]), 3)) < len(raw)


def test_log_text_keeps_the_newest_bytes() -> None:
    assert views.log_text(["a", "b\n"]) == b"a\nb\n"
    assert views.log_text(["x" * 10, "y" * 10], limit=15) == b"xxx\n" + b"y" * 10 + b"\n"
