"""The modules against the real engine: `lockengine direct ...` on a real loop device and two real
lockengined daemons (simulated hosts h1 and h2, each with its own run dir and host name, watchdog
backend none, io_timeout 1 s, fire timeout 10 s).

One story, in order, because each step needs the state the previous one left: initialise (check mode
first), join both hosts, see each other live, hold a lease on h2, refuse to force-release it from h1,
release it through a request, hold it again, kill h2's daemon, wait until h1 sees h2 dead, force-release
it (logged once), leave.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import DaemonFactory, Holder, TestDaemon, daemons, holders  # noqa: F401  (fixtures: real daemons, holder processes)

from .conftest import REPO, run_module

MIB = 1 << 20


def _launcher(tmp: Path) -> Path:
    """The engine from this checkout, as the engine role's launcher runs it."""
    path = tmp / "lockengine"
    path.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m lockengine \"$@\"\n")
    path.chmod(0o755)
    return path


def _dump(launcher: Path, disk: str) -> dict[str, Any]:
    proc = subprocess.run([str(launcher), "direct", "dump", disk, "--json"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _until(what: str, fn: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def test_modules_drive_the_real_engine(loop_device: Any, daemons: DaemonFactory,  # noqa: F811
                                       holders: list[Holder], tmp_path: Path) -> None:  # noqa: F811
    disk = loop_device(size=16 * MIB).path
    bin_ = _launcher(tmp_path)

    def mod(module: str, daemon: TestDaemon | None = None, check: bool = False, **args: Any) -> dict[str, Any]:
        run_dir = daemon.run_dir if daemon else tmp_path / "no-daemon"
        return run_module(module, dict(args, lockengine_bin=str(bin_), run_dir=str(run_dir)), tmp_path, check=check)

    # -- areas, once, with check mode first
    ls = dict(name="LS", path=disk, state="initialized", io_timeout=1)
    predicted = mod("lockspace", check=True, **ls)
    assert predicted["changed"] and _dump(bin_, disk)["areas"] == [], "check mode must not write"
    assert mod("lockspace", **ls)["changed"]
    assert mod("lockspace", **ls)["changed"] is False
    r1 = dict(lockspace="LS", name="R1", path=disk, offset="1M", num_hosts=8)
    assert mod("resource", **r1)["geometry"] == {"sector_size": 512, "align_size": MIB, "num_hosts": 8}
    assert mod("resource", **r1)["changed"] is False
    over = mod("lockspace", **dict(ls, offset="1M"))
    assert over["failed"] and "already holds resource LS:R1" in over["msg"]

    # -- two hosts join; a second run changes nothing
    h1, h2 = daemons("h1"), daemons("h2")
    for daemon, host_id in ((h1, 1), (h2, 2)):
        joined = mod("lockspace", daemon, name="LS", path=disk, host_id=host_id)
        assert joined["changed"] and joined["daemon_state"] == "JOINED" and joined["generation"] >= 1, joined
        assert mod("lockspace", daemon, name="LS", path=disk, host_id=host_id)["changed"] is False
    clash = mod("lockspace", h1, name="LS", path=disk, host_id=3)
    assert clash["failed"] and "already joined on this host as host_id 1" in clash["msg"]

    def states() -> dict[int, str]:
        return {h["host_id"]: h["state"] for h in mod("host_status", h1, lockspace="LS")["hosts"]}

    _until("h1 to see both hosts live", lambda: states() == {1: "live", 2: "live"})
    from_disk = mod("host_status", lockspace="LS", path=disk)
    assert from_disk["source"] == "disk" and {h["name"] for h in from_disk["hosts"]} == {"h1", "h2"}

    # -- h2 holds R1: h1 sees it held by a live owner and refuses to force-release it
    resource = f"LS:R1:{disk}:{MIB}"
    holders.append(h2.holder(resource))
    assert holders[-1].acquired, holders[-1].error
    info = mod("lease_info", h1, path=disk, offset="1M")["leases"][0]
    assert (info["held"], info["owner_id"], info["owner_name"], info["owner_state"]) == (True, 2, "h2", "live")
    log = tmp_path / "log" / "force-release.log"
    lease = dict(lockspace="LS", name="R1", path=disk, offset="1M", log_file=str(log))
    refused = mod("lease", h1, state="force_released", **lease)
    assert refused["failed"] and "may be alive" in refused["msg"] and not log.exists()

    # -- a release request through the daemons: h2's holder is killed and the lease freed
    released = mod("lease", h1, state="released", mode="force", wait=True, wait_timeout=60, **lease)
    assert released["changed"] and released["released"] and released["request"]["owner_id"] == 2, released
    holders[-1].wait(timeout=30)
    assert mod("lease", h1, state="released", **lease)["changed"] is False

    # -- h2 holds R1 again, then its daemon dies (no watchdog here: the holder stays, the lease stays held)
    holders.append(h2.holder(resource))
    assert holders[-1].acquired, holders[-1].error
    lver = mod("lease_info", h1, path=disk, offset="1M")["leases"][0]["lver"]
    h2.proc.kill()
    h2.proc.wait()
    _until("h1 to see h2 dead", lambda: states().get(2) == "dead", timeout=60, interval=1)
    forced = mod("lease", h1, state="force_released", lver=lver, reason="test", **lease)
    assert forced["changed"] and forced["released"], forced
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and "owner_id=2" in lines[0] and "owner_state=dead" in lines[0]
    assert mod("lease", h1, state="force_released", **lease)["changed"] is False
    after = mod("lease_info", h1, path=disk, offset="1M")["leases"][0]
    assert after["held"] is False and after["lver"] == lver
    assert len(log.read_text().splitlines()) == 1

    # -- leave
    left = mod("lockspace", h1, name="LS", state="left")
    assert left["changed"] and left["daemon_state"] == "REMOVED", left
    assert mod("lockspace", h1, name="LS", state="left")["changed"] is False
