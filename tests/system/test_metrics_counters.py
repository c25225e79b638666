"""The daemon's counters through ``lockengine client metrics`` against a real daemon on a real loop device,
read back with prometheus_client's parser: lease acquires and releases (by result and cause, with a
latency histogram) and escalation steps (a release request, then SIGTERM; a lost lockspace: SIGTERM,
SIGKILL and the watchdog stopping) move as they happen."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lockengine.client import Client, DaemonError
from tests.support.daemons import IO, DaemonFactory, Holder, init_disk
from tests.system.test_metrics import Samples, scrape, value

ACQ = "lockengine_lease_acquires_total"
REL = "lockengine_lease_releases_total"
STEPS = "lockengine_escalation_steps_total"


def count(m: Samples, name: str, **labels: str) -> float:
    """A counter sample, 0 while the daemon has not counted it yet (the series does not exist then)."""
    key = (name, tuple(sorted(labels.items())))
    return m.get(key, 0.0)


def until(what: str, scrape_once: Callable[[], Samples], done: Callable[[Samples], bool], limit: float) -> Samples:
    deadline = time.monotonic() + limit
    while True:
        m = scrape_once()
        if done(m):
            return m
        assert time.monotonic() < deadline, f"{what}: not seen in the metrics; have " + repr(
            sorted((k, v) for k, v in m.items() if k[0] in (ACQ, REL, STEPS)))
        time.sleep(0.2)


def test_counters_move_with_acquires_releases_and_escalation(daemons: DaemonFactory, loop_device: object,
                                                            holders: list[Holder], tmp_path: Path) -> None:
    dev = loop_device()  # type: ignore[operator]
    init_disk(dev.path)
    h = daemons("host1")
    h.join("LS", 1, dev.path, wait=False)
    h.wait_joined("LS")
    none = ("--audit-log", str(tmp_path / "absent.log"))
    m, kinds = scrape(h, *none)
    assert not [k for k in m if k[0] in (ACQ, REL, STEPS)], "nothing counted before the first lease"

    # A lease taken: one acquire, ok, and its latency in the histogram.
    first = h.holder(f"LS:R1:{dev.path}:1M")
    holders.append(first)
    assert first.acquired
    m, kinds = scrape(h, *none)
    assert kinds["lockengine_lease_acquire_seconds"] == "histogram"
    assert value(m, ACQ, lockspace="LS", result="ok") == 1
    assert value(m, "lockengine_lease_acquire_seconds_count", lockspace="LS") == 1
    assert value(m, "lockengine_lease_acquire_seconds_bucket", lockspace="LS", le="+Inf") == 1
    assert value(m, "lockengine_lease_acquire_seconds_sum", lockspace="LS") > 0

    # The same lease again from another process: refused, counted by its error name.
    second = h.holder(f"LS:R1:{dev.path}:1M")
    holders.append(second)
    assert second.error and second.error["name"] == "EEXIST"
    m, _ = scrape(h, *none)
    assert value(m, ACQ, lockspace="LS", result="EEXIST") == 1
    assert value(m, ACQ, lockspace="LS", result="ok") == 1

    # A release call (this test process is the registered client), then a lockspace it does not have.
    with Client(h.socket, timeout=60) as c:
        c.register(name="metrics-test")
        c.acquire([f"LS:R2:{dev.path}:2M"])
        c.release([f"LS:R2:{dev.path}:2M"])
        try:
            c.acquire([f"NOPE:R3:{dev.path}:3M"])
        except DaemonError as exc:
            assert exc.name == "ENOSPC"
        else:
            raise AssertionError("an acquire in a lockspace this host has not joined succeeded")
    m, _ = scrape(h, *none)
    assert value(m, ACQ, lockspace="LS", result="ok") == 2
    assert value(m, REL, lockspace="LS", result="ok", cause="call") == 1
    assert value(m, "lockengine_lease_release_seconds_count", lockspace="LS") == 1
    assert value(m, ACQ, lockspace="", result="ENOSPC") == 1, "an unknown lockspace is not a label value"
    assert count(m, STEPS, lockspace="LS", step="request", cause="request") == 0

    # A graceful release request for R1 (held here, so acted on at once): the request, then SIGTERM; the
    # holder exits and its lease is released on its connection's close.
    h.cli("request", "-r", f"LS:R1:{dev.path}:1M", "-f", "graceful", check=True)
    first.wait(timeout=30)
    m = until("request, sigterm and the release on exit", lambda: scrape(h, *none)[0],
              lambda m: count(m, REL, lockspace="LS", result="ok", cause="exit") == 1, 30)
    assert value(m, STEPS, lockspace="LS", step="request", cause="request") == 1
    assert value(m, STEPS, lockspace="LS", step="sigterm", cause="request") == 1
    assert count(m, STEPS, lockspace="LS", step="sigkill", cause="recovery") == 0

    # The lockspace's storage fails under a holder that ignores SIGTERM: recovery sends SIGTERM, then
    # SIGKILL after kill_grace, and the watchdog stops petting because of this lockspace.
    stubborn = h.holder(f"LS:R1:{dev.path}:1M", ignore_term=True)
    holders.append(stubborn)
    assert stubborn.acquired
    subprocess.run(["blockdev", "--setro", dev.path], check=True)
    try:
        m = until("recovery's SIGKILL", lambda: scrape(h, *none)[0],
                  lambda m: count(m, STEPS, lockspace="LS", step="sigkill", cause="recovery") >= 1, 8 * IO + 30)
        assert value(m, STEPS, lockspace="LS", step="sigterm", cause="recovery") >= 1
        assert value(m, STEPS, lockspace="LS", step="watchdog_stop", cause="renewal") == 1
        assert value(m, STEPS, lockspace="LS", step="sigterm", cause="request") == 1, "earlier counts stay"
        assert value(m, ACQ, lockspace="LS", result="ok") == 3
    finally:
        subprocess.run(["blockdev", "--setrw", dev.path], check=True)
