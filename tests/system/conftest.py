"""Real lockengined processes on real loop devices (fixtures ``daemons`` and ``holders``: tests/support/daemons.py).

The hook below keeps each test's report on its item, so that ``daemons`` prints the daemons' logs when
a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemons import daemons, holders  # noqa: F401 - fixtures of these tests


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
