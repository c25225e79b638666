"""lockengine.metrics.render on replies shaped as the daemon sends them, read back with prometheus_client's
parser: a configured lockspace the daemon no longer has is ABSENT (not a vanished series), label values
are escaped, counters get _total."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lockengine.metrics import Snapshot, render


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_configured_but_dropped_lockspace_is_absent_and_labels_are_escaped() -> None:
    status = {
        "daemon": {"version": "0.1.0", "host_name": 'h"1\\x', "uptime": 3.5,
                   "config": {"lockspaces": [{"name": "LS"}, {"name": "GONE"}]},
                   "watchdog": {"backend": "linux", "device": "/dev/watchdog0", "protected": True, "armed": True,
                                "petting": True, "pets": 7, "last_pet_monotonic": 99.0, "timeout": 60,
                                "fire_timeout": 60, "registrations": [{"name": "lockengine_LS:1", "expires_in": 70.5}]}},
        "lockspaces": [{"lockspace": "LS", "host_id": 1, "generation": 4, "state": "JOINED", "renewal_age": 1.25,
                        "timeouts": {"id_renewal_fail_seconds": 80, "id_renewal_warn_seconds": 60,
                                     "host_dead_seconds": 140}}],
        "clients": [], "resources": [], "recovering": [],
    }
    snap = Snapshot(monotime=100.0, status=status, hosts={"LS": [{"host_id": 1, "host_name": "a", "state": "LIVE"}]},
                    renewals={"LS": [{"read_ms": 2.0, "write_ms": 4.0, "result": 0},
                                     {"read_ms": 1.0, "write_ms": 3.0, "result": -5}]})
    m = parse(render(snap))
    assert m[("lockengine_lockspace_state", (("lockspace", "GONE"), ("state", "ABSENT")))] == 1
    assert m[("lockengine_lockspace_state", (("lockspace", "GONE"), ("state", "JOINED")))] == 0
    assert m[("lockengine_lockspace_state", (("lockspace", "LS"), ("state", "ABSENT")))] == 0
    assert m[("lockengine_daemon_info", (("host_name", 'h"1\\x'), ("version", "0.1.0")))] == 1
    assert m[("lockengine_renewal_read_seconds", (("lockspace", "LS"),))] == 0.001  # the last one
    assert m[("lockengine_renewal_write_seconds_max", (("lockspace", "LS"),))] == 0.004
    assert m[("lockengine_renewal_errors", (("lockspace", "LS"),))] == 1
    assert m[("lockengine_lockspace_renewal_age_seconds", (("lockspace", "LS"),))] == 1.25
    wd = (("backend", "linux"), ("device", "/dev/watchdog0"))
    assert m[("lockengine_watchdog_pets_total", wd)] == 7
    assert m[("lockengine_watchdog_last_pet_age_seconds", wd)] == 1.0


def test_daemon_down_is_up_0_only() -> None:
    m = parse(render(Snapshot(monotime=1.0, error="no socket")))
    assert m == {("lockengine_up", ()): 0}
