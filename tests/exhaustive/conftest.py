"""Print the exhaustive check's summary lines at the end of the run."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_exhaustive import RESULTS

    for line in RESULTS:
        terminalreporter.write_line(line)
