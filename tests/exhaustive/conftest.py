"""Print the exhaustive check's summary lines at the end of the run."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_exhaustive import RESULTS

    for res in RESULTS:
        terminalreporter.write_line(res.line())
    if RESULTS:
        violations = sum(r.violation is not None for r in RESULTS)
        terminalreporter.write_line(
            f"exhaustive check: {len(RESULTS)} worlds, {sum(r.states for r in RESULTS)} states, "
            f"{sum(r.seconds for r in RESULTS):.1f} s, violations {violations}"
        )
