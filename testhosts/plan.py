"""The harness's fixed plan: network ranges and names, paths, cgroup names, defaults, tool packages.

One cluster per ``LOCKENGINE_TESTHOSTS_NET`` number (0..9, default 0) on this machine: every name and
address below is derived from it, so clusters with different numbers never touch each other's things.
"""

from __future__ import annotations

import os
from pathlib import Path

NET_ENV = "LOCKENGINE_TESTHOSTS_NET"


def _net_index() -> int:
    raw = os.environ.get(NET_ENV, "0")
    if not raw.isdigit() or int(raw) > 9:
        raise SystemExit(f"{NET_ENV}: {raw!r} is not valid; use 0..9 (one cluster per number)")
    return int(raw)


# Network plan (DESIGN.md §4, issue 3). One cluster per LOCKENGINE_TESTHOSTS_NET number (default 0):
# 0 is bridge lebr0 on 10.231.0.0/24 with an unreachable guard over 10.231.0.0/16; N uses 10.(231+N).
NET_INDEX = _net_index()
_SUFFIX = f"-{NET_INDEX}" if NET_INDEX else ""
SUBNET = f"10.{231 + NET_INDEX}.0.0/24"
PREFIXLEN = 24
GATEWAY = f"10.{231 + NET_INDEX}.0.1"
GUARD = f"10.{231 + NET_INDEX}.0.0/16"
FIRST_HOST_OCTET = 11
MAX_HOSTS = 200
BRIDGE = f"lebr{NET_INDEX}"
NETNS_PREFIX = f"le{NET_INDEX or ''}-"
VETH_PREFIX = f"lev{NET_INDEX or ''}-"

DEFAULT_STATE_DIR = Path(f"/run/lockengine-testhosts{_SUFFIX}")
STATE_ENV = "LOCKENGINE_TESTHOSTS_STATE"
DEFAULT_IMAGE_DIR = Path("/var/lib/lockengine-testhosts/images")
IMAGE_ENV = "LOCKENGINE_TESTHOSTS_IMAGES"

CGROUP_ROOT = Path("/sys/fs/cgroup")
# blkio: storage throttles; freezer: hung host; systemd + unified: nspawn's own supervisor/payload
# cgroups land under ours, so one host's `systemctl stop` never sees another host's processes.
CGROUP_HIERARCHIES = ("blkio", "freezer", "systemd", "unified")
CGROUP_PARENT = f"lockengine-testhosts{_SUFFIX}"

IN_HOST_DISK = "/dev/lockdisk{index}"
IN_HOST_WATCHDOGS = ("/dev/watchdog0", "/dev/watchdog")
DEFAULT_WATCHDOG_TIMEOUT = 60.0
DEFAULT_DISK_SIZE = 64 * 1024 * 1024
DEFAULT_BOOT_TIMEOUT = 120.0

# Which Debian package provides each controller tool, for the "missing tool" message.
TOOL_PACKAGES = {
    "ip": "iproute2",
    "losetup": "util-linux",
    "blockdev": "util-linux",
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "apt-get": "apt",
    "mount": "mount",
    "umount": "mount",
}
CONTROLLER_TOOLS = ("ip", "losetup", "blockdev", "systemd-nspawn", "umount")

# How the harness names itself to users (messages, the inventory's header).
COMMAND = "python -m testhosts"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


def default_image_dir() -> Path:
    return Path(os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE_DIR)
