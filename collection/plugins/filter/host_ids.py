# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host id assignment for the role lockengine.cluster.lockspace (pure logic, runs on the controller).

Rules, in order (DESIGN §3):
1. an explicit id (hostvar lockengine_host_id) wins;
2. otherwise the slot already owned on disk by the host's stable lockengine name, so a rejoining host
   keeps its id and never takes a slot another name holds;
3. otherwise the lowest free slot.
and a proof that the result is unique in the play and on disk: no two play hosts share an id or a name,
and no host is given a slot that the disk shows in use by another name.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.lockengine.cluster.plugins.module_utils.common import HOST_ID_MAX


def _member_fields(member):
    host = member.get("host")
    if not host:
        raise AnsibleFilterError("assign_host_ids: every member needs 'host' (the inventory hostname): %r" % member)
    explicit = member.get("explicit_id")
    # Older ansible-core templates a missing id to the string "None".
    if explicit is None or str(explicit).strip() in ("", "None", "none", "null"):
        explicit = None
    else:
        try:
            explicit = int(explicit)
        except (TypeError, ValueError):
            raise AnsibleFilterError("lockengine_host_id of %s: %r is not a number; give an integer host id"
                                     % (host, explicit))
    return host, member.get("host_name") or "", explicit


def _check_names(members):
    seen = {}
    for host, name, _explicit in members:
        if not name:
            raise AnsibleFilterError(
                "%s has no lockengine host name (is lockengined running there? run the role "
                "lockengine.cluster.engine first)" % host)
        if name in seen:
            raise AnsibleFilterError(
                "%s and %s have the same lockengine host name %r; the name comes from /etc/machine-id and the "
                "node name: was a machine cloned? Give each host its own /etc/machine-id" % (seen[name], host, name))
        seen[name] = host


def _busy_by_other(slot, own_name):
    return bool(slot.get("timestamp")) and slot.get("name") != own_name


def assign_host_ids(members, slots, max_hosts=HOST_ID_MAX, lockspace="lockspace", allow_busy=False):
    """{inventory_hostname: host_id} for every member.

    members: [{"host": inventory_hostname, "host_name": the daemon's stable name, "explicit_id": int or None}]
    slots:   the lockspace's slots on disk, as lockengine.cluster.host_status returns them
             ([{"host_id", "name", "generation", "timestamp", ...}], only slots ever acquired)
    """
    rows = sorted((_member_fields(m) for m in members or []), key=lambda r: r[0])
    _check_names(rows)
    max_hosts = int(max_hosts)
    by_id = {}
    for slot in slots or []:
        by_id[int(slot["host_id"])] = slot
    names = {name: host for host, name, _explicit in rows}
    ids = {}

    for host, name, explicit in rows:
        if explicit is None:
            continue
        if not 1 <= explicit <= max_hosts:
            raise AnsibleFilterError("lockengine_host_id of %s: %d is out of range for lockspace %s (1 to %d)"
                                     % (host, explicit, lockspace, max_hosts))
        other = [h for h, i in ids.items() if i == explicit]
        if other:
            raise AnsibleFilterError("lockengine_host_id %d is given to both %s and %s; every host needs its own id"
                                     % (explicit, other[0], host))
        slot = by_id.get(explicit)
        if slot and _busy_by_other(slot, name) and not allow_busy:
            owner = slot.get("name")
            raise AnsibleFilterError(
                "lockengine_host_id %d of %s: the slot is in use on disk in lockspace %s by %r%s (its timestamp is "
                "not 0); joining would wait and fail with HOSTID_BUSY while that host lives. Have it leave, choose "
                "another id, or set lockengine_host_id_allow_busy: true if that host is dead"
                % (explicit, host, lockspace, owner, " (%s)" % names[owner] if owner in names else ""))
        ids[host] = explicit

    taken = set(ids.values())
    for host, name, explicit in rows:
        if host in ids:
            continue
        own = sorted(i for i, slot in by_id.items() if slot.get("name") == name and i not in taken and i <= max_hosts)
        if own:
            ids[host] = own[0]
            taken.add(own[0])

    # A free slot is one nobody in the play claims by name and that the disk shows unused or released.
    reserved = {i for i, slot in by_id.items() if slot.get("name") in names or slot.get("timestamp")}
    candidates = (i for i in range(1, max_hosts + 1) if i not in taken and i not in reserved)
    for host, name, explicit in rows:
        if host in ids:
            continue
        try:
            ids[host] = next(candidates)
        except StopIteration:
            raise AnsibleFilterError("no free host id left in lockspace %s for %s: all %d slots are taken or in use"
                                     % (lockspace, host, max_hosts))
        taken.add(ids[host])

    if len(set(ids.values())) != len(ids):  # the proof, kept even though the rules above imply it
        raise AnsibleFilterError("internal error: duplicate host ids %r" % ids)
    return ids


class FilterModule(object):
    def filters(self):
        return {"assign_host_ids": assign_host_ids}
