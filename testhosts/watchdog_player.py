"""The virtual watchdog of one test host, played from outside the host.

Run by the harness (by path, standard library only) before the host starts:

    python3 watchdog_player.py --fifo F --status S --events E --timeout T --nspawn-pidfile P --freezer F

The FIFO is bound into the host at /dev/watchdog0 (and /dev/watchdog).  Semantics follow Linux's
watchdog core:
- any open arms it (the timer starts at the open);
- every byte written is a pet; a write containing "V" followed by close is a magic close and
  disarms it; a close without "V" leaves it armed ("watchdog did not stop!");
- armed and silent for longer than the timeout: the host is reset (SIGKILL of its init, the child of
  systemd-nspawn in the host's pid namespace), the reset is recorded, the watchdog is disarmed.
A host that stops or restarts (crash, down, restart) disarms it too, as a reset would.

This process keeps the FIFO open read-write for its whole life: a writer's open in the host never
blocks (a FIFO writer waits for a reader), reads never see EOF and poll never reports HUP.  Opens and
closes by the host are seen through inotify on the FIFO's inode.  The FIFO refuses the watchdog
ioctls with ENOTTY: drivers must fall back to writes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import select
import signal
import struct
import sys
import time
from typing import TypedDict, cast

IN_OPEN = 0x20
IN_CLOSE_WRITE = 0x08
IN_CLOSE_NOWRITE = 0x10
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT_HEADER = struct.Struct("iIII")
TICK = 0.05


class ResetRecord(TypedDict):
    """One reset of the host by its watchdog (times: epoch seconds)."""

    time: float
    last_pet: float | None
    armed_at: float | None
    silent_for: float
    init_pid: int | None
    killed: bool


class WatchdogStatus(TypedDict, total=False):
    """The status file the player rewrites at every change; `running` is added by the harness."""

    pid: int
    timeout: float
    armed: bool
    armed_at: float | None
    last_pet: float | None
    pets: int
    opens: int
    closes: int
    expect_close: bool
    resets: list[ResetRecord]
    updated: float
    running: bool


# One line of the event log: {"time": epoch s, "event": name, ...the event's own fields}.
WatchdogEvent = dict[str, object]


def read_status(path: str) -> WatchdogStatus:
    """The last status this watchdog wrote (for the harness; {} when none yet)."""
    try:
        with open(path) as f:
            return cast(WatchdogStatus, json.load(f))
    except (OSError, ValueError):
        return {}


def read_events(path: str) -> list[WatchdogEvent]:
    events: list[WatchdogEvent] = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    events.append(json.loads(line))
    except OSError:
        pass
    return events


class Inotify:
    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = libc.inotify_add_watch(fd, path.encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.fd = fd

    def read(self) -> list[int]:
        masks: list[int] = []
        while True:
            try:
                buf = os.read(self.fd, 4096)
            except BlockingIOError:
                return masks
            offset = 0
            while offset < len(buf):
                _wd, mask, _cookie, length = EVENT_HEADER.unpack_from(buf, offset)
                masks.append(mask)
                offset += EVENT_HEADER.size + length


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[19])


def host_init(nspawn_pidfile: str) -> list[int] | None:
    """[pid, start time] of a host's init: systemd-nspawn's child in another pid namespace.

    `nspawn_pidfile` holds "PID START" of the host's systemd-nspawn, written by the harness.
    """
    try:
        with open(nspawn_pidfile) as f:
            pid_s, start_s = f.read().split()
        nspawn = int(pid_s)
    except (OSError, ValueError):
        return None
    if _start_time(nspawn) != int(start_s):
        return None
    try:
        with open(f"/proc/{nspawn}/task/{nspawn}/children") as f:
            kids = [int(k) for k in f.read().split()]
        own_ns = os.readlink(f"/proc/{nspawn}/ns/pid")
    except OSError:
        return None
    for kid in kids:
        try:
            if os.readlink(f"/proc/{kid}/ns/pid") == own_ns:
                continue
        except OSError:
            continue
        start = _start_time(kid)
        if start is not None:
            return [kid, start]
    return None


class Watchdog:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.timeout: float = args.timeout
        self.armed = False
        self.armed_at: float | None = None
        self.last_pet: float | None = None
        self.pets = 0
        self.opens = 0
        self.closes = 0
        self.expect_close = False
        self.boot: list[int] | None = None  # [pid, start] of the init the arming belongs to
        self.resets: list[ResetRecord] = []

    # -- records ---------------------------------------------------------------------------
    def event(self, name: str, **extra: object) -> None:
        line = json.dumps({"time": time.time(), "event": name, **extra})
        with open(self.args.events, "a") as f:
            f.write(line + "\n")

    def save(self) -> None:
        status: WatchdogStatus = {
            "pid": os.getpid(), "timeout": self.timeout, "armed": self.armed, "armed_at": self.armed_at,
            "last_pet": self.last_pet, "pets": self.pets, "opens": self.opens, "closes": self.closes,
            "expect_close": self.expect_close, "resets": self.resets, "updated": time.time(),
        }
        tmp = self.args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, self.args.status)

    # -- the host ---------------------------------------------------------------------------
    def host_init(self) -> list[int] | None:
        return host_init(self.args.nspawn_pidfile)

    def reset_host(self, now: float) -> None:
        init = self.host_init()
        killed = False
        if init is not None and _start_time(init[0]) == init[1]:
            try:
                os.kill(init[0], signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                pass
            # cgroup-v1 freezer holds even SIGKILL: a hung (frozen) host must still be reset.
            try:
                with open(self.args.freezer) as f:
                    frozen = f.read().strip() != "THAWED"
                if frozen:
                    with open(self.args.freezer, "w") as f:
                        f.write("THAWED")
            except OSError:
                pass
        if killed and init is not None:
            # Init exits only after every process of its pid namespace is gone: wait, so that
            # whoever sees the reset recorded also sees the host down.
            deadline = time.monotonic() + 10
            while _start_time(init[0]) == init[1] and time.monotonic() < deadline:
                time.sleep(0.01)
        last = self.last_pet if self.last_pet is not None else self.armed_at
        record: ResetRecord = {"time": now, "last_pet": last, "armed_at": self.armed_at, "silent_for": now - (last or now),
                  "init_pid": init[0] if init else None, "killed": killed}
        self.resets.append(record)
        self.event("reset", **dict(record))
        self.disarm()

    def disarm(self) -> None:
        self.armed = False
        self.expect_close = False
        self.boot = None

    def arm(self, now: float) -> None:
        if not self.armed:
            self.armed = True
            self.armed_at = now
            self.last_pet = None
            self.boot = self.host_init()
            self.event("armed", init_pid=self.boot[0] if self.boot else None)

    # -- main loop ---------------------------------------------------------------------------
    def serve(self) -> None:
        fifo = os.open(self.args.fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        notify = Inotify(self.args.fifo)  # after our own open: every event is the host's
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        stop = [False]

        def on_term(_signum: int, _frame: object) -> None:
            stop[0] = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        poller = select.poll()
        for fd in (fifo, notify.fd, wake_r):
            poller.register(fd, select.POLLIN)
        self.event("start", timeout=self.timeout)
        self.save()
        last_exists_check = time.monotonic()
        while not stop[0]:
            poller.poll(TICK * 1000)
            now = time.time()
            masks = notify.read()  # read events first, then data: data written before a close is
            data = self.drain(fifo)  # already in the pipe when the close event is queued
            changed = False
            if data:
                if not self.armed:
                    self.arm(now)
                self.pets += 1
                self.last_pet = now
                self.expect_close = b"V" in data
                changed = True
            for mask in masks:
                if mask & IN_OPEN:
                    self.opens += 1
                    self.arm(now)
                    self.event("open")
                    changed = True
                if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    self.closes += 1
                    if self.armed and self.expect_close:
                        self.event("magic-close")
                        self.disarm()
                    elif self.armed:
                        self.event("close-without-magic", still_armed=True)
                    else:
                        self.event("close")
                    changed = True
            if self.armed:
                current = self.host_init()
                if current != self.boot:
                    # crash/restart/down from outside: the host is reset anyway, so is its watchdog
                    self.event("disarm", reason="host stopped or restarted")
                    self.disarm()
                    changed = True
                else:
                    base = self.last_pet if self.last_pet is not None else self.armed_at
                    if base is not None and now - base > self.timeout:
                        self.reset_host(now)
                        changed = True
            if changed:
                self.save()
            if time.monotonic() - last_exists_check > 2.0:
                last_exists_check = time.monotonic()
                if not os.path.exists(self.args.fifo):
                    self.event("exit", reason="fifo removed")
                    return
        self.event("exit", reason="signal")
        self.save()

    @staticmethod
    def drain(fd: int) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="virtual watchdog of one lockengine test host")
    parser.add_argument("--fifo", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--nspawn-pidfile", required=True)
    parser.add_argument("--freezer", required=True, help="the host's freezer.state file")
    args = parser.parse_args(argv)
    # The first status file is written once the FIFO's reader is open: the harness waits for it
    # before starting the host (with no reader, an open in the host would block).
    Watchdog(args).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
