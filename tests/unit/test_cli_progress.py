"""``lockengine client``'s progress reporter (lockengine/cli/client.py ``Progress``): the daemon's join
message in the words of the issue, lines on stderr unless --quiet, the same lines in the reply, and a
failing look never ends the wait's reporting. Waits until a line appears; asserts content, not timing."""

from __future__ import annotations

import argparse
import io
import re
import time
from collections.abc import Callable
from contextlib import redirect_stderr

import pytest

from lockengine.cli import client as cli
from lockengine.client import DaemonError


def test_join_message_reads_as_n_of_total() -> None:
    assert cli.join_progress("waiting 20 s for host id 3", 12.7) == "waiting for host id 3: 12 s of 20 s"
    assert (cli.join_progress("waiting 140 s for host id 2: slot last held by 'old'", 30)
            == "waiting for host id 2: 30 s of 140 s: slot last held by 'old'")
    assert cli.join_progress("joining as host id 1 with io_timeout 10 s", 0) == "joining as host id 1 with io_timeout 10 s"


def run_until_a_line(monkeypatch: pytest.MonkeyPatch, quiet: bool, look: Callable[[], str | None]) -> tuple[list[str], str, dict[str, object]]:
    monkeypatch.setattr(cli, "PROGRESS_POLL", 0.05)
    monkeypatch.setattr(cli, "PROGRESS_FIRST", 0.1)
    err = io.StringIO()
    with redirect_stderr(err), cli.Progress(argparse.Namespace(quiet=quiet), "acquire LS:R1", look) as p:
        deadline = time.monotonic() + 30
        while not p.lines:
            assert time.monotonic() < deadline, "no progress line"
            time.sleep(0.02)
    return p.lines, err.getvalue(), p.reply({"pid": 7})


def test_lines_go_to_stderr_and_into_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    lines, err, reply = run_until_a_line(monkeypatch, False, lambda: "still acquiring")
    assert re.fullmatch(r"acquire LS:R1: still acquiring: \d+ s", lines[0]), lines
    assert err.splitlines()[0] == f"lockengine: {lines[0]}"
    assert reply["pid"] == 7 and reply["progress"] == lines and isinstance(reply["waited"], float)


def test_quiet_keeps_stderr_clean_and_a_failing_look_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def look() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DaemonError("ENOENT", -2, "lockspace 'LS' is not joined on this host")
        return "waiting 6 s for host id 1"

    lines, err, _ = run_until_a_line(monkeypatch, True, look)
    assert err == ""
    assert re.fullmatch(r"acquire LS:R1: waiting 6 s for host id 1: \d+ s", lines[0]), lines
