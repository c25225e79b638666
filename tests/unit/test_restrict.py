"""sanlock's RESTRICT_SIGKILL / RESTRICT_SIGTERM in the escalation (escalation.restricted, used by
signal_holder on every path that signals a holder), checked through the process-control seam."""

from __future__ import annotations

import signal

import pytest

from lockengine.daemon.clients import Client
from lockengine.daemon.escalation import Action, restricted, signal_holder


class Recorder:
    """A ProcessControl seam that records the signals instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.killpaths = 0

    def open(self, pid: int) -> int | None:
        return None

    def close(self, handle: int) -> None:
        pass

    def name(self, pid: int) -> str:
        return "holder"

    def send_signal(self, pid: int, handle: int | None, sig: int) -> bool:
        self.sent.append(sig)
        return True

    def run_killpath(self, client: Client, why: str) -> None:
        self.killpaths += 1


def client(no_sigkill: bool, no_sigterm: bool, rec: Recorder) -> Client:
    c = Client(4242, 1000, "holder", 1, None, processes=rec)
    c.no_sigkill, c.no_sigterm = no_sigkill, no_sigterm
    return c


@pytest.mark.parametrize(("no_sigkill", "no_sigterm", "for_kill", "for_term"), [
    (False, False, signal.SIGKILL, signal.SIGTERM),
    (True, False, signal.SIGTERM, signal.SIGTERM),
    (False, True, signal.SIGKILL, signal.SIGKILL),
    (True, True, signal.SIGKILL, signal.SIGKILL),  # as sanlock: SIGKILL -> SIGTERM -> SIGKILL
])
def test_signals_sent_under_restrict(no_sigkill: bool, no_sigterm: bool, for_kill: int, for_term: int) -> None:
    rec = Recorder()
    c = client(no_sigkill, no_sigterm, rec)
    assert signal_holder(c, Action.SIGKILL, "test") and signal_holder(c, Action.SIGTERM, "test")
    assert rec.sent == [for_kill, for_term]


def test_killpath_is_not_restricted() -> None:
    rec = Recorder()
    c = client(True, True, rec)
    assert restricted(c, Action.KILLPATH) == Action.KILLPATH
    signal_holder(c, Action.KILLPATH, "test")
    assert rec.killpaths == 1 and rec.sent == []
