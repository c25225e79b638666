#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resource
short_description: Initialise a resource (paxos) lease area
version_added: "0.1.0"
description:
  - Initialises the lease area of a resource with C(lockengine direct init -r), once.
  - An area that already holds this resource of this lockspace with the requested geometry is left alone,
    whoever holds the lease. Re-initialising wipes every host's ballot, so an area that holds anything else
    (another resource, a lockspace, this resource with another geometry) is only overwritten with
    O(force=true), and a held lease (an owner or shared holders) only with O(force=true).
  - Needs no daemon; run it on one host (C(run_once)).
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.geometry
  - lockengine.cluster.common.attributes
options:
  path:
    description:
      - Block device or file that holds the lease area, as this host sees it.
    type: path
    required: true
  lockspace:
    description:
      - Name of the lockspace the resource belongs to, at most 48 bytes, without C(:).
    type: str
    required: true
  name:
    description:
      - Resource name, at most 48 bytes, without C(:).
    type: str
    required: true
  offset:
    description:
      - Byte offset of the resource area, a multiple of O(align_size) (at least 1 MiB). It must not be the
        lockspace area's offset.
      - Bytes (V(2097152)) or whole MiB with an C(M) suffix (V(2M)).
    type: str
    required: true
  num_hosts:
    description:
      - Number of host ballot blocks the lease uses (sanlock C(-n)); at most the geometry's maximum.
        Smaller values make acquires cheaper.
      - When unset the engine uses the geometry's maximum (2000 for 512/1M).
    type: int
  state:
    description:
      - V(initialized) is the only state; the option exists so that tasks read declaratively.
    type: str
    choices: [initialized]
    default: initialized
  force:
    description:
      - Re-initialise an area that holds something else, or this resource with another geometry or
        O(num_hosts), even when the lease is held. Every host's ballot is wiped; a holder loses its lease.
    type: bool
    default: false
seealso:
  - module: lockengine.cluster.lockspace
  - module: lockengine.cluster.lease_info
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Initialise resource R1 right after the lockspace area
  lockengine.cluster.resource:
    lockspace: LS
    name: R1
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 1M
  run_once: true

- name: A lease for at most 16 hosts on 4K storage
  lockengine.cluster.resource:
    lockspace: BIG
    name: vm-42
    path: /dev/mapper/leases
    offset: 10M
    sector_size: 4096
    align_size: 2M
    num_hosts: 16
  run_once: true
"""

RETURN = r"""
lockspace:
  description: The lockspace name.
  returned: always
  type: str
  sample: LS
name:
  description: The resource name.
  returned: always
  type: str
  sample: R1
geometry:
  description: Geometry of the area as read from disk (requested values in check mode).
  returned: success
  type: dict
  contains:
    sector_size:
      description: Sector size in bytes.
      type: int
    align_size:
      description: Area size in bytes.
      type: int
    num_hosts:
      description: Number of host ballot blocks.
      type: int
  sample: {"sector_size": 512, "align_size": 1048576, "num_hosts": 2000}
found:
  description: What the area held before the run (C(kind) is C(empty) when nothing valid).
  returned: always
  type: dict
  sample: {"kind": "resource", "lockspace": "LS", "resource": "R1", "owner_id": 0, "held": false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    HOST_ID_MAX,
    MAX_HOSTS,
    MIB,
    align_bytes,
    area_argument_spec,
    check_geometry,
    check_name,
    check_path,
    common_argument_spec,
    geometry_argument_spec,
    parse_offset,
    resource_string,
    validated,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import (
    Engine,
    EngineError,
    area_at,
    geometry_of,
    init_area,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.liveness import released_by_owner


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(geometry_argument_spec())
    spec.update(area_argument_spec(offset_required=True))
    spec.update(
        lockspace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        num_hosts=dict(type="int"),
        state=dict(type="str", default="initialized", choices=["initialized"]),
        force=dict(type="bool", default=False),
    )
    return spec


def describe(area):
    """What an area holds. A cleared (invalidated) resource is empty; a record that fails validation is
    "invalid" and, like the engine, we never take it as free."""
    if not area or area.get("kind") not in ("lockspace", "resource") or area.get("cleared"):
        return {"kind": "empty"}
    if area.get("valid") is False and "hosts" not in area:
        return {"kind": "invalid", "error": area.get("error")}
    out = {"kind": area["kind"], "lockspace": area.get("lockspace")}
    out.update(geometry_of(area))
    if area["kind"] == "resource":
        shared = area.get("shared") or []
        out.update(
            resource=area.get("resource"),
            owner_id=area.get("owner_id"),
            owner_generation=area.get("owner_generation"),
            lver=area.get("lver"),
            shared=shared,
            # Shared holders leave the leader's timestamp at 0 but still hold the lease.
            held=(bool(area.get("timestamp")) and not released_by_owner(area)) or bool(shared),
        )
    return out


def check_num_hosts(num_hosts, sector_size, align_size):
    if num_hosts is None:
        return
    limit = MAX_HOSTS.get((sector_size, align_bytes(align_size)), HOST_ID_MAX) if sector_size and align_size \
        else HOST_ID_MAX
    if not 1 <= num_hosts <= limit:
        raise ValueError("num_hosts: %d is out of range; use 1 to %d for this geometry" % (num_hosts, limit))


def main():
    module = AnsibleModule(argument_spec=build_argument_spec(), supports_check_mode=True)
    p = module.params
    validated(module, [
        (check_name, p["lockspace"], "lockspace"), (check_name, p["name"], "name"), (check_path, p["path"]),
        (check_geometry, p["sector_size"], p["align_size"]),
        (check_num_hosts, p["num_hosts"], p["sector_size"], p["align_size"]),
    ])
    align = align_bytes(p["align_size"])
    try:
        offset = parse_offset(p["offset"], "offset", align)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    engine = Engine(module)
    where = "%s:%d" % (p["path"], offset)
    try:
        dump = engine.dump(p["path"], offset, size=align or MIB, dblocks=True)
    except EngineError as exc:
        engine.fail(exc, "cannot read the area at %s" % where)
    area = area_at(dump, offset)
    found = describe(area)
    result = dict(changed=False, lockspace=p["lockspace"], name=p["name"], found=found)
    same = (
        found["kind"] == "resource"
        and found["lockspace"] == p["lockspace"]
        and found["resource"] == p["name"]
        and p["sector_size"] in (None, found.get("sector_size"))
        and align in (None, found.get("align_size"))
        and p["num_hosts"] in (None, found.get("num_hosts"))
    )
    if same:
        result["geometry"] = geometry_of(area)
        module.exit_json(**result)
    if found["kind"] != "empty" and not p["force"]:
        if found["kind"] == "lockspace":
            what = "lockspace %s" % found["lockspace"]
        elif found["kind"] == "invalid":
            what = "a lease record that fails validation (%s)" % (found.get("error") or {}).get("name")
        else:
            held = " whose lease is HELD (owner host_id %s)" % found["owner_id"] if found["held"] else ""
            what = "resource %s:%s%s" % (found["lockspace"], found["resource"], held)
        module.fail_json(
            msg="%s already holds %s; re-initialising wipes it. Check path and offset, or set force: true"
            % (where, what),
            found=found,
        )
    wanted = {"sector_size": p["sector_size"], "align_size": align, "num_hosts": p["num_hosts"]}
    result["changed"] = True
    result["diff"] = dict(
        before=found,
        after=dict(kind="resource", lockspace=p["lockspace"], resource=p["name"], held=False,
                   **{k: v for k, v in wanted.items() if v}),
    )
    if module.check_mode:
        result["geometry"] = wanted
        module.exit_json(**result)
    result["geometry"] = init_area(
        engine, ["direct", "init", "-r", resource_string(p["lockspace"], p["name"], p["path"], offset)], p,
        (("-Z", "sector_size"), ("-A", "align_size"), ("-n", "num_hosts")), offset, align,
        "initialising resource %s:%s at %s failed" % (p["lockspace"], p["name"], where),
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
