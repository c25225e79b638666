"""Losing the lockspace lease: SIGTERM, then SIGKILL at 8·io + kill_grace, watchdog stops petting at 8·io.

Storage failure is real: ``blockdev --setro`` on host 1's own loop device (host 2 reaches the same
backing file through another loop device and keeps working). The watchdog is a FIFO whose reader
(a thread here) records every pet.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

from lockengine.client import RemoteError
from lockengine.ondisk import DeltaRecord, decode_delta_sector
from lockengine.storage import DirectStorage
from tests.support.daemons import FIRE, GRACE, IO, DaemonFactory, Holder, TestDaemon, init_disk, read_leader


class FifoWatchdog:
    """Plays the watchdog device: a FIFO held open read-write (so the daemon's open never blocks)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.pets: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            now = time.monotonic()
            self.pets.extend(now for _ in data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.fd)


class ExitClock:
    """Records when a holder process exits (a thread blocked in wait)."""

    def __init__(self, holder: Holder) -> None:
        self.at: float | None = None
        self.rc: int | None = None
        self._t = threading.Thread(target=self._wait, args=(holder,), daemon=True)
        self._t.start()

    def _wait(self, holder: Holder) -> None:
        self.rc = holder.proc.wait()
        self.at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._t.join(timeout)
        assert self.at is not None, "holder did not exit"


def wait_failed(d: TestDaemon, lockspace: str, timeout: float) -> float:
    """Poll until the lockspace has failed; return its last good renewal (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = d.call("inq_lockspace", lockspace=lockspace)
        except RemoteError as exc:
            raise AssertionError(f"{lockspace} vanished before it was seen FAILED: {exc}") from None
        if st["state"] == "FAILED":
            return float(st["last_success"])
        time.sleep(0.1)
    raise AssertionError(f"{lockspace} did not fail within {timeout} s")


def blockdev(flag: str, dev: str) -> None:
    subprocess.run(["blockdev", flag, dev], check=True)


def test_storage_loss_escalates_and_stops_petting(daemons: DaemonFactory, loop_device: object, tmp_path: Path,
                                                   holders: list[Holder]) -> None:
    d1 = loop_device()  # type: ignore[operator]
    d2 = loop_device(backing=d1.backing)  # type: ignore[operator]
    init_disk(d1.path)
    wd = FifoWatchdog(tmp_path / "watchdog")
    try:
        h1 = daemons("host1", watchdog=str(wd.path))
        h2 = daemons("host2")
        h1.join("LS", 1, d1.path, wait=False)
        h2.join("LS", 2, d2.path, wait=False)
        h1.wait_joined("LS")
        h2.wait_joined("LS")
        status = h1.call("status")["daemon"]["watchdog"]
        assert (status["backend"], status["device"], status["petting"]) == ("linux", str(wd.path), True)

        stubborn = h1.holder(f"LS:R1:{d1.path}:1M", ignore_term=True)
        polite = h1.holder(f"LS:R2:{d1.path}:2M")
        holders += [stubborn, polite]
        assert stubborn.acquired and polite.acquired
        stubborn_exit, polite_exit = ExitClock(stubborn), ExitClock(polite)

        blockdev("--setro", d1.path)
        try:
            last = wait_failed(h1, "LS", 8 * IO + 5)
            polite_exit.join(8 * IO + GRACE)
            stubborn_exit.join(8 * IO + GRACE + 5)
        finally:
            blockdev("--setrw", d1.path)
        assert polite_exit.at is not None and stubborn_exit.at is not None

        # The polite holder went on SIGTERM right at 8·io; the stubborn one at 8·io + kill_grace.
        assert last + 8 * IO - 0.3 <= polite_exit.at < last + 8 * IO + GRACE - 0.5, (polite_exit.at - last)
        assert last + 8 * IO + GRACE - 0.3 <= stubborn_exit.at <= last + 8 * IO + GRACE + 1.5, (
            stubborn_exit.at - last)
        # The holder's death reaches the supervisor through its pidfd and then its connection's close
        # (leases wait for the connection): the "recovery done" line may follow the exit we saw.
        deadline = time.monotonic() + 10
        log = h1.call("log_dump")["lines"]
        while time.monotonic() < deadline and not any("recovery done: all pids clear" in line for line in log):
            time.sleep(0.2)
            log = h1.call("log_dump")["lines"]
        assert any(f"kill pid {stubborn.pid} (holder) SIGTERM" in line for line in log)
        assert any(f"kill pid {stubborn.pid} (holder) SIGKILL" in line and "LS:R1:" in line for line in log)
        assert any(f"kill pid {polite.pid} (holder) SIGTERM" in line and "LS:R2:" in line for line in log)
        assert any("recovery done: all pids clear" in line for line in log)

        # The watchdog: no pet between the lease's expiry and the last holder's death, so a holder
        # that could not be killed would have the host reset before others may take over.
        before = [t for t in wd.pets if t <= last + 8 * IO]
        # (The daemon sees the SIGKILLed holder go through its pidfd and may pet again before our
        # exit-watching thread is scheduled under load: judge the window up to 0.5 s before that.)
        during = [t for t in wd.pets if last + 8 * IO < t < stubborn_exit.at - 0.5]
        assert before, "the watchdog was never petted"
        assert during == [], f"petted {len(during)} times after the lease expired"
        assert max(before) + FIRE < last + 8 * IO + FIRE  # fires before the host counts as dead
        deadline = time.monotonic() + 3 * IO + 2
        while time.monotonic() < deadline and not [t for t in wd.pets if t > stubborn_exit.at]:
            time.sleep(0.1)
        assert [t for t in wd.pets if t > stubborn_exit.at], "petting did not resume after the holders were gone"

        # A lost lockspace writes nothing: the leases still name host 1; the daemon dropped them.
        for res, off in (("R1", 1 << 20), ("R2", 2 << 20)):
            leader = read_leader(d2.path, "LS", res, off)
            assert leader["owner_id"] == 1 and leader["timestamp"] != 0
        st = h1.call("status")
        assert st["lockspaces"] == [] and st["resources"] == []

        # Host 2 takes R1 only once host 1 counts as dead (8·io + fire_timeout after it last renewed).
        taker = h2.holder(f"LS:R1:{d2.path}:1M")
        holders.append(taker)
        took = time.monotonic()
        assert taker.acquired is not None, taker.error
        assert took >= last + 8 * IO + FIRE - 0.5 and took > stubborn_exit.at
    finally:
        wd.close()


def test_corrupt_renewal_starts_recovery_at_once(daemons: DaemonFactory, loop_device: object,
                                                 holders: list[Holder]) -> None:
    d1 = loop_device()  # type: ignore[operator]
    d2 = loop_device(backing=d1.backing)  # type: ignore[operator]
    init_disk(d1.path)
    h1 = daemons("host1")
    h1.join("LS", 1, d1.path)
    holder = h1.holder(f"LS:R1:{d1.path}:1M")
    holders.append(holder)
    exit_clock = ExitClock(holder)

    # Another writer (through the other loop device) puts a valid record with another name in our slot.
    with DirectStorage(d2.path) as st:
        rec = decode_delta_sector(st.read(0, 512, 5), 0)
        forged = DeltaRecord(replace(rec.leader, resource_name="intruder"), rec.bitmap)
        st.write(0, forged.encode_sector(512), 5)
    corrupted = time.monotonic()
    exit_clock.join(2 * IO + 3)
    assert exit_clock.at is not None
    # No waiting for 8·io: SIGTERM at the first renewal that saw it.
    assert exit_clock.at < corrupted + 2 * IO + 1.5
    log = "\n".join(h1.call("log_dump")["lines"])
    assert "RENEW_OWNER" in log and f"kill pid {holder.pid} (holder) SIGTERM" in log
    # The holder went at once, so recovery is over and the lockspace dropped; inq says why.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and h1.call("status")["lockspaces"]:
        time.sleep(0.1)
    try:
        h1.call("inq_lockspace", lockspace="LS")
    except RemoteError as exc:
        assert exc.name == "ENOENT" and "RENEW_OWNER" in exc.message
    else:
        raise AssertionError("the lockspace is still there after a corrupt renewal")
    # Nothing was released: the resource still names host 1.
    assert read_leader(d2.path, "LS", "R1", 1 << 20)["timestamp"] != 0
