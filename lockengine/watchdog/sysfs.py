"""The machine's watchdog devices as sysfs describes them — never by opening one (that would arm it)."""

from __future__ import annotations

import os
import re

# Attributes of /sys/class/watchdog/watchdogN; which ones exist depends on the kernel and driver.
_INT_ATTRS = ("timeout", "min_timeout", "max_timeout", "timeleft", "pretimeout", "nowayout", "fw_version")
_HEX_ATTRS = ("status", "bootstatus", "options")
_TEXT_ATTRS = ("identity", "state", "pretimeout_governor")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:  # absent, or the driver refuses this attribute
        return None


def _parse_int(text: str, base: int) -> int | None:
    try:
        return int(text, base)
    except ValueError:
        return None


def _number(name: str) -> int:
    m = re.fullmatch(r"watchdog(\d+)", name)
    return int(m.group(1)) if m else 1 << 30


def describe_watchdog(entry_dir: str, dev_root: str = "/dev") -> dict[str, object]:
    """One device from its sysfs directory: name, device path, identity, timeout, state, status..."""
    name = os.path.basename(entry_dir.rstrip("/"))
    device = os.path.join(dev_root, name)
    info: dict[str, object] = {"name": name, "device": device, "device_exists": os.path.exists(device)}
    for attr in _TEXT_ATTRS:
        value = _read(os.path.join(entry_dir, attr))
        if value is not None:
            info[attr] = value
    for attr in _INT_ATTRS:
        text = _read(os.path.join(entry_dir, attr))
        if text is not None and (number := _parse_int(text, 10)) is not None:
            info[attr] = number
    for attr in _HEX_ATTRS:
        text = _read(os.path.join(entry_dir, attr))
        if text is not None and (number := _parse_int(text, 16)) is not None:
            info[attr] = number
    dev = _read(os.path.join(entry_dir, "dev"))
    if dev is not None:
        info["dev"] = dev
    driver = os.path.join(entry_dir, "device", "driver")
    if os.path.islink(driver):
        info["driver"] = os.path.basename(os.readlink(driver))
    return info


def list_watchdogs(sysfs_root: str = "/sys", dev_root: str = "/dev") -> list[dict[str, object]]:
    """Every /sys/class/watchdog/* entry, in device-number order. Opens no device."""
    class_dir = os.path.join(sysfs_root, "class", "watchdog")
    try:
        names = os.listdir(class_dir)
    except FileNotFoundError:
        return []
    return [describe_watchdog(os.path.join(class_dir, n), dev_root) for n in sorted(names, key=lambda n: (_number(n), n))]


def sysfs_entry_for(device: str, sysfs_root: str = "/sys") -> dict[str, object] | None:
    """The sysfs description of the device at ``device`` (matched by device number, else by name)."""
    try:
        rdev = os.stat(device).st_rdev
        numbers: str | None = f"{os.major(rdev)}:{os.minor(rdev)}"
    except OSError:
        numbers = None
    entries = list_watchdogs(sysfs_root, os.path.dirname(device) or "/dev")
    for entry in entries:
        if numbers is not None and entry.get("dev") == numbers:
            return entry
    # The legacy /dev/watchdog is a misc device (10:130) that aliases watchdog0.
    name = os.path.basename(device)
    name = "watchdog0" if name == "watchdog" else name
    for entry in entries:
        if entry["name"] == name:
            return entry
    return None
