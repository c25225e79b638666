"""A join that fails is gone from the daemon's table before its caller hears of it (engine + lockspace,
production classes; the join runs on this thread through the runtime's spawn seam)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable
from pathlib import Path

from lockengine.config import Config, WatchdogConfig
from lockengine.daemon.engine import Daemon
from lockengine.daemon.proc import SYSTEM_RUNTIME
from lockengine.strings import LockspaceSpec
from lockengine.watchdog.multiplexer import create_multiplexer


def test_a_failed_join_is_gone_before_the_caller_hears(tmp_path: Path) -> None:
    spawned: list[Callable[[], None]] = []
    runtime = dataclasses.replace(SYSTEM_RUNTIME, spawn=lambda _name, fn: spawned.append(fn))
    config = Config(host_name="h1", host_name_source="config", io_timeout=1, watchdog_fire_timeout=10,
                    kill_grace=0, watchdog=WatchdogConfig("none"), run_dir=str(tmp_path), syslog=False)
    d = Daemon(config, create_multiplexer("none", "", 10), runtime=runtime)
    disk = tmp_path / "empty"
    disk.write_bytes(b"")  # no lockspace here: the join's first read fails
    ls = d.add_lockspace(LockspaceSpec("LS", 1, str(disk), 0), 1)
    seen: list[object] = []

    def replied(f: concurrent.futures.Future[dict[str, object]]) -> None:
        seen.append((f.exception() is not None, d.lockspaces.get("LS"), "LS" in d.last_errors))

    ls.joined.add_done_callback(replied)  # what the add_lockspace reply does when the join ends
    for fn in spawned:
        fn()
    assert seen == [(True, None, True)], "the caller heard of the failure while the lockspace was still listed"
