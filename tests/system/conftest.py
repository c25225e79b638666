"""Real lockengined processes on real loop devices, one run dir and host name per simulated host.

``daemons(name, **config)`` starts ``python -m lockengine.daemon.main`` with its own
LOCKENGINE_RUN_DIR and config file and waits for READY=1 on a NOTIFY_SOCKET the fixture owns (so
every test also exercises sd_notify). Daemons are stopped at the end (SIGTERM, then SIGKILL by pid)
and their logs are printed when a test fails.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import FIRE, GRACE, IO, REPO, DaemonFactory, Holder, TestDaemon, env_for, wait_ready


@pytest.fixture
def daemons(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonFactory]:
    started: list[TestDaemon] = []

    def start(name: str, *, watchdog: str = "none", extra_args: list[str] | None = None,
              **config: Any) -> TestDaemon:
        run_dir = tmp_path / name
        run_dir.mkdir()
        cfg: dict[str, Any] = {"host_name": name, "io_timeout": IO, "watchdog_fire_timeout": FIRE,
                               "kill_grace": GRACE, "log_level": "debug"}
        cfg.update(config)
        conf = run_dir / "lockengine.conf"
        conf.write_text(json.dumps(cfg))
        notify_path = run_dir / "notify.sock"
        nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        nsock.bind(str(notify_path))
        env = env_for(run_dir)
        env["NOTIFY_SOCKET"] = str(notify_path)
        log_path = run_dir / "daemon.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lockengine.daemon.main", "--config", str(conf), "--watchdog", watchdog,
                 *(extra_args or [])],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        d = TestDaemon(name, run_dir, proc, log_path, cfg)
        started.append(d)
        try:
            wait_ready(nsock, proc, log_path)
        finally:
            nsock.close()
        return d

    try:
        yield start
    finally:
        for d in started:
            d.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for d in started:
                sys.stderr.write(f"\n===== log of {d.name} =====\n{d.log_text()[-20000:]}\n")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Holders a test started; killed at the end whatever happened."""
    made: list[Holder] = []
    yield made
    for h in made:
        h.stop()


