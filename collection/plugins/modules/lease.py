#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lease
short_description: Ask the owner of a resource lease to release it, or force-release a dead owner's lease
version_added: "0.1.0"
description:
  - O(state=released) asks the owner to give the lease up, through the daemon (C(lockengine client request)).
    The request record on disk names the next lease version and the owner is told through this host's
    lockspace renewals. The owner's daemon then stops the holder (V(graceful) runs its kill path or sends
    SIGTERM, V(force) sends SIGKILL) and the lease is released; this takes up to about two renewal intervals.
    This host must have joined the lease's lockspace.
  - O(state=force_released) clears the lease of an owner that is gone, on disk (C(lockengine direct release)
    as the owner). It refuses while the owner may be alive, that is unless this host's daemon sees the
    owner's host as C(dead) or C(free) or rejoined with a newer generation, and unless O(owner_fenced=true)
    states that the owner has been fenced (powered off, storage cut). Every force-release is logged on this
    host, to syslog and as one line in O(log_file); the engine writes that line (C(direct release --force
    --reason --audit-log)), in the same format as its own audit records, and does not release a lease it
    cannot record.
  - A lease that is not held is left alone (no change), so both states are idempotent.
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.attributes
options:
  lockspace:
    description:
      - Lockspace of the lease.
    type: str
    required: true
  name:
    description:
      - Resource name.
    type: str
    required: true
  path:
    description:
      - Block device or file that holds the lease, as this host sees it.
    type: path
    required: true
  offset:
    description:
      - Byte offset of the resource area (bytes or whole MiB with an C(M) suffix).
    type: str
    required: true
  state:
    description:
      - V(released) requests a release from a live owner.
      - V(force_released) clears a dead (or fenced) owner's lease.
    type: str
    required: true
    choices: [released, force_released]
  mode:
    description:
      - How the owner stops the holder, with O(state=released). V(graceful) runs the holder's kill path or
        sends SIGTERM; V(force) sends SIGKILL.
      - A pending request of the same or a stronger mode is not repeated.
    type: str
    choices: [graceful, force]
    default: graceful
  lver:
    description:
      - Act only if the lease is still at this version (as returned by M(lockengine.cluster.lease_info));
        protects against acting on a lease that changed hands since it was inspected.
    type: int
  owner_fenced:
    description:
      - With O(state=force_released), the operator's statement that the owner host has been fenced, so the
        lease may be cleared although this host cannot see the owner as dead. A fenced host must not be
        able to write to the storage any more; clearing the lease of a host that still runs lets two hosts
        hold it.
    type: bool
    default: false
  reason:
    description:
      - Free text recorded in the force-release log line (ticket, operator).
    type: str
  log_file:
    description:
      - File that receives one line per force-release on this host (the engine's audit log). Its directory is
        created (mode 0750).
    type: path
    default: /var/log/lockengine/force-release.log
  wait:
    description:
      - With O(state=released), wait until the owner has released the lease or another host has taken it.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait=true).
    type: int
    default: 120
seealso:
  - module: lockengine.cluster.lease_info
  - module: lockengine.cluster.host_status
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Ask the owner of R1 to release it and wait for it
  lockengine.cluster.lease:
    lockspace: LS
    name: R1
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 1M
    state: released
    mode: graceful
    wait: true

- name: Inspect R1
  lockengine.cluster.lease_info:
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 1M
  register: r1

- name: Clear R1 after its owner was powered off by the fencing agent
  lockengine.cluster.lease:
    lockspace: LS
    name: R1
    path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    offset: 1M
    state: force_released
    lver: "{{ r1.leases[0].lver }}"
    owner_fenced: true
    reason: "INC-1234: node2 powered off via IPMI"
"""

RETURN = r"""
lease:
  description: The lease before the run, as M(lockengine.cluster.lease_info) returns it.
  returned: always
  type: dict
  sample: {"lockspace": "LS", "resource": "R1", "owner_id": 2, "lver": 7, "held": true, "owner_state": "dead"}
request:
  description: The request written, with O(state=released).
  returned: when a request was written (or would be, in check mode)
  type: dict
  sample: {"lver": 8, "force_mode": "graceful", "owner_id": 2}
released:
  description:
    - With O(wait=true) or O(state=force_released), whether the lease is free (or taken by another host) at the end.
  returned: when known
  type: bool
waited:
  description: Seconds this run waited for the owner to let go, with O(wait=true).
  returned: when this run waited
  type: float
  sample: 12.0
progress:
  description: What the wait saw as it went, about every 5 s (also returned when O(wait_timeout) runs out).
  returned: when this run waited
  type: list
  elements: str
  sample: ["owner host_id 2 still holds LS:R1 at lver 7: 0 s of 120 s", "owner host_id 2 still holds LS:R1 at lver 7: 5 s of 120 s"]
log_line:
  description: The line appended to O(log_file) by a force-release.
  returned: when a force-release was done
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    AUDIT_LOG,
    MIB,
    check_name,
    check_path,
    common_argument_spec,
    parse_offset,
    resource_string,
    validated,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import (
    Engine,
    EngineError,
    area_at,
    lockspace_entry,
)
from ansible_collections.lockengine.cluster.plugins.module_utils.liveness import LivenessView, summarize_lease

MODE_CODES = {"force": 1, "graceful": 2}
# force (SIGKILL) is stronger than graceful: a pending force request already covers a graceful one.
STRENGTH = {"none": 0, "graceful": 1, "force": 2}
POLL_SECONDS = 1.0
PROGRESS_SECONDS = 5.0


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(
        lockspace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        path=dict(type="path", required=True),
        offset=dict(type="str", required=True),
        state=dict(type="str", required=True, choices=["released", "force_released"]),
        mode=dict(type="str", default="graceful", choices=["graceful", "force"]),
        lver=dict(type="int"),
        owner_fenced=dict(type="bool", default=False),
        reason=dict(type="str"),
        log_file=dict(type="path", default=AUDIT_LOG),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=120),
    )
    return spec


def read_lease(module, engine, p, offset, view):
    try:
        area = area_at(engine.dump(p["path"], offset, size=MIB, dblocks=True), offset)
    except EngineError as exc:
        engine.fail(exc, "cannot read the lease at %s:%d" % (p["path"], offset))
    if not area or area.get("kind") != "resource" or area.get("lockspace") != p["lockspace"] \
            or area.get("resource") != p["name"]:
        module.fail_json(
            msg="%s:%d does not hold resource %s:%s (found %s); check lockspace, name, path and offset"
            % (p["path"], offset, p["lockspace"], p["name"],
               "nothing" if not area else "%s %s:%s" % (area.get("kind"), area.get("lockspace"),
                                                        area.get("resource", ""))),
        )
    return summarize_lease(area, p["path"], view)


def gone_or_moved(lease, before):
    """The owner let go: free, or a newer version (someone else acquired after the release)."""
    return not lease["held"] or lease["lver"] > before["lver"] or lease["owner_id"] != before["owner_id"]


def request_release(module, engine, p, offset, view, lease):
    result = dict(changed=False, lease=lease)
    pending = lease["request"]
    if pending["pending"] and STRENGTH[pending["force_mode"]] >= STRENGTH[p["mode"]]:
        result["request"] = dict(lver=pending["lver"], force_mode=pending["force_mode"], owner_id=lease["owner_id"])
        result["msg"] = "a %s request for lver %d is already pending" % (pending["force_mode"], pending["lver"])
    else:
        entry = lockspace_entry(view.status, p["lockspace"])
        if not view.daemon_running or entry is None or entry.get("state") != "JOINED":
            module.fail_json(
                msg="requesting a release needs this host joined to lockspace %s (the owner is told through "
                "this host's renewals): %s. Join it first (module lockengine.cluster.lockspace, state: joined)"
                % (p["lockspace"], view.reason or "it is not joined"),
            )
        want = lease["lver"] + 1
        result["changed"] = True
        result["request"] = dict(lver=want, force_mode=p["mode"], owner_id=lease["owner_id"])
        result["diff"] = dict(before=dict(request=pending), after=dict(request=dict(lver=want, force_mode=p["mode"],
                                                                                    pending=True)))
        if module.check_mode:
            return result
        target = resource_string(p["lockspace"], p["name"], p["path"], offset, want)
        try:
            reply = engine.run("client", "request", "-r", target, "-f", p["mode"])
        except EngineError as exc:
            engine.fail(exc, "requesting release of %s:%s failed" % (p["lockspace"], p["name"]))
        if reply.get("free"):
            # Released between our read and the request: the engine wrote nothing.
            result.update(changed=False, released=True, msg="the lease became free; no request was written")
            result.pop("diff", None)
            return result
        result["request"].update(lver=reply.get("lver", want), owner_id=reply.get("owner_id", lease["owner_id"]))
    if p["wait"] and not module.check_mode:
        start = time.monotonic()
        deadline = start + p["wait_timeout"]
        result["progress"], said_at = [], None
        while True:
            now = read_lease(module, engine, p, offset, view)
            elapsed = time.monotonic() - start
            result["waited"] = round(elapsed, 1)
            if gone_or_moved(now, lease):
                result["released"] = True
                break
            if said_at is None or elapsed - said_at >= PROGRESS_SECONDS:
                said_at = elapsed
                result["progress"].append("owner host_id %s still holds %s:%s at lver %s: %d s of %d s" % (
                    now["owner_id"], p["lockspace"], p["name"], now["lver"], elapsed, p["wait_timeout"]))
            if time.monotonic() >= deadline:
                module.fail_json(
                    msg="owner host_id %s did not release %s:%s within wait_timeout %d s; a release takes up to "
                    "two renewal intervals (4 x io_timeout); raise wait_timeout, or use mode: force"
                    % (lease["owner_id"], p["lockspace"], p["name"], p["wait_timeout"]),
                    **result)
            time.sleep(POLL_SECONDS)
    return result


def owner_gone(lease):
    """Whether this host's daemon shows the owner's holding instance as gone."""
    return lease["owner_state"] in ("dead", "free") or lease["owner_generation_current"] is False


def force_reason(p, lease):
    """The reason the engine records: the operator's text, else what this module checked."""
    if p["reason"]:
        return p["reason"]
    if p["owner_fenced"]:
        return "lockengine.cluster.lease: owner stated fenced (owner_fenced: true)"
    return "lockengine.cluster.lease: owner is %s as this host's lockengined sees it" % lease["owner_state"]


def force_release(module, engine, p, offset, lease):
    result = dict(changed=False, lease=lease)
    if not lease["held"]:
        result.update(released=True, msg="the lease is not held")
        return result
    if not owner_gone(lease) and not p["owner_fenced"]:
        why = lease["liveness_reason"] or "this host sees it as %s" % lease["owner_state"]
        module.fail_json(
            msg="refusing to force-release %s:%s: its owner host_id %s (%s) may be alive (%s). Only a dead "
            "owner's lease may be cleared. Wait until it is dead (host_status shows dead), or fence the owner "
            "(power it off, cut its storage) and set owner_fenced: true"
            % (p["lockspace"], p["name"], lease["owner_id"], lease.get("owner_name") or "name unknown", why),
            lease=lease,
        )
    result["changed"] = True
    result["diff"] = dict(before=dict(held=True, owner_id=lease["owner_id"], lver=lease["lver"]),
                          after=dict(held=False, owner_id=lease["owner_id"], lver=lease["lver"]))
    if module.check_mode:
        return result
    # The engine releases as the owner and records it in its audit log (log_file); a release it could
    # not record is not done. What this module checked goes into the record as context.
    target = resource_string(p["lockspace"], p["name"], p["path"], offset)
    context = dict(owner_name=lease.get("owner_name") or "-", owner_state=lease["owner_state"],
                   owner_fenced=str(p["owner_fenced"]).lower(), via="lockengine.cluster.lease")
    args = ["direct", "release", "-r", target, "-i", lease["owner_id"], "-g", lease["owner_generation"],
            "--force", "--reason", force_reason(p, lease), "--audit-log", p["log_file"]]
    for key in sorted(context):
        args += ["--context", "%s=%s" % (key, context[key])]
    try:
        reply = engine.run(*args)
    except EngineError as exc:
        engine.fail(exc, "force-release of %s:%s failed" % (p["lockspace"], p["name"]))
    line = reply.get("audit", "")
    module.log("lockengine force-release: %s" % line)
    result["log_line"] = line
    result["released"] = True
    return result


def main():
    module = AnsibleModule(argument_spec=build_argument_spec(), supports_check_mode=True)
    p = module.params
    validated(module, [(check_name, p["lockspace"], "lockspace"), (check_name, p["name"], "name"),
                       (check_path, p["path"]), (check_path, p["log_file"], "log_file")])
    if p["state"] == "released" and p["owner_fenced"]:
        module.fail_json(msg="owner_fenced: only applies to state: force_released; remove it or change state")
    try:
        offset = parse_offset(p["offset"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    engine = Engine(module)
    view = LivenessView(engine)
    lease = read_lease(module, engine, p, offset, view)
    if p["lver"] is not None and lease["lver"] != p["lver"]:
        module.fail_json(
            msg="%s:%s is at lver %d, not %d: the lease changed hands since it was inspected; inspect it again "
            "(lease_info) and update lver" % (p["lockspace"], p["name"], lease["lver"], p["lver"]),
            lease=lease,
        )
    if p["state"] == "released":
        if not lease["held"]:
            module.exit_json(changed=False, lease=lease, released=True, msg="the lease is not held")
        result = request_release(module, engine, p, offset, view, lease)
    else:
        result = force_release(module, engine, p, offset, lease)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
