#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: watchdog_info
short_description: List watchdog devices and the one the lockengine daemon uses
version_added: "0.1.0"
description:
  - Lists the watchdog devices of this host from C(/sys/class/watchdog) and the C(/dev/watchdog*) nodes,
    with the driver's identity, its timeout and state.
  - Never opens a C(/dev/watchdog*) node, since opening one arms it, and closing it without the magic character
    resets the host when the driver has C(nowayout). Only C(stat) and sysfs are used.
  - Asks the daemon (C(lockengine client status)) which device it uses and in what state. When the daemon or
    the engine is absent this is reported in RV(daemon), not a failure; unlike the other modules, a
    O(lockengine_bin) that does not exist is reported the same way, so the module can run before the engine
    is installed.
  - A node without a sysfs entry (for example the FIFO that plays the watchdog on the project's test hosts)
    is listed with RV(devices[].kind=fifo) and no timeout.
  - The role lockengine.cluster.watchdog uses it to choose and check each host's device.
extends_documentation_fragment:
  - lockengine.cluster.common
  - lockengine.cluster.common.info_attributes
options:
  device:
    description:
      - Only this device node (for example V(/dev/watchdog1)). It is listed even when it has no sysfs entry
        or does not exist (RV(devices[].kind=missing)).
    type: path
  fire_timeout:
    description:
      - The daemon's fire timeout in seconds. When given, each device gets RV(devices[].fire_timeout_ok) and
        RV(devices[].fire_timeout_reason) - whether it would reset the host this long after the last pet once
        lockengined opened it (its timeout is already this, or the driver lets the daemon set it within its
        minimum and maximum).
    type: int
author:
  - lockengine developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Watchdog devices of this host
  lockengine.cluster.watchdog_info:
  register: wd

- name: Show the first one's driver and timeout
  ansible.builtin.debug:
    msg: "{{ wd.devices[0].path }}: {{ wd.devices[0].identity }}, {{ wd.devices[0].timeout }} s"
  when: wd.devices | length > 0

- name: Which device the daemon pets
  ansible.builtin.debug:
    msg: "{{ wd.daemon.device if wd.daemon.running else wd.daemon.reason }}"
"""

RETURN = r"""
devices:
  description: Watchdog devices, C(/dev/watchdog0), C(/dev/watchdog1) and so on, then the legacy C(/dev/watchdog).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Device node path.
      type: str
      sample: /dev/watchdog0
    name:
      description: Kernel name (C(watchdog0)).
      type: str
    kind:
      description: C(char) (a device node), C(fifo), C(missing) or C(other).
      type: str
      sample: char
    dev:
      description: Major:minor of the node, or from sysfs.
      type: str
      sample: "247:0"
    sysfs:
      description: Whether the kernel lists the device in C(/sys/class/watchdog).
      type: bool
    identity:
      description: The driver's identity string (C(Software Watchdog) for softdog).
      type: str
    driver:
      description: Kernel driver name, when sysfs links it.
      type: str
    timeout:
      description: Current timeout in seconds; null when unknown.
      type: int
      sample: 60
    min_timeout:
      description: Smallest timeout the driver accepts, when the kernel says.
      type: int
    max_timeout:
      description: Largest timeout the driver accepts, when the kernel says.
      type: int
    pretimeout:
      description: Pretimeout in seconds, when supported.
      type: int
    timeleft:
      description: Seconds until it fires, when the driver reports it.
      type: int
    state:
      description: C(active) once opened (armed), C(inactive) otherwise, per sysfs.
      type: str
    nowayout:
      description: Whether the driver can never be disarmed once armed.
      type: bool
    bootstatus:
      description: The driver's boot status bits (decimal in sysfs; non-zero after a watchdog reset on some drivers).
      type: int
    last_boot_watchdog_reset:
      description:
        - Whether the driver says the last boot was its reset (bit C(WDIOF_CARDRESET) of RV(devices[].bootstatus));
          null when the driver reports no boot status.
      type: bool
    options:
      description: The driver's C(WDIOF_*) option bits (C(options) in sysfs), null when the kernel does not list them.
      type: int
      sample: 33152
    timeout_settable:
      description: Whether the driver lets a program set its timeout (C(WDIOF_SETTIMEOUT) in RV(devices[].options)).
      type: bool
    fire_timeout_ok:
      description:
        - With O(fire_timeout) - whether the device resets the host O(fire_timeout) seconds after the last pet once
          lockengined has opened it; null without O(fire_timeout) and for a FIFO.
      type: bool
    fire_timeout_reason:
      description: Why RV(devices[].fire_timeout_ok) is what it is.
      type: str
    open_by:
      description:
        - Processes that hold the device open (from C(/proc/PID/fd), without opening it). Only one process may open
          a watchdog; the kernel refuses the next with EBUSY.
      type: list
      elements: dict
      sample: [{"pid": 812, "comm": "wdmd"}]
    in_use_by_other:
      description: Whether a process other than the lockengine daemon holds it open (the daemon could not open it).
      type: bool
    in_use_by_daemon:
      description: Whether the lockengine daemon says it uses this device.
      type: bool
default_device:
  description: The first existing C(/dev/watchdogN) node, the one chosen when no device is configured; null if none.
  returned: always
  type: str
  sample: /dev/watchdog0
softdog_loaded:
  description: Whether the softdog module is loaded; null when C(/proc/modules) cannot be read.
  returned: always
  type: bool
daemon:
  description: The lockengine daemon's view.
  returned: always
  type: dict
  contains:
    running:
      description: Whether the daemon answered.
      type: bool
    reason:
      description: Why not, when it did not.
      type: str
    device:
      description: The device it uses, or null.
      type: str
    pid:
      description: The daemon's process id, or null.
      type: int
    fire_timeout:
      description: Seconds from the last pet to the reset, as the daemon configures it.
      type: int
    watchdog:
      description: The daemon's own watchdog record (C(client status) C(daemon.watchdog)), unchanged.
      type: dict
  sample: {"running": false, "reason": "lockengined is not running: no socket at /run/lockengine/lockengined.sock"}
"""

import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockengine.cluster.plugins.module_utils.common import common_argument_spec
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import Engine

SYSFS_ROOT = "/sys/class/watchdog"
DEV_ROOT = "/dev"
_NODE_RE = re.compile(r"^watchdog(\d+)$")
_INT_ATTRS = ("timeout", "min_timeout", "max_timeout", "pretimeout", "timeleft")
WDIOF_CARDRESET = 0x0020
WDIOF_SETTIMEOUT = 0x0080
LEGACY_DEV = (10, 130)  # /dev/watchdog, an alias of watchdog0


def build_argument_spec():
    spec = common_argument_spec()
    spec.update(device=dict(type="path"), fire_timeout=dict(type="int"))
    return spec


def _read(path):
    """A sysfs attribute, or None when absent or unsupported by the driver (EOPNOTSUPP, EINVAL...)."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _int(text, base=10):
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def node_info(path):
    """Kind and major:minor of a node, from lstat only (never open: it would arm the watchdog)."""
    try:
        st = os.stat(path)
    except OSError:
        return {"kind": "missing", "dev": None}
    if stat.S_ISCHR(st.st_mode):
        return {"kind": "char", "dev": "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))}
    if stat.S_ISFIFO(st.st_mode):
        return {"kind": "fifo", "dev": None}
    return {"kind": "other", "dev": None}


def sysfs_info(sysfs_root, name):
    base = os.path.join(sysfs_root, name)
    if not os.path.isdir(base):
        return {"sysfs": False}
    out = {"sysfs": True, "identity": _read(os.path.join(base, "identity")),
           "state": _read(os.path.join(base, "state")), "dev": _read(os.path.join(base, "dev"))}
    for attr in _INT_ATTRS:
        out[attr] = _int(_read(os.path.join(base, attr)))
    nowayout = _read(os.path.join(base, "nowayout"))
    out["nowayout"] = None if nowayout is None else nowayout == "1"
    # The kernel prints bootstatus in decimal, options in hex with 0x (drivers/watchdog/watchdog_dev.c).
    out["bootstatus"] = _int(_read(os.path.join(base, "bootstatus")), 10)
    out["options"] = _int(_read(os.path.join(base, "options")), 16)
    driver = os.path.join(base, "device", "driver")
    out["driver"] = os.path.basename(os.path.realpath(driver)) if os.path.islink(driver) else None
    return out


def _order(name):
    match = _NODE_RE.match(name)
    return (0, int(match.group(1))) if match else (1, 0)


def list_devices(sysfs_root=SYSFS_ROOT, dev_root=DEV_ROOT, only=None):
    """Devices from sysfs and /dev, watchdog0..N first, the legacy /dev/watchdog last."""
    names = set()
    if only:
        names.add(os.path.basename(only))
    else:
        if os.path.isdir(sysfs_root):
            names.update(n for n in os.listdir(sysfs_root) if _NODE_RE.match(n))
        if os.path.isdir(dev_root):
            names.update(n for n in os.listdir(dev_root) if _NODE_RE.match(n) or n == "watchdog")
    devices = []
    for name in sorted(names, key=_order):
        path = only if only else os.path.join(dev_root, name)
        info = {"path": path, "name": name, "identity": None, "driver": None, "state": None, "nowayout": None,
                "bootstatus": None, "options": None}
        info.update({attr: None for attr in _INT_ATTRS})
        info.update(sysfs_info(sysfs_root, name) if _NODE_RE.match(name) else {"sysfs": False})
        node = node_info(path)
        info["kind"] = node["kind"]
        info["dev"] = node["dev"] or info.get("dev")
        info["last_boot_watchdog_reset"] = None if info["bootstatus"] is None else \
            bool(info["bootstatus"] & WDIOF_CARDRESET)
        info["timeout_settable"] = None if info["options"] is None else bool(info["options"] & WDIOF_SETTIMEOUT)
        devices.append(info)
    return devices


def fire_timeout_check(info, fire_timeout):
    """(ok, reason): does the device reset the host fire_timeout s after the last pet once the daemon has it?"""
    if info["kind"] != "char":
        return None, "not a watchdog character device (%s)" % info["kind"]
    timeout = info.get("timeout")
    if timeout == fire_timeout:
        return True, "its timeout is %d s" % timeout
    shown = "unknown" if timeout is None else "%d" % timeout
    if info.get("options") is None:
        return False, "its timeout is %s s and the kernel does not say whether it can be set" % shown
    if not info["timeout_settable"]:
        return False, "its timeout is %s s and the driver cannot change it (no WDIOF_SETTIMEOUT)" % shown
    low, high = info.get("min_timeout"), info.get("max_timeout")
    if low and fire_timeout < low:
        return False, "the driver's smallest timeout is %d s" % low
    if high and fire_timeout > high:
        return False, "the driver's largest timeout is %d s" % high
    return True, "lockengined sets its timeout (now %s s) with WDIOC_SETTIMEOUT" % shown


def _numbers(info, devices):
    """(major, minor) pairs that reach the same watchdog: its own, and /dev/watchdog <-> watchdog0."""
    out = set()
    for text in [info.get("dev")] + ([d.get("dev") for d in devices if d["name"] in ("watchdog0", "watchdog")]
                                     if info["name"] in ("watchdog0", "watchdog") else []):
        if text and re.match(r"^\d+:\d+$", text):
            out.add(tuple(int(x) for x in text.split(":")))
    if info["name"] == "watchdog0" or LEGACY_DEV in out:
        out.add(LEGACY_DEV)
    return out


def holders(numbers, proc_root="/proc"):
    """Processes with one of these character devices open: stat of /proc/PID/fd/N never opens it."""
    found = []
    if not numbers:
        return found
    try:
        pids = sorted((p for p in os.listdir(proc_root) if p.isdigit()), key=int)
    except OSError:
        return found
    for pid in pids:
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) in numbers:
                found.append({"pid": int(pid), "comm": _read(os.path.join(proc_root, pid, "comm")) or "?"})
                break
    return found


def softdog_loaded(proc_modules="/proc/modules"):
    text = _read(proc_modules)
    if text is None:
        return None
    return any(line.split(" ", 1)[0] == "softdog" for line in text.splitlines())


def daemon_view(module):
    given = module.params.get("lockengine_bin")
    if given and not (os.path.isfile(given) and os.access(given, os.X_OK)):
        # Unlike the other modules: this one runs before the engine is installed (role watchdog).
        return {"running": False, "reason": "lockengine_bin %s is not installed" % given,
                "device": None, "pid": None, "fire_timeout": None, "watchdog": None}
    engine = Engine(module, required=False)
    if engine.bin is None:
        return {"running": False, "reason": "the lockengine executable is not installed on this host",
                "device": None, "pid": None, "fire_timeout": None, "watchdog": None}
    status, reason = engine.daemon_status()
    if status is None:
        return {"running": False, "reason": reason, "device": None, "pid": None, "fire_timeout": None, "watchdog": None}
    daemon = status.get("daemon") or {}
    watchdog = daemon.get("watchdog") or {}
    device = watchdog.get("device") or watchdog.get("path")
    return {"running": True, "reason": None, "device": device, "pid": daemon.get("pid"),
            "fire_timeout": daemon.get("fire_timeout", watchdog.get("fire_timeout")), "watchdog": watchdog}


def main():
    module = AnsibleModule(argument_spec=build_argument_spec(), supports_check_mode=True)
    devices = list_devices(only=module.params["device"])
    daemon = daemon_view(module)
    fire_timeout = module.params["fire_timeout"]
    for device in devices:
        device["in_use_by_daemon"] = bool(daemon["device"]) and os.path.realpath(device["path"]) == \
            os.path.realpath(daemon["device"])
        device["open_by"] = holders(_numbers(device, devices)) if device["kind"] == "char" else []
        device["in_use_by_other"] = any(h["pid"] != daemon.get("pid") for h in device["open_by"])
        device["fire_timeout_ok"], device["fire_timeout_reason"] = (None, None) if fire_timeout is None \
            else fire_timeout_check(device, fire_timeout)
    numbered = [d["path"] for d in devices if _NODE_RE.match(d["name"]) and d["kind"] != "missing"]
    module.exit_json(changed=False, devices=devices, default_device=numbered[0] if numbered else None,
                     softdog_loaded=softdog_loaded(), daemon=daemon)


if __name__ == "__main__":
    main()
