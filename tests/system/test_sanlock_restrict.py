"""RESTRICT_SIGKILL / RESTRICT_SIGTERM on the sanlock socket are honoured by the escalation, with real
holder processes (tests/system/restricted_holder.py) on a real loop device: rem_lockspace, which SIGKILLs
holders, sends SIGTERM to one that may not get SIGKILL; a graceful request, which SIGTERMs, sends SIGKILL
to one that may not get SIGTERM; an unrestricted holder gets SIGKILL from rem_lockspace, as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lockengine.daemon.sanlock import wire
from tests.conftest import LoopFactory
from tests.support.daemons import REPO, DaemonFactory, TestDaemon
from tests.system.test_sanlock_compat import compat_daemon
from tests.system.test_sanlock_socket import setup_lockspace, sock_path

M = 1 << 20
HOLDER = REPO / "tests" / "system" / "restricted_holder.py"
EXIT_WAIT = 30


def start_holder(sdir: Path, dev: str, flags: int, mark: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(HOLDER), str(sock_path(sdir)), dev, str(flags), str(mark)],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["ready", "0", "0"]  # RESTRICT and ACQUIRE answered 0
    return proc


def holder_run(d: TestDaemon, sdir: Path, dev: str, flags: int, mark: Path, how: str) -> int:
    """Start a holder with ``flags``, end it with ``how``; its exit status."""
    proc = start_holder(sdir, dev, flags, mark)
    try:
        if how == "rem_lockspace":
            d.call("rem_lockspace", lockspace="LS")
        else:
            res = d.call("request", resource=f"LS:R1:{dev}:{M}", force_mode="graceful")
            assert res["local"] is True, res
        return proc.wait(EXIT_WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("flags", "how", "status", "term"), [
    (0, "rem_lockspace", -signal.SIGKILL, False),
    (wire.RESTRICT_SIGKILL, "rem_lockspace", 0, True),
    (0, "request", 0, True),
    (wire.RESTRICT_SIGTERM, "request", -signal.SIGKILL, False),
])
def test_restrict_changes_the_signal(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                     flags: int, how: str, status: int, term: bool) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    setup_lockspace(d, sdir, dev)
    mark = tmp_path / "signal"
    assert holder_run(d, sdir, dev, flags, mark, how) == status
    assert mark.exists() == term
    sent = "SIGKILL" if status else "SIGTERM"
    assert f"(restricted) {sent} count 1" in d.log_text()
