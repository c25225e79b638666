"""Print the exhaustive check's summary lines at the end of the run."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from . import test_delta_exhaustive, test_exhaustive

    results = [*test_exhaustive.RESULTS, *test_delta_exhaustive.RESULTS]
    for res in results:
        terminalreporter.write_line(res.line())
    if results:
        violations = sum(r.violation is not None for r in results)
        terminalreporter.write_line(
            f"exhaustive check: {len(results)} worlds, {sum(r.states for r in results)} states, "
            f"{sum(r.seconds for r in results):.1f} s, violations {violations}"
        )
