"""The machine's watchdog devices as sysfs describes them — never by opening one (that would arm it).

The kernel (drivers/watchdog/watchdog_dev.c) prints ``status`` and ``options`` in hex with ``0x`` and
``bootstatus``, ``timeout``, ``min_timeout``, ``max_timeout`` ... in decimal. Which processes hold a
device open is read from /proc/PID/fd (``stat`` of the link, which never opens the device).
"""

from __future__ import annotations

import os
import re
import stat

# Attributes of /sys/class/watchdog/watchdogN; which ones exist depends on the kernel and driver.
_INT_ATTRS = ("timeout", "min_timeout", "max_timeout", "timeleft", "pretimeout", "nowayout", "fw_version",
              "bootstatus")
_HEX_ATTRS = ("status", "options")
_TEXT_ATTRS = ("identity", "state", "pretimeout_governor")

# <linux/watchdog.h> option and status bits.
WDIOF_CARDRESET = 0x0020  # the last reboot was caused by this watchdog
WDIOF_SETTIMEOUT = 0x0080  # the timeout can be set (WDIOC_SETTIMEOUT)
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000
# The legacy /dev/watchdog: misc device 10:130, an alias of watchdog0.
LEGACY_DEV = "10:130"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:  # absent, or the driver refuses this attribute
        return None


def _parse_int(text: str, base: int) -> int | None:
    """Decimal (base 10), or hex with or without ``0x`` (base 16); None for anything else."""
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


def last_boot_was_watchdog_reset(entry: dict[str, object]) -> bool | None:
    """True when the driver says the last reboot was its reset (WDIOF_CARDRESET in ``bootstatus``);
    None when the driver does not report a boot status."""
    bootstatus = entry.get("bootstatus")
    if not isinstance(bootstatus, int):
        return None
    return bool(bootstatus & WDIOF_CARDRESET)


def timeout_check(entry: dict[str, object], fire_timeout: int) -> tuple[bool, str]:
    """Whether this device resets the host ``fire_timeout`` seconds after the last pet once the daemon
    has opened it: its timeout already is the fire timeout, or the driver lets the daemon set it
    (WDIOF_SETTIMEOUT in ``options``, and the fire timeout within ``min_timeout``..``max_timeout`` when
    the kernel lists them). Returns (ok, why)."""
    timeout = entry.get("timeout")
    if timeout == fire_timeout:
        return True, f"its timeout is {timeout} s"
    options = entry.get("options")
    if not isinstance(options, int):
        return False, (f"its timeout is {timeout if timeout is not None else 'unknown'} s and the kernel does not "
                       "say whether it can be set (no options in sysfs)")
    if not options & WDIOF_SETTIMEOUT:
        return False, f"its timeout is {timeout} s and the driver cannot change it (no WDIOF_SETTIMEOUT)"
    low, high = entry.get("min_timeout"), entry.get("max_timeout")
    if isinstance(low, int) and low > 0 and fire_timeout < low:
        return False, f"the driver's smallest timeout is {low} s"
    if isinstance(high, int) and high > 0 and fire_timeout > high:
        return False, f"the driver's largest timeout is {high} s"
    return True, f"lockengined sets its timeout (now {timeout} s) with WDIOC_SETTIMEOUT"


def _device_numbers(device: str, sysfs_root: str) -> set[tuple[int, int]]:
    """The (major, minor) pairs that reach the same watchdog as ``device``: its own, plus the legacy
    misc device for watchdog0 and the other way round."""
    numbers: set[tuple[int, int]] = set()
    try:
        st = os.stat(device)
        if stat.S_ISCHR(st.st_mode):
            numbers.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
    except OSError:
        pass
    entry = sysfs_entry_for(device, sysfs_root)
    if entry is not None and entry.get("name") == "watchdog0":
        for text in (entry.get("dev"), LEGACY_DEV):
            if isinstance(text, str) and re.fullmatch(r"\d+:\d+", text):
                major, minor = text.split(":")
                numbers.add((int(major), int(minor)))
    return numbers


def holders_of(device: str, sysfs_root: str = "/sys", proc_root: str = "/proc") -> list[dict[str, object]]:
    """Processes that hold ``device`` (or its alias) open: ``[{pid, comm}]``, from /proc/PID/fd.

    Only one process may open a watchdog (the kernel answers EBUSY to the next), so a holder other
    than lockengined means the daemon cannot use this device. ``stat`` of an fd link returns the
    device's numbers without opening it. Processes whose fds cannot be read (no permission, gone) are
    skipped."""
    numbers = _device_numbers(device, sysfs_root)
    if not numbers:
        return []
    found: list[dict[str, object]] = []
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return []
    for pid in sorted(pids, key=int):
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
