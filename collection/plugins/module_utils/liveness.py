# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Other hosts' liveness as this host's daemon sees it (client host_status), and lease summaries.

Liveness is never judged from one read of the disk: a host is live only if its delta lease timestamp
changed between two of our renewals, which only the daemon of a joined lockspace observes. Without it the
answer is "unknown", and the modules say why.
"""

from __future__ import annotations

from ansible_collections.lockengine.cluster.plugins.module_utils.engine import EngineError, lockspace_entry

STATES = ("free", "live", "fail", "dead", "unknown")
FORCE_MODES = {0: "none", 1: "force", 2: "graceful"}


class LivenessView(object):
    """Per-lockspace host tables from the daemon, fetched once each."""

    def __init__(self, engine):
        self.engine = engine
        self.status, self.reason = engine.daemon_status()
        self._tables = {}

    @property
    def daemon_running(self):
        return self.status is not None

    def hosts(self, lockspace):
        """({host_id: host dict}, reason); reason is None when the table comes from the daemon."""
        if lockspace in self._tables:
            return self._tables[lockspace]
        if self.status is None:
            answer = ({}, self.reason)
        else:
            entry = lockspace_entry(self.status, lockspace)
            if entry is None or entry.get("state") != "JOINED":
                answer = ({}, "this host has not joined lockspace %s, so it does not watch its hosts" % lockspace)
            else:
                try:
                    doc = self.engine.run("client", "host_status", "-s", lockspace)
                    answer = ({h.get("host_id"): h for h in doc.get("hosts") or []}, None)
                except EngineError as exc:
                    answer = ({}, "client host_status -s %s failed: %s" % (lockspace, exc))
        self._tables[lockspace] = answer
        return answer


def state_of(host):
    state = str((host or {}).get("state") or "unknown").lower()
    return state if state in STATES else "unknown"


def owner_view(view, lockspace, owner_id, owner_generation):
    """The owner's liveness dict for a lease: state, name, whether its holding instance still exists."""
    table, reason = view.hosts(lockspace)
    host = table.get(owner_id)
    out = {
        "owner_state": state_of(host) if reason is None else "unknown",
        "owner_name": (host or {}).get("host_name"),
        "owner_host_generation": (host or {}).get("generation"),
        "liveness_source": "daemon" if reason is None else "none",
        "liveness_reason": reason,
    }
    # A newer generation in the owner's delta slot means the instance that took the lease has gone
    # (the host rejoined since): the lease can be taken like a dead host's.
    gen = out["owner_host_generation"]
    out["owner_generation_current"] = None if gen is None else gen == owner_generation
    return out


def released_by_owner(area):
    """The owner marked its ballot block for the current lver released (needs `dump -f 2`).

    A release skips the leader write when another host committed the lease for the owner; the leader
    then keeps its timestamp and only the owner's RELEASED flag tells acquirers the lease is free.
    """
    lver = area.get("lver") or 0
    for dblock in area.get("dblocks") or []:
        if dblock.get("host_id") == area.get("owner_id"):
            return bool(dblock.get("released")) and dblock.get("lver") == lver
    return False


def summarize_lease(area, path, view, with_dblocks=False):
    """A dumped resource area as lease_info returns it."""
    request = area.get("request") or {}
    lver = area.get("lver") or 0
    force_mode = FORCE_MODES.get(request.get("force_mode") or 0, str(request.get("force_mode")))
    shared = []
    for holder in area.get("shared") or []:
        seen = owner_view(view, area.get("lockspace"), holder.get("host_id"), holder.get("generation"))
        shared.append({"host_id": holder.get("host_id"), "generation": holder.get("generation"),
                       "state": seen["owner_state"]})
    lease = {
        "lockspace": area.get("lockspace"),
        "resource": area.get("resource"),
        "path": path,
        "offset": area.get("offset"),
        "sector_size": area.get("sector_size"),
        "align_size": area.get("align_size"),
        "num_hosts": area.get("num_hosts"),
        "owner_id": area.get("owner_id"),
        "owner_generation": area.get("owner_generation"),
        "lver": lver,
        "timestamp": area.get("timestamp"),
        "held": bool(area.get("timestamp")) and not released_by_owner(area),
        "request": {
            "lver": request.get("lver") or 0,
            "force_mode": force_mode,
            "pending": bool(request.get("force_mode")) and (request.get("lver") or 0) > lver,
        },
        "shared": shared,
    }
    lease.update(owner_view(view, area.get("lockspace"), area.get("owner_id"), area.get("owner_generation")))
    if with_dblocks:
        lease["dblocks"] = area.get("dblocks") or []
    return lease
