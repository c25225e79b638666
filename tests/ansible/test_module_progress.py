"""The modules' long waits report what they waited for (``waited``, ``progress``), against a real daemon on a
real loop device: a join of a lockspace initialised with io_timeout 3 (the engine waits 2·3 s on the free
slot), and a ``lease`` wait for an owner that ignores SIGTERM (the wait runs out and the failure still
carries the progress). Content is asserted, not timing."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.support.daemons import DaemonFactory, Holder, daemons, holders  # noqa: F401  (fixtures)

from .conftest import REPO, run_module


def test_join_and_lease_waits_return_their_progress(loop_device: Any, daemons: DaemonFactory,  # noqa: F811
                                                     holders: list[Holder], tmp_path: Path) -> None:  # noqa: F811
    disk = loop_device(size=16 << 20).path
    launcher = tmp_path / "lockengine"
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m lockengine \"$@\"\n")
    launcher.chmod(0o755)
    h1 = daemons("h1")

    def mod(module: str, **args: Any) -> dict[str, Any]:
        return run_module(module, dict(args, lockengine_bin=str(launcher), run_dir=str(h1.run_dir)), tmp_path)

    assert mod("lockspace", name="LS", path=disk, state="initialized", io_timeout=3)["changed"]
    assert mod("resource", lockspace="LS", name="R1", path=disk, offset="1M")["changed"]
    joined = mod("lockspace", name="LS", path=disk, host_id=1)
    assert joined["changed"] and joined["daemon_state"] == "JOINED", joined
    assert joined["waited"] > 0
    assert [p for p in joined["progress"] if re.fullmatch(r"add_lockspace LS: waiting for host id 1: \d+ s of 6 s", p)], \
        joined["progress"]
    again = mod("lockspace", name="LS", path=disk, host_id=1)
    assert again["changed"] is False and "progress" not in again, "nothing waited, nothing reported"

    # A join started without waiting (wait: false), then waited for by the next run: the polled progress.
    slow = dict(name="SLOW", path=disk, offset="4M")
    assert mod("lockspace", state="initialized", io_timeout=5, **slow)["changed"]
    started = mod("lockspace", host_id=1, wait=False, **slow)
    assert started["changed"] and started["daemon_state"] == "ADD", started
    polled = mod("lockspace", host_id=1, **slow)
    assert polled["daemon_state"] == "JOINED", polled
    assert [p for p in polled["progress"]
            if re.fullmatch(r"add_lockspace SLOW: waiting 10 s for host id 1 \(\d+ s of wait_timeout 300 s\)", p)], \
        polled["progress"]

    stubborn = h1.holder(f"LS:R1:{disk}:1048576", ignore_term=True)
    holders.append(stubborn)
    assert stubborn.acquired, stubborn.error
    lease = dict(lockspace="LS", name="R1", path=disk, offset="1M", log_file=str(tmp_path / "force.log"))
    waited = mod("lease", state="released", mode="graceful", wait=True, wait_timeout=3, **lease)
    assert waited["failed"] and "did not release" in waited["msg"], waited
    assert waited["progress"] and all(
        re.fullmatch(r"owner host_id 1 still holds LS:R1 at lver \d+: \d+ s of 3 s", p) for p in waited["progress"]), \
        waited["progress"]
    assert waited["waited"] >= 3
    assert stubborn.proc.poll() is None, "SIGTERM was ignored: the holder still runs"
