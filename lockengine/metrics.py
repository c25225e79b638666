"""Prometheus metrics of one host, in the text exposition format that node_exporter's textfile collector
and Prometheus read (``lockengine client metrics``, docs/cli.md).

Everything comes from the daemon's replies — ``status -D``, ``host_status`` and ``renewal`` of each
lockspace — plus the force-release audit log of the ``lease`` module, when present. ``collect`` asks the
daemon; ``render`` is a pure function of what was collected, so a test can feed it real replies.

A daemon that does not answer is a metric too (``lockengine_up 0``), not an error: the textfile must
still be written so that an alert can fire on it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .client import Client, DaemonError
from .states import HostState, LockspaceState

DEFAULT_AUDIT_LOG = "/var/log/lockengine/force-release.log"
LOCKSPACE_STATES = (LockspaceState.ADD, LockspaceState.JOINED, LockspaceState.REM, LockspaceState.FAILED)
HOST_STATES = tuple(s.lower() for s in HostState)  # label values: free, live, fail, dead, unknown


@dataclass
class Snapshot:
    """What the daemon said (or why it did not), at ``monotime`` on this host's CLOCK_MONOTONIC."""

    monotime: float
    status: dict[str, Any] | None = None
    error: str | None = None
    hosts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    renewals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit_lines: list[str] = field(default_factory=list)


def collect(client: Client, audit_log: str | None = DEFAULT_AUDIT_LOG) -> Snapshot:
    snap = Snapshot(monotime=time.monotonic())
    if audit_log:
        try:
            with open(audit_log, encoding="utf-8", errors="replace") as f:
                snap.audit_lines = f.read().splitlines()
        except FileNotFoundError:
            pass
    try:
        snap.status = client.status(detail=True)
        for ls in snap.status.get("lockspaces", []):
            name = ls["lockspace"]
            if ls.get("state") not in (LockspaceState.JOINED, LockspaceState.FAILED):
                continue
            try:
                snap.hosts[name] = client.host_status(name).get("hosts", [])
                snap.renewals[name] = client.renewal(name).get("renewals", [])
            except DaemonError:
                continue  # left or failed between the calls: its state above says so
    except (DaemonError, OSError) as exc:
        snap.status = None
        snap.error = str(exc)
    return snap


# --------------------------------------------------------------------------- exposition format


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def metric(self, name: str, kind: str, text: str, samples: Iterable[tuple[dict[str, object], float | int | bool]]
               ) -> None:
        """One family: HELP and TYPE once, then its samples (a family without samples is left out)."""
        rows = list(samples)
        if not rows:
            return
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {text}")
            self.lines.append(f"# TYPE {name} {kind}")
        sample_name = f"{name}_total" if kind == "counter" else name
        for labels, value in rows:
            self._sample(sample_name, labels, value)

    def histogram(self, name: str, text: str, rows: Iterable[tuple[dict[str, object], dict[str, Any]]]) -> None:
        """A histogram family from the daemon's rows (counters.py): cumulative ``_bucket{le}``, +Inf,
        ``_sum`` and ``_count``."""
        rows = list(rows)
        if not rows:
            return
        self.lines.append(f"# HELP {name} {text}")
        self.lines.append(f"# TYPE {name} histogram")
        for labels, row in rows:
            for le, n in row.get("buckets", []):
                self._sample(f"{name}_bucket", {**labels, "le": _number(float(le))}, int(n))
            self._sample(f"{name}_bucket", {**labels, "le": "+Inf"}, int(row["count"]))
            self._sample(f"{name}_sum", labels, float(row["sum"]))
            self._sample(f"{name}_count", labels, int(row["count"]))

    def _sample(self, name: str, labels: dict[str, object], value: float | int | bool) -> None:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_AUDIT_FIELD = re.compile(r"(\w+)=(\S*)")


def _force_releases(lines: list[str]) -> Counter[str]:
    """Force-release log lines (``key=value`` pairs, one per force-release) counted by ``result``."""
    out: Counter[str] = Counter()
    for line in lines:
        fields = dict(_AUDIT_FIELD.findall(line))
        if "result" in fields:
            out[fields["result"].strip("'\"")] += 1
    return out


def render(snap: Snapshot) -> str:
    w = _Writer()
    up = snap.status is not None
    w.metric("lockengine_up", "gauge", "1 if lockengined answered on its socket, else 0.", [({}, up)])
    releases = _force_releases(snap.audit_lines)
    w.metric("lockengine_force_releases", "counter",
             "Force-releases recorded in the force-release log of this host, by result.",
             [({"result": r}, n) for r, n in sorted(releases.items())])
    if snap.status is None:
        return w.text()
    st = snap.status
    daemon = st.get("daemon", {})
    w.metric("lockengine_daemon_info", "gauge", "The daemon's version and host name (always 1).",
             [({"version": daemon.get("version", ""), "host_name": daemon.get("host_name", "")}, 1)])
    w.metric("lockengine_daemon_uptime_seconds", "gauge", "Seconds since the daemon started.",
             [({}, float(daemon.get("uptime", 0)))])
    spaces = st.get("lockspaces", [])
    present = {ls["lockspace"] for ls in spaces}
    # Lockspaces the daemon was configured to join but does not have (a failed lockspace is dropped once its
    # holders are stopped): ABSENT, so that an alert sees them instead of a series that vanished.
    absent = sorted({c["name"] for c in (daemon.get("config") or {}).get("lockspaces", [])} - present)
    w.metric("lockengine_lockspace_state", "gauge",
             "1 for the state a lockspace is in on this host (ADD: joining, JOINED, REM: leaving, FAILED: lost its "
             "delta lease, ABSENT: configured but not there), else 0.",
             [({"lockspace": ls["lockspace"], "state": s}, ls.get("state") == s)
              for ls in spaces for s in LOCKSPACE_STATES + ("ABSENT",)]
             + [({"lockspace": name, "state": s}, s == "ABSENT") for name in absent for s in LOCKSPACE_STATES + ("ABSENT",)])
    w.metric("lockengine_lockspace_host_id", "gauge", "This host's id in the lockspace.",
             [({"lockspace": ls["lockspace"]}, int(ls["host_id"])) for ls in spaces])
    w.metric("lockengine_lockspace_generation", "gauge", "This host's generation in the lockspace.",
             [({"lockspace": ls["lockspace"]}, int(ls.get("generation") or 0)) for ls in spaces])
    w.metric("lockengine_lockspace_renewal_age_seconds", "gauge",
             "Seconds since the start of the last good renewal of this host's delta lease.",
             [({"lockspace": ls["lockspace"]}, _age(ls, snap.monotime)) for ls in spaces if _age(ls, snap.monotime) >= 0])
    for key, name, text in (
            ("id_renewal_warn_seconds", "lockengine_lockspace_renewal_warn_seconds",
             "Renewal age at which the daemon warns."),
            ("id_renewal_fail_seconds", "lockengine_lockspace_renewal_fail_seconds",
             "Renewal age at which the lockspace fails and its lease holders are stopped (8 x io_timeout)."),
            ("host_dead_seconds", "lockengine_lockspace_host_dead_seconds",
             "Seconds after a host's last renewal before others may take its leases.")):
        w.metric(name, "gauge", text, [({"lockspace": ls["lockspace"]}, int(ls["timeouts"][key]))
                                       for ls in spaces if key in (ls.get("timeouts") or {})])
    _renewal_metrics(w, snap.renewals)
    w.metric("lockengine_hosts", "gauge", "Hosts of a lockspace by the state this host's daemon sees them in.",
             [({"lockspace": name, "state": s}, sum(1 for h in hosts if str(h.get("state", "")).lower() == s))
              for name, hosts in sorted(snap.hosts.items()) for s in HOST_STATES])
    w.metric("lockengine_host_live", "gauge",
             "1 if this host's daemon sees the host live in the lockspace, else 0 (hosts with a slot in use).",
             [({"lockspace": name, "host_id": h["host_id"], "host_name": h.get("host_name", "")},
               str(h.get("state", "")).lower() == HostState.LIVE.lower())
              for name, hosts in sorted(snap.hosts.items()) for h in hosts
              if str(h.get("state", "")).lower() != HostState.FREE.lower()])
    leases: Counter[tuple[str, str, str]] = Counter()
    for r in st.get("resources", []):
        leases[(r["lockspace"], "shared" if r.get("shared") else "exclusive", str(r.get("state", "")))] += 1
    w.metric("lockengine_leases", "gauge", "Resource leases of local processes by lockspace, mode and state.",
             [({"lockspace": ls, "mode": mode, "state": state}, n) for (ls, mode, state), n in sorted(leases.items())])
    w.metric("lockengine_clients", "gauge", "Processes registered with the daemon.",
             [({}, len(st.get("clients", [])))])
    w.metric("lockengine_recovering", "gauge",
             "1 while the daemon stops the lease holders of a lockspace that lost its lease.",
             [({"lockspace": r["lockspace"], "reason": r.get("reason", "")}, 1) for r in st.get("recovering", [])])
    _watchdog_metrics(w, daemon.get("watchdog") or {}, snap.monotime)
    _counter_metrics(w, st.get("counters") or {})
    return w.text()


def _counter_metrics(w: _Writer, counters: dict[str, list[dict[str, Any]]]) -> None:
    """What the daemon counted since it started (lockengine/daemon/counters.py); a daemon restart starts
    them at 0 again, which Prometheus's rate() and increase() expect of a counter."""
    def rows(family: str, *labels: str) -> list[tuple[dict[str, object], dict[str, Any]]]:
        return [({k: r.get(k, "") for k in labels}, r) for r in counters.get(family, [])]

    w.metric("lockengine_lease_acquires", "counter",
             "Lease acquire calls since the daemon started, by lockspace and result (ok, or the error name); a "
             "call naming several lockspaces counts in each.",
             [(labels, int(r["count"])) for labels, r in rows("acquires", "lockspace", "result")])
    w.histogram("lockengine_lease_acquire_seconds", "Duration of lease acquire calls (all results).",
                rows("acquire_seconds", "lockspace"))
    w.metric("lockengine_lease_releases", "counter",
             "Lease releases since the daemon started, by lockspace, result and cause (call: a release call; "
             "exit: the holder's connection closed).",
             [(labels, int(r["count"])) for labels, r in rows("releases", "lockspace", "result", "cause")])
    w.histogram("lockengine_lease_release_seconds", "Duration of lease releases (all results and causes).",
                rows("release_seconds", "lockspace"))
    w.metric("lockengine_escalation_steps", "counter",
             "Escalation steps this daemon took, by lockspace, step (request: a release request acted on; "
             "killpath, sigterm, sigkill: sent to a holder; watchdog_stop: petting stopped because of the "
             "lockspace) and cause (request, recovery, rem_lockspace, shutdown, renewal).",
             [(labels, int(r["count"])) for labels, r in rows("escalation", "lockspace", "step", "cause")])


def _age(ls: dict[str, Any], now: float) -> float:
    """The daemon's own renewal_age (status -D), else from last_success; -1 before the first renewal."""
    if ls.get("renewal_age") is not None:
        return float(ls["renewal_age"])
    last = ls.get("last_success")
    return round(max(0.0, now - float(last)), 3) if last else -1.0


def _renewal_metrics(w: _Writer, renewals: dict[str, list[dict[str, Any]]]) -> None:
    last = {name: rows[-1] for name, rows in sorted(renewals.items()) if rows}
    for kind in ("read", "write"):
        w.metric(f"lockengine_renewal_{kind}_seconds", "gauge", f"{kind.capitalize()} latency of the last renewal.",
                 [({"lockspace": n}, float(r[f"{kind}_ms"]) / 1000) for n, r in last.items()])
        w.metric(f"lockengine_renewal_{kind}_seconds_max", "gauge",
                 f"Largest {kind} latency in the daemon's renewal history (the last 180 renewals).",
                 [({"lockspace": n}, max(float(r[f"{kind}_ms"]) for r in rows) / 1000)
                  for n, rows in sorted(renewals.items()) if rows])
    w.metric("lockengine_renewal_errors", "gauge", "Failed renewals in the daemon's renewal history.",
             [({"lockspace": n}, sum(1 for r in rows if r.get("result") not in (0, None)))
              for n, rows in sorted(renewals.items())])


def _watchdog_metrics(w: _Writer, wd: dict[str, Any], now: float) -> None:
    if not wd:
        return
    labels = {"backend": wd.get("backend", ""), "device": wd.get("device") or ""}
    w.metric("lockengine_watchdog_protected", "gauge", "1 if a watchdog resets this host when petting stops.",
             [(labels, bool(wd.get("protected")))])
    w.metric("lockengine_watchdog_armed", "gauge", "1 if the watchdog device is open (armed).",
             [(labels, bool(wd.get("armed")))])
    w.metric("lockengine_watchdog_petting", "gauge", "1 while the daemon pets the watchdog.",
             [(labels, bool(wd.get("petting")))])
    w.metric("lockengine_watchdog_pets", "counter", "Pets since the daemon started.",
             [(labels, int(wd.get("pets") or 0))])
    if wd.get("last_pet_monotonic"):
        w.metric("lockengine_watchdog_last_pet_age_seconds", "gauge", "Seconds since the last pet.",
                 [(labels, round(max(0.0, now - float(wd["last_pet_monotonic"])), 3))])
    for key, name, text in (("timeout", "lockengine_watchdog_timeout_seconds", "The device's timeout."),
                            ("fire_timeout", "lockengine_watchdog_fire_timeout_seconds",
                             "Seconds from the last pet to the reset, as configured.")):
        if wd.get(key) is not None:
            w.metric(name, "gauge", text, [(labels, int(wd[key]))])
    w.metric("lockengine_watchdog_registration_expires_in_seconds", "gauge",
             "Seconds until a lockspace's registration expires and petting stops, unless it renews.",
             [({"lockspace": r["name"]}, float(r["expires_in"])) for r in wd.get("registrations", [])])


def write_textfile(path: str, text: str) -> None:
    """Atomically, as the textfile collector needs: a temporary file in the same directory, then rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lockengine-metrics.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
