"""Shared pieces of the test-host harness: constants, errors, tool lookup, process helpers."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path


def _net_index() -> int:
    raw = os.environ.get("LOCKENGINE_TESTHOSTS_NET", "0")
    if not raw.isdigit() or int(raw) > 9:
        raise SystemExit(f"LOCKENGINE_TESTHOSTS_NET: {raw!r} is not valid; use 0..9 (one cluster per number)")
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


class HarnessError(Exception):
    """A failure the harness explains in one sentence (bad input, missing tool, failed step)."""


class UnknownHost(HarnessError):
    pass


class HostTimeout(HarnessError, TimeoutError):
    """A host did not answer in time (frozen, crashed, hung I/O)."""


def say(message: str) -> None:
    """Progress for humans: stderr, so stdout stays machine-readable."""
    print(f"lockengine-testhosts: {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """Absolute path of a controller tool, or a HarnessError naming the package that provides it."""
    found = shutil.which(name)
    if found is None:
        package = TOOL_PACKAGES.get(name, name)
        raise HarnessError(
            f"missing tool: {name} is not on PATH (install the Debian package '{package}': "
            f"apt-get install -y {package})"
        )
    return found


def require_tools(names: Iterable[str]) -> dict[str, str]:
    """Check every tool at once so the user sees all that is missing in one message."""
    missing: list[str] = []
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        packages = sorted({TOOL_PACKAGES.get(m, m) for m in missing})
        raise HarnessError(
            f"missing tool(s): {', '.join(missing)} not on PATH; nothing was changed "
            f"(install: apt-get install -y {' '.join(packages)})"
        )
    return found


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a controller command; on failure raise HarnessError with its stderr."""
    cmd = list(argv)
    if not os.path.isabs(cmd[0]):
        cmd[0] = tool(cmd[0])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text,
                              stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise HarnessError(f"{' '.join(argv)} failed (rc {proc.returncode}): {detail}")
    return proc


# --- processes -------------------------------------------------------------------------------

def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a pid; with the pid it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        _reap(pid)
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def same_process(pid: int, start: int | None) -> bool:
    """True while the recorded process (pid + start time) is alive and not a zombie."""
    return pid > 0 and start is not None and proc_start_time(pid) == start


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def signal_recorded(pid: int, start: int | None, sig: int) -> bool:
    """Signal a process only if it is still the one we recorded."""
    if not same_process(pid, start):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not same_process(pid, start):
            return True
        time.sleep(0.05)
    return not same_process(pid, start)


def stop_recorded(pid: int, start: int | None, *, term_timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, a process we started and recorded."""
    if not signal_recorded(pid, start, signal.SIGTERM):
        return
    if wait_gone(pid, start, term_timeout):
        return
    signal_recorded(pid, start, signal.SIGKILL)
    if not wait_gone(pid, start, 10.0):
        raise HarnessError(f"process {pid} did not exit after SIGKILL")


# --- files -------------------------------------------------------------------------------------

def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from this process's mountinfo)."""
    prefix = str(path).rstrip("/")
    found: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf that never follows a mount (debootstrap leaves /proc, /sys... mounted when killed)."""
    if not path.exists() and not path.is_symlink():
        return
    for point in mounts_under(path):
        run(["umount", "--lazy", point], check=False)
    if mounts_under(path):
        raise HarnessError(f"{path}: mounts remain below it, not removing")
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=300)


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))
