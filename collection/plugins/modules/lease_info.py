#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lease_info
short_description: Show who holds resource leases on a shared disk
version_added: "0.1.0"
description:
  - Reads resource lease areas with C(lockengine direct dump --json) and returns, for each lease, the
    owner's host id and generation, the lease version (lver), the timestamp, a pending release request and
    the shared holders.
  - Adds the owner's liveness as this host sees it, from C(lockengine client host_status), when the daemon
    runs here and has joined the lease's lockspace. Otherwise RV(leases[].owner_state) is C(unknown) and
    RV(leases[].liveness_reason) says why; one read of the disk cannot tell a live host from a dead one.
  - Without O(offset), every lease area on the device is listed.
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.info_attributes
options:
  path:
    description:
      - Block device or file that holds the leases, as this host sees it.
    type: path
    required: true
  offset:
    description:
      - Byte offset of one resource area (bytes or whole MiB with an C(M) suffix). When unset, the whole
        device is read.
    type: str
  lockspace:
    description:
      - Only leases of this lockspace.
    type: str
  name:
    description:
      - Only the resource with this name.
    type: str
  dblocks:
    description:
      - Also return each host's ballot block (C(direct dump -f 2)); for debugging.
    type: bool
    default: false
seealso:
  - module: lockengine.cluster.lease
  - module: lockengine.cluster.host_status
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Who holds R1?
  lockengine.cluster.lease_info:
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 1M
  register: r1

- name: Fail when its owner is not alive
  ansible.builtin.assert:
    that: r1.leases[0].owner_state == 'live'
    fail_msg: "R1 is held by host {{ r1.leases[0].owner_id }} which is {{ r1.leases[0].owner_state }}"

- name: Every lease of lockspace LS on the device
  lockengine.cluster.lease_info:
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    lockspace: LS
"""

RETURN = r"""
leases:
  description: The resource leases found, in device order.
  returned: always
  type: list
  elements: dict
  contains:
    lockspace:
      description: Lockspace name.
      type: str
      sample: LS
    resource:
      description: Resource name.
      type: str
      sample: R1
    path:
      description: The device path read.
      type: str
    offset:
      description: Byte offset of the area.
      type: int
      sample: 1048576
    sector_size:
      description: Sector size in bytes.
      type: int
    align_size:
      description: Area size in bytes.
      type: int
    num_hosts:
      description: Number of host ballot blocks.
      type: int
    owner_id:
      description: Host id of the last owner (kept after a release).
      type: int
      sample: 1
    owner_generation:
      description: The owner's delta lease generation when it took the lease.
      type: int
    lver:
      description: Lease version; it grows by one with every acquire.
      type: int
      sample: 7
    timestamp:
      description: The owner's clock when it took the lease; C(0) means the lease is free.
      type: int
    held:
      description:
        - Whether the lease is held exclusively, that is its timestamp is not 0 and the owner has not marked
          its ballot block for this lver released.
      type: bool
    owner_state:
      description:
        - The owner host's state as this host sees it, C(free), C(live), C(fail), C(dead) or C(unknown).
      type: str
      sample: live
    owner_name:
      description: The owner's host name, from the daemon or from the lockspace area on the same device.
      type: str
    owner_host_generation:
      description: Current generation of the owner's host slot, when known.
      type: int
    owner_generation_current:
      description:
        - Whether the owner's host slot still has the generation that took the lease. V(false) means the
          holding instance has gone (the host has rejoined since), so the lease can be taken. Null when unknown.
      type: bool
    liveness_source:
      description: C(daemon) when liveness comes from this host's daemon, C(none) otherwise.
      type: str
    liveness_reason:
      description: Why liveness is unknown; null when it comes from the daemon.
      type: str
    request:
      description: The release request record.
      type: dict
      contains:
        lver:
          description: Requested lease version.
          type: int
        force_mode:
          description: C(none), C(graceful) or C(force).
          type: str
        pending:
          description: Whether a request for a newer version than the current one waits for the owner.
          type: bool
    shared:
      description: Shared holders, each with C(host_id), C(generation) and C(state) as in RV(leases[].owner_state).
      type: list
      elements: dict
    dblocks:
      description: Ballot blocks, only with O(dblocks=true).
      type: list
      elements: dict
lockspaces:
  description: Lockspace areas found on the device, with the hosts that ever joined (id, name, generation).
  returned: always
  type: list
  elements: dict
  sample: [{"lockspace": "LS", "offset": 0, "hosts": [{"host_id": 1, "host_name": "node1", "generation": 3}]}]
daemon_running:
  description: Whether the lockengine daemon answered on this host.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    MIB,
    check_name,
    check_path,
    common_argument_spec,
    parse_offset,
    validated,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import Engine, EngineError
from ansible_collections.lockengine.cluster.plugins.module_utils.liveness import LivenessView, summarize_lease


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        offset=dict(type="str"),
        lockspace=dict(type="str"),
        name=dict(type="str"),
        dblocks=dict(type="bool", default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=build_argument_spec(), supports_check_mode=True)
    p = module.params
    checks = [(check_path, p["path"])]
    checks += [(check_name, p[o], o) for o in ("lockspace", "name") if p[o] is not None]
    validated(module, checks)
    offset = None
    if p["offset"] is not None:
        try:
            offset = parse_offset(p["offset"])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    engine = Engine(module)
    try:
        # One area when an offset is given: the leader at the offset tells the engine the rest.
        # Ballot blocks always: a release can leave the leader's timestamp and mark only the owner's block.
        dump = engine.dump(p["path"], offset, size=MIB if offset is not None else None, dblocks=True)
    except EngineError as exc:
        engine.fail(exc, "cannot read leases on %s" % p["path"])
    areas = dump.get("areas") or []
    names = {}
    lockspaces = []
    for area in areas:
        if area.get("kind") == "lockspace":
            hosts = [{"host_id": h.get("host_id"), "host_name": h.get("host_name"),
                      "generation": h.get("generation"), "timestamp": h.get("timestamp")}
                     for h in area.get("hosts") or []]
            lockspaces.append({"lockspace": area.get("lockspace"), "offset": area.get("offset"), "hosts": hosts})
            names[area.get("lockspace")] = {h["host_id"]: h["host_name"] for h in hosts}
    view = LivenessView(engine)
    leases = []
    for area in areas:
        if area.get("kind") != "resource":
            continue
        if offset is not None and area.get("offset") != offset:
            continue
        if p["lockspace"] and area.get("lockspace") != p["lockspace"]:
            continue
        if p["name"] and area.get("resource") != p["name"]:
            continue
        lease = summarize_lease(area, p["path"], view, with_dblocks=p["dblocks"])
        if not lease["owner_name"]:
            lease["owner_name"] = names.get(lease["lockspace"], {}).get(lease["owner_id"])
        leases.append(lease)
    if offset is not None and not leases:
        module.fail_json(
            msg="%s:%d holds no resource lease%s; check path and offset" % (
                p["path"], offset, " matching lockspace/name" if p["lockspace"] or p["name"] else ""),
            areas=areas,
        )
    module.exit_json(changed=False, leases=leases, lockspaces=lockspaces, daemon_running=view.daemon_running)


if __name__ == "__main__":
    main()
