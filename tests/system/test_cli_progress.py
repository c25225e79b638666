"""Long waits of ``lockengine client`` report as they go: a real join against a real daemon on a loop device
whose lockspace was initialised with io_timeout 3 (so the join waits 2·3 = 6 s on the free slot) prints
``waiting for host id N: S s of 6 s`` on stderr and returns the lines in its reply (``progress``,
``waited``); ``--quiet`` keeps stderr clean but not the reply. Content is asserted, never timing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.support.daemons import REPO, DaemonFactory, env_for

LINE = re.compile(r"add_lockspace LS: waiting for host id (\d): (\d+) s of 6 s")


def init(path: str) -> None:
    subprocess.run([sys.executable, "-m", "lockengine", "direct", "init", "-s", f"LS:0:{path}:0", "-o", "3"],
                   cwd=REPO, env=env_for("/"), check=True, capture_output=True)


def test_a_join_reports_its_wait_on_stderr_and_in_the_reply(daemons: DaemonFactory, loop_device: object) -> None:
    dev = loop_device()  # type: ignore[operator]
    init(dev.path)
    h1, h2 = daemons("host1"), daemons("host2")

    proc = h1.cli("add_lockspace", "-s", f"LS:1:{dev.path}:0", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["state"] == "JOINED"
    said = [m for m in map(LINE.search, proc.stderr.splitlines()) if m]
    assert said, f"no progress line on stderr: {proc.stderr!r}"
    assert all(m[1] == "1" for m in said)
    assert [line for line in doc["progress"] if LINE.fullmatch(line)] == [m[0] for m in said]
    assert doc["waited"] > 0

    quiet = h2.cli("add_lockspace", "-s", f"LS:2:{dev.path}:0", "--json", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", "--quiet: nothing on stderr"
    qdoc = json.loads(quiet.stdout)
    assert qdoc["ok"] and any(LINE.fullmatch(line) and "host id 2" in line for line in qdoc["progress"]), qdoc

    text = h1.cli("add_lockspace", "-s", f"LS:1:{dev.path}:0")  # joined already: EEXIST at once, nothing waited
    assert text.returncode == 1 and "EEXIST" in text.stderr and "waiting" not in text.stderr
