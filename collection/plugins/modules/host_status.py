#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_status
short_description: List every host of a lockspace with its id, name, generation and state
version_added: "0.1.0"
description:
  - From this host's daemon (C(lockengine client host_status)) when it has joined the lockspace, the state of
    every host as this host sees it, C(free), C(live), C(fail), C(dead) or C(unknown), with sanlock's meanings
    (C(unknown) until a renewal of the other host has been seen, C(fail) 8 x io_timeout after its last seen
    renewal, C(dead) 60 s later).
  - From the disk (C(lockengine direct dump)) otherwise, when O(path) is given, every slot ever acquired, with
    its owner's name and generation. One read cannot tell a live host from a dead one, so the state is
    C(free) for released slots and C(unknown) for the others.
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.info_attributes
options:
  lockspace:
    description:
      - Lockspace name.
    type: str
    required: true
  path:
    description:
      - Device or file of the lockspace area, to read the slots from disk.
    type: path
  offset:
    description:
      - Byte offset of the lockspace area (bytes or whole MiB with an C(M) suffix).
    type: str
    default: "0"
  source:
    description:
      - V(auto) asks the daemon when this host has joined the lockspace, else reads the disk (needs O(path)).
      - V(daemon) fails unless the daemon watches the lockspace; V(disk) always reads the disk.
    type: str
    choices: [auto, daemon, disk]
    default: auto
seealso:
  - module: lockengine.cluster.lease_info
  - module: lockengine.cluster.lockspace
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Hosts of lockspace LS as this host sees them
  lockengine.cluster.host_status:
    lockspace: LS
  register: ls

- name: Stop when a host is failing
  ansible.builtin.assert:
    that: ls.hosts | selectattr('state', 'equalto', 'fail') | list | length == 0
    fail_msg: "hosts failing: {{ ls.hosts | selectattr('state', 'equalto', 'fail') | map(attribute='name') | list }}"

- name: Slots on disk, before this host has joined
  lockengine.cluster.host_status:
    lockspace: LS
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    source: disk
"""

RETURN = r"""
hosts:
  description: Every host seen, by host id.
  returned: always
  type: list
  elements: dict
  contains:
    host_id:
      description: The host's id (its slot).
      type: int
      sample: 2
    name:
      description: The host name stored in its slot (lockengine's stable host name).
      type: str
      sample: 8b5c2f0e.node2
    generation:
      description: Generation of the slot; it grows by one on every join.
      type: int
      sample: 4
    timestamp:
      description: The host's clock at its last renewal; C(0) when it released the slot.
      type: int
    state:
      description: C(free), C(live), C(fail), C(dead) or C(unknown).
      type: str
      sample: live
    io_timeout:
      description: The host's io_timeout, which sets when it is declared failed and dead.
      type: int
    last_check:
      description: This host's clock at its last check of the slot (daemon source only).
      type: int
    last_live:
      description: This host's clock when it last saw the slot change (daemon source only).
      type: int
  sample: [{"host_id": 1, "name": "4f1d.node1", "generation": 2, "state": "live"}]
source:
  description: C(daemon) or C(disk).
  returned: always
  type: str
joined:
  description: Whether this host has joined the lockspace.
  returned: always
  type: bool
local_host_id:
  description: This host's id in the lockspace when joined, else null.
  returned: always
  type: int
local_host_name:
  description: The host name this host's daemon writes into the slots it takes; null when the daemon is not running.
  returned: always
  type: str
  sample: 4f1d.node1
daemon_running:
  description: Whether the daemon answered on this host.
  returned: always
  type: bool
reason:
  description: Why the disk was read instead of asking the daemon; null with the daemon source.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    check_name,
    check_path,
    common_argument_spec,
    parse_offset,
    validated,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import (
    Engine,
    EngineError,
    area_at,
    lockspace_entry,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.liveness import state_of

# Covers the largest lockspace area (4096/8M); the engine stops at the end of the device.
LOCKSPACE_READ_SIZE = 8 * 1024 * 1024


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(
        lockspace=dict(type="str", required=True),
        path=dict(type="path"),
        offset=dict(type="str", default="0"),
        source=dict(type="str", default="auto", choices=["auto", "daemon", "disk"]),
    )
    return spec


def from_daemon(engine, name):
    doc = engine.run("client", "host_status", "-s", name)
    return [
        {"host_id": h.get("host_id"), "name": h.get("host_name"), "generation": h.get("generation"),
         "timestamp": h.get("timestamp"), "state": state_of(h), "io_timeout": h.get("io_timeout"),
         "last_check": h.get("last_check"), "last_live": h.get("last_live")}
        for h in doc.get("hosts") or []
    ]


def from_disk(module, engine, name, path, offset):
    try:
        area = area_at(engine.dump(path, offset, size=LOCKSPACE_READ_SIZE), offset)
    except EngineError as exc:
        engine.fail(exc, "cannot read lockspace %s at %s:%d" % (name, path, offset))
    if not area or area.get("kind") != "lockspace" or area.get("lockspace") != name:
        module.fail_json(msg="%s:%d does not hold lockspace %s; check path and offset, or initialise it "
                         "(module lockengine.cluster.lockspace, state: initialized)" % (path, offset, name))
    return [
        {"host_id": h.get("host_id"), "name": h.get("host_name"), "generation": h.get("generation"),
         "timestamp": h.get("timestamp"), "state": "unknown" if h.get("timestamp") else "free",
         "io_timeout": h.get("io_timeout"), "last_check": None, "last_live": None}
        for h in area.get("hosts") or []
    ]


def main():
    module = AnsibleModule(argument_spec=build_argument_spec(), supports_check_mode=True)
    p = module.params
    checks = [(check_name, p["lockspace"], "lockspace")]
    if p["path"]:
        checks.append((check_path, p["path"]))
    validated(module, checks)
    try:
        offset = parse_offset(p["offset"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    engine = Engine(module)
    status, reason = engine.daemon_status()
    entry = lockspace_entry(status, p["lockspace"])
    joined = bool(entry) and entry.get("state") == "JOINED"
    result = dict(
        changed=False, joined=joined, daemon_running=status is not None,
        local_host_id=entry.get("host_id") if joined else None,
        local_host_name=((status or {}).get("daemon") or {}).get("host_name"),
    )
    if not joined and status is not None:
        reason = "this host has not joined lockspace %s" % p["lockspace"]
    if p["source"] == "daemon" or (p["source"] == "auto" and joined):
        if not joined:
            module.fail_json(msg="source: daemon needs this host joined to lockspace %s: %s; join it, or use "
                             "source: auto or disk with path" % (p["lockspace"], reason), **result)
        try:
            hosts = from_daemon(engine, p["lockspace"])
        except EngineError as exc:
            engine.fail(exc, "client host_status -s %s failed" % p["lockspace"])
        result.update(source="daemon", reason=None)
    else:
        if not p["path"]:
            module.fail_json(msg="path: required to read lockspace %s from disk (%s); set path and offset"
                             % (p["lockspace"], reason or "source: disk"), **result)
        hosts = from_disk(module, engine, p["lockspace"], p["path"], offset)
        result.update(source="disk", reason=reason or "source: disk")
    result["hosts"] = sorted(hosts, key=lambda h: h.get("host_id") or 0)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
