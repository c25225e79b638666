# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One table of what every host believes, with disagreements marked (playbook lockengine.cluster.cluster_view).

Pure logic on the controller. Input: one observation per host:
  {"host": inventory_hostname, "reachable": bool, "reason": str,
   "lockspaces": {LS: {"state": "JOINED"|..., "host_id": int, "hosts": [{"host_id", "name", "state"}]}},
   "leases": [{"lockspace", "resource", "lver", "state", "host_id": this host's id, "disk_owner_id", "disk_error"}]}
A host entry may name itself "host_name" (the daemon's `client gets -h 1`) instead of "name". A host's view
of its own slot is its lockspace state (JOINED counts as live); a FAILED lockspace keeps the host table of
its last renewal, so its other rows show what that host last saw (it ages to fail and dead). Rows where the
hosts that see the slot disagree are marked, and so is a lease a host believes it holds while the disk
names another owner. Not counted as disagreements, only listed: a request still waiting (state ACQUIRING),
a lease whose disk read did not complete ("disk_error": nothing is known about its owner on disk), and a
lease whose lockspace this host no longer lists (its id is unknown; the daemon is ending its holders).
"""

from __future__ import annotations

MARK = "<< DISAGREE"
_SELF = {"JOINED": "live", "ADD": "joining", "FAILED": "fail", "REM": "leaving"}


def _view_of(obs, lockspace, host_id):
    ls = (obs.get("lockspaces") or {}).get(lockspace)
    if not obs.get("reachable") or ls is None:
        return None
    if ls.get("host_id") == host_id:
        return _SELF.get(ls.get("state"), str(ls.get("state", "?")).lower())
    for h in ls.get("hosts") or []:
        if h.get("host_id") == host_id:
            return str(h.get("state", "unknown")).lower()
    return "free"


def cluster_view_table(observations):
    """{"lines": [...], "disagreements": [...]} (each disagreement a sentence)."""
    observers = sorted(observations, key=lambda o: o.get("host", ""))
    names = [o.get("host", "?") for o in observers]
    width = max([8] + [len(n) for n in names]) + 2
    lines, disagreements = [], []
    lockspaces = sorted({ls for o in observers for ls in (o.get("lockspaces") or {})})
    for lockspace in lockspaces:
        slots = {}  # host id -> the name on disk (as a daemon reports it), else the inventory name
        for o in observers:
            ls = (o.get("lockspaces") or {}).get(lockspace) or {}
            for h in ls.get("hosts") or []:
                name = h.get("name") or h.get("host_name")
                if str(h.get("state", "")).lower() != "free" and name:
                    slots.setdefault(h["host_id"], name)
        for o in observers:
            ls = (o.get("lockspaces") or {}).get(lockspace) or {}
            if ls.get("host_id"):
                slots.setdefault(ls["host_id"], o.get("host"))
        lines.append("lockspace %s" % lockspace)
        lines.append("  %-8s %-30s %s" % ("host_id", "name", "".join(n.ljust(width) for n in names)))
        for host_id in sorted(slots):
            views = [_view_of(o, lockspace, host_id) for o in observers]
            seen = {v for v in views if v is not None}
            row = "  %-8s %-30s %s" % (host_id, str(slots[host_id])[:30],
                                       "".join((v or "-").ljust(width) for v in views))
            if len(seen) > 1:
                row += MARK
                disagreements.append("%s host %s: %s" % (lockspace, host_id, ", ".join(
                    "%s sees %s" % (n, v) for n, v in zip(names, views) if v is not None)))
            lines.append(row.rstrip() if not row.endswith(MARK) else row)
    held = [(o.get("host"), lease) for o in observers for lease in o.get("leases") or []]
    if held:
        lines.append("leases held by processes on each host (owner on disk as that host reads it)")
        for host, lease in sorted(held, key=lambda x: (x[0], x[1].get("lockspace", ""), x[1].get("resource", ""))):
            label = "%s:%s" % (lease.get("lockspace"), lease.get("resource"))
            if lease.get("state") == "ACQUIRING":
                lines.append("  %s waits for %s (acquiring)" % (host, label))
                continue
            row = "  %s holds %s lver %s; " % (host, label, lease.get("lver"))
            if lease.get("disk_error"):
                lines.append(row + "disk not read (%s), its id %s" % (lease["disk_error"], lease.get("host_id")))
                continue
            if lease.get("host_id") is None:
                lines.append(row + "disk owner %s; lockspace %s not joined here (its id unknown)" % (
                    lease.get("disk_owner_id"), lease.get("lockspace")))
                continue
            ok = lease.get("disk_owner_id") == lease.get("host_id")
            row += "disk owner %s, its id %s" % (lease.get("disk_owner_id"), lease.get("host_id"))
            if not ok:
                row += " " + MARK
                disagreements.append("%s believes it holds %s but the disk names owner %s" % (
                    host, label, lease.get("disk_owner_id")))
            lines.append(row)
    for o in observers:
        if not o.get("reachable"):
            lines.append("%s: no view (%s)" % (o.get("host"), o.get("reason") or "unreachable"))
    lines.append("%d disagreement(s)" % len(disagreements))
    return {"lines": lines, "disagreements": disagreements}


class FilterModule(object):
    def filters(self):
        return {"cluster_view_table": cluster_view_table}
