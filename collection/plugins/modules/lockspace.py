#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lockspace
short_description: Initialise a lockspace area, or join or leave a lockspace on this host
version_added: "0.1.0"
description:
  - Initialises the lockspace (delta lease, sanlock "ids") area of a shared disk with
    C(lockengine direct init -s), joins it on this host with C(lockengine client add_lockspace) or leaves it
    with C(lockengine client rem_lockspace).
  - O(state=initialized) writes the area only when it does not already hold this lockspace with the
    requested geometry. An area that holds anything else (another lockspace, a resource) is never
    overwritten without O(force=true); the engine itself refuses to overwrite a live-looking area without it.
  - O(state=joined) and O(state=left) talk to the daemon C(lockengined) on this host.
  - Joining takes at least 2 x O(io_timeout) (20 s by default) and up to 8 x O(io_timeout) + 80 s when the
    slot was last held by another host name that did not release it. Give the task a C(timeout) that covers it.
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.geometry
  - lockengine.cluster.common.io_timeout
  - lockengine.cluster.common.area
  - lockengine.cluster.common.attributes
options:
  name:
    description:
      - Lockspace name, at most 48 bytes, without C(:).
    type: str
    required: true
  state:
    description:
      - V(initialized) writes the lockspace area once (run it on one host, C(run_once)).
      - V(joined) makes this host a member with O(host_id) (acquires its delta lease).
      - V(left) removes this host from the lockspace. The daemon kills processes still holding leases in it,
        so the module refuses while leases are held unless O(force=true).
    type: str
    choices: [initialized, joined, left]
    default: joined
  path:
    description:
      - Block device or file that holds the lockspace area, as this host sees it.
      - Required for O(state=initialized) and O(state=joined). For O(state=left) it is taken from the daemon
        when unset, and must match the daemon's when set.
    type: path
    required: false
  host_id:
    description:
      - This host's id in the lockspace, 1 to the geometry's maximum (2000 for 512/1M).
      - Required for O(state=joined). For O(state=left) it is taken from the daemon when unset.
      - Every host must have a different one; the role R(lockengine.cluster.lockspace,ansible_collections.lockengine.cluster.lockspace_role) assigns them.
    type: int
  force:
    description:
      - With O(state=initialized), overwrite an area that holds another lockspace or a resource, or this
        lockspace with another geometry. The engine then also overwrites a live area. All leases in it are lost.
      - With O(state=left), leave although processes hold leases in the lockspace (the daemon kills them).
    type: bool
    default: false
  wait:
    description:
      - With O(state=joined), wait until the join has completed.
      - When V(false) the join is started (C(add_lockspace --async)) and the module returns with
        RV(daemon_state=ADD).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait, with O(wait=true), for a join that an earlier run started and is still in progress.
    type: int
    default: 300
seealso:
  - module: lockengine.cluster.host_status
  - module: lockengine.cluster.resource
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Initialise the lockspace area once, at the start of the shared disk
  lockengine.cluster.lockspace:
    name: LS
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 0
    io_timeout: 10
    state: initialized
  run_once: true

- name: Initialise a 4K-sector lockspace for up to 500 hosts
  lockengine.cluster.lockspace:
    name: BIG
    path: /dev/mapper/leases
    offset: 8M
    sector_size: 4096
    align_size: 2M
    state: initialized
  run_once: true

- name: Join it on every host
  lockengine.cluster.lockspace:
    name: LS
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    host_id: "{{ lockengine_host_id }}"
    state: joined
  timeout: 300

- name: Leave it
  lockengine.cluster.lockspace:
    name: LS
    state: left
"""

RETURN = r"""
name:
  description: The lockspace name.
  returned: always
  type: str
  sample: LS
state:
  description: The state the module brought the lockspace to.
  returned: always
  type: str
  sample: joined
host_id:
  description: This host's id in the lockspace.
  returned: when O(state) is V(joined) or V(left)
  type: int
  sample: 3
generation:
  description:
    - Generation of this host's delta lease; it grows by one on every join.
    - Null in check mode before the first join.
  returned: when O(state=joined)
  type: int
  sample: 2
daemon_state:
  description:
    - The daemon's state for the lockspace on this host, C(ADD), C(JOINED), C(REM) or C(FAILED); null when
      not a member.
  returned: when O(state) is V(joined) or V(left)
  type: str
  sample: JOINED
waited:
  description: Seconds this run waited for the join (the daemon's delta lease acquire, 2 x io_timeout on a free slot).
  returned: when this run waited for a join
  type: float
  sample: 20.3
progress:
  description:
    - What the join waited for, as it went (about every 5 s, and whenever the daemon's progress changed).
  returned: when this run waited for a join
  type: list
  elements: str
  sample: ["add_lockspace LS: waiting for host id 3: 2 s of 20 s", "add_lockspace LS: waiting for host id 3: 7 s of 20 s"]
geometry:
  description: Geometry of the lockspace area as read from disk (requested values in check mode).
  returned: when O(state) is V(initialized) or V(joined)
  type: dict
  contains:
    sector_size:
      description: Sector size in bytes.
      type: int
      sample: 512
    align_size:
      description: Area size in bytes.
      type: int
      sample: 1048576
    max_hosts:
      description: Number of host ids the area holds.
      type: int
      sample: 2000
  sample: {"sector_size": 512, "align_size": 1048576, "max_hosts": 2000}
found:
  description: What the area held before an O(state=initialized) run (C(kind) is C(empty) when nothing valid).
  returned: when O(state=initialized)
  type: dict
  sample: {"kind": "lockspace", "lockspace": "LS", "sector_size": 512, "align_size": 1048576}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    MAX_HOSTS,
    MIB,
    align_bytes,
    area_argument_spec,
    check_geometry,
    check_host_id,
    check_io_timeout,
    check_name,
    check_path,
    common_argument_spec,
    geometry_argument_spec,
    io_timeout_argument_spec,
    lockspace_string,
    parse_offset,
    validated,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import (
    Engine,
    EngineError,
    area_at,
    geometry_of,
    init_area,
    lockspace_entry,
)

POLL_SECONDS = 1.0
PROGRESS_SECONDS = 5.0


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(geometry_argument_spec())
    spec.update(io_timeout_argument_spec())
    spec.update(area_argument_spec())
    spec["path"]["required"] = False
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="joined", choices=["initialized", "joined", "left"]),
        host_id=dict(type="int"),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
    )
    return spec


def describe(area):
    """What an area holds, in the words an operator reads in an error message."""
    if not area or area.get("kind") not in ("lockspace", "resource") or area.get("cleared"):
        return {"kind": "empty"}
    if area.get("valid") is False and "hosts" not in area:
        # A record that fails validation is never taken as free (the engine refuses it too).
        return {"kind": "invalid", "error": area.get("error")}
    out = {"kind": area["kind"], "lockspace": area.get("lockspace")}
    if area["kind"] == "resource":
        out["resource"] = area.get("resource")
    out.update(geometry_of(area))
    return out


def same_path(a, b):
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def requested_geometry(p):
    align = align_bytes(p["align_size"])
    out = {"sector_size": p["sector_size"], "align_size": align}
    if p["sector_size"] and align:
        out["max_hosts"] = MAX_HOSTS[(p["sector_size"], align)]
    return out


def initialize(module, engine, p, offset):
    align = align_bytes(p["align_size"])
    try:
        dump = engine.dump(p["path"], offset, size=align or MIB)
    except EngineError as exc:
        engine.fail(exc, "cannot read the area at %s:%d" % (p["path"], offset))
    found = describe(area_at(dump, offset))
    wanted = requested_geometry(p)
    result = dict(changed=False, name=p["name"], state="initialized", found=found)
    matches = (
        found["kind"] == "lockspace"
        and found["lockspace"] == p["name"]
        and wanted["sector_size"] in (None, found.get("sector_size"))
        and wanted["align_size"] in (None, found.get("align_size"))
    )
    if matches:
        result["geometry"] = geometry_of(area_at(dump, offset))
        return result
    if found["kind"] != "empty" and not p["force"]:
        module.fail_json(
            msg="%s:%d already holds %s; refusing to overwrite it (all its leases would be lost). Check path "
            "and offset, or set force: true to re-initialise it as lockspace %s"
            % (p["path"], offset, _words(found), p["name"]),
            found=found,
        )
    result["changed"] = True
    result["diff"] = dict(
        before=found, after=dict(kind="lockspace", lockspace=p["name"], **{k: v for k, v in wanted.items() if v})
    )
    if module.check_mode:
        result["geometry"] = wanted
        return result
    result["geometry"] = init_area(
        engine, ["direct", "init", "-s", lockspace_string(p["name"], 0, p["path"], offset)], p,
        (("-o", "io_timeout"), ("-Z", "sector_size"), ("-A", "align_size")), offset, align,
        "initialising lockspace %s at %s:%d failed" % (p["name"], p["path"], offset),
    )
    return result


def _words(found):
    if found["kind"] == "invalid":
        return "a lease record that fails validation (%s)" % (found.get("error") or {}).get("name")
    if found["kind"] == "resource":
        return "resource %s:%s" % (found.get("lockspace"), found.get("resource"))
    return "lockspace %s (sector_size %s, align_size %s)" % (
        found.get("lockspace"), found.get("sector_size"), found.get("align_size"))


def member(entry):
    if not entry:
        return dict(joined=False)
    return dict(joined=entry.get("state") == "JOINED", host_id=entry.get("host_id"), path=entry.get("path"),
                offset=entry.get("offset"), daemon_state=entry.get("state"))


def wait_joined(module, engine, name, timeout, result):
    """Poll until a join another run started ends; its progress goes into ``result`` (waited, progress)."""
    start = time.monotonic()
    deadline = start + timeout
    said, said_at = None, None
    result["progress"] = []
    while True:
        entry = lockspace_entry(engine.require_daemon("waiting for lockspace %s" % name), name)
        now = time.monotonic()
        result["waited"] = round(now - start, 1)
        if entry is None or entry.get("state") != "ADD":
            return entry
        message = entry.get("progress") or "joining"
        if message != said or now - said_at >= PROGRESS_SECONDS:
            said, said_at = message, now
            result["progress"].append("add_lockspace %s: %s (%d s of wait_timeout %d s)"
                                      % (name, message, now - start, timeout))
        if now >= deadline:
            module.fail_json(
                msg="lockspace %s is still joining (ADD) after wait_timeout %d s; raise wait_timeout or "
                "check the daemon's log (lockengine client log_dump)" % (name, timeout), **result
            )
        time.sleep(POLL_SECONDS)


def join(module, engine, p, offset):
    name = p["name"]
    try:
        area = area_at(engine.dump(p["path"], offset, size=align_bytes(p["align_size"]) or MIB), offset)
    except EngineError as exc:
        engine.fail(exc, "cannot read the lockspace area at %s:%d" % (p["path"], offset))
    found = describe(area)
    if found["kind"] == "empty" and module.check_mode:
        # A check run of a play cannot have initialised the area in an earlier task; predict the join.
        module.warn("%s:%d holds no lockspace yet; the join is predicted, it needs state: initialized first"
                    % (p["path"], offset))
        return dict(changed=True, name=name, state="joined", host_id=p["host_id"], generation=None,
                    daemon_state=None, geometry=requested_geometry(p),
                    diff=dict(before=member(None), after=dict(joined=True, host_id=p["host_id"])))
    if found["kind"] != "lockspace" or found["lockspace"] != name:
        module.fail_json(
            msg="%s:%d does not hold lockspace %s (found %s): initialise it first with state: initialized, "
            "or fix path/offset" % (p["path"], offset, name, found["kind"] if found["kind"] == "empty" else _words(found)),
            found=found,
        )
    geometry = geometry_of(area)
    validated(module, [(check_host_id, p["host_id"], "host_id",
                        (geometry.get("sector_size"), geometry.get("align_size")))])
    status = engine.require_daemon("joining lockspace %s" % name)
    entry = lockspace_entry(status, name)
    result = dict(changed=False, name=name, state="joined", host_id=p["host_id"], geometry=geometry)
    if entry:
        if entry.get("host_id") != p["host_id"] or not same_path(entry.get("path", ""), p["path"]) \
                or entry.get("offset") != offset:
            module.fail_json(
                msg="lockspace %s is already joined on this host as host_id %s on %s:%s; leave it first "
                "(state: left) to join as host_id %d on %s:%d"
                % (name, entry.get("host_id"), entry.get("path"), entry.get("offset"), p["host_id"], p["path"], offset)
            )
        if entry.get("state") == "ADD" and p["wait"]:
            entry = wait_joined(module, engine, name, p["wait_timeout"], result)
        state = (entry or {}).get("state")
        if state in ("REM", "FAILED") or entry is None:
            module.fail_json(
                msg="lockspace %s is %s on this host (its lease renewal failed or it is being removed); run "
                "again once the daemon has removed it" % (name, state or "gone")
            )
        if p["io_timeout"] and entry.get("io_timeout") not in (None, p["io_timeout"]):
            module.warn("lockspace %s was joined with io_timeout %s, not %d; leave and join again to change it"
                        % (name, entry.get("io_timeout"), p["io_timeout"]))
        result.update(generation=entry.get("generation"), daemon_state=state)
        return result
    result["changed"] = True
    result["diff"] = dict(before=member(None), after=dict(joined=True, host_id=p["host_id"], path=p["path"],
                                                          offset=offset))
    if module.check_mode:
        result.update(generation=None, daemon_state=None)
        return result
    args = ["client", "add_lockspace", "-s", lockspace_string(name, p["host_id"], p["path"], offset)]
    if p["io_timeout"]:
        args += ["-o", p["io_timeout"]]
    if not p["wait"]:
        args.append("--async")
    try:
        reply = engine.run(*args)
    except EngineError as exc:
        hint = {
            "HOSTID_BUSY": "another live host holds host_id %d: give every host its own id" % p["host_id"],
            "EEXIST": "the daemon already has this lockspace",
            "EINPROGRESS": "a join is already in progress; run again",
            "EAGAIN": "the lockspace is being removed or recovering on this host; run again later",
            "EINVAL": "the daemon has a lockspace of this name with another host id, path or offset",
        }.get(exc.name, "see the daemon's log (lockengine client log_dump)")
        engine.fail(exc, "joining lockspace %s as host_id %d failed (%s)" % (name, p["host_id"], hint))
    result.update(generation=reply.get("generation"), daemon_state=reply.get("state", "JOINED" if p["wait"] else "ADD"))
    if "waited" in reply:  # the engine reports how the join went (lockengine client add_lockspace)
        result.update(waited=reply["waited"], progress=reply.get("progress") or [])
    return result


def leave(module, engine, p):
    name = p["name"]
    status, reason = engine.daemon_status()
    entry = lockspace_entry(status, name)
    result = dict(changed=False, name=name, state="left", host_id=(entry or {}).get("host_id", p["host_id"]),
                  daemon_state=(entry or {}).get("state"))
    if entry is None:
        if reason:
            result["msg"] = reason
        return result
    if p["host_id"] is not None and entry.get("host_id") != p["host_id"]:
        module.fail_json(msg="lockspace %s is joined as host_id %s, not %d; fix host_id or leave it unset"
                         % (name, entry.get("host_id"), p["host_id"]))
    if p["path"] and not same_path(entry.get("path", ""), p["path"]):
        module.fail_json(msg="lockspace %s is joined on %s, not %s; fix path or leave it unset"
                         % (name, entry.get("path"), p["path"]))
    if entry.get("state") == "REM":
        return result
    held = [r for r in status.get("resources") or [] if r.get("lockspace") == name]
    if held and not p["force"]:
        module.fail_json(
            msg="%d lease(s) in lockspace %s are held on this host (pids %s); leaving kills their holders. "
            "Stop them first, or set force: true" % (len(held), name, sorted({r.get("pid") for r in held})),
            held=held,
        )
    result["changed"] = True
    result["diff"] = dict(before=member(entry), after=member(None))
    if module.check_mode:
        return result
    args = ["client", "rem_lockspace", "-s", lockspace_string(name, entry["host_id"], entry["path"], entry["offset"])]
    if not p["force"]:
        # The daemon re-checks for holders at the moment of removal (EBUSY), closing the race with our check.
        args.append("--unused")
    try:
        reply = engine.run(*args)
    except EngineError as exc:
        if exc.name == "EBUSY":
            engine.fail(exc, "leases in lockspace %s are held on this host; leaving kills their holders. Stop them "
                        "first, or set force: true" % name)
        engine.fail(exc, "leaving lockspace %s failed" % name)
    result["daemon_state"] = reply.get("state")
    return result


def main():
    module = AnsibleModule(
        argument_spec=build_argument_spec(),
        supports_check_mode=True,
        required_if=[("state", "initialized", ["path"]), ("state", "joined", ["path", "host_id"])],
    )
    p = module.params
    checks = [(check_name, p["name"], "name"), (check_geometry, p["sector_size"], p["align_size"]),
              (check_io_timeout, p["io_timeout"]), (check_host_id, p["host_id"])]
    if p["path"]:
        checks.append((check_path, p["path"]))
    validated(module, checks)
    try:
        offset = parse_offset(p["offset"], "offset", align_bytes(p["align_size"]))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    engine = Engine(module)
    if p["state"] == "initialized":
        result = initialize(module, engine, p, offset)
    elif p["state"] == "joined":
        result = join(module, engine, p, offset)
    else:
        result = leave(module, engine, p)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
