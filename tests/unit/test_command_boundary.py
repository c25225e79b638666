"""daemon/commands.py talks to the daemon and its lockspaces through their public accessors only.

A handler that reads ``d.lockspaces`` walks a dict another thread changes (add/rem/drop hold the
daemon's lock); one that reaches into a Lockspace's ``delta``, ``table`` or ``events`` duplicates rules
that belong to the lockspace (is it joined? which generation?). The accessors are
``Daemon.lockspace_list`` / ``Daemon.lockspace`` and ``Lockspace.set_event`` / ``recent_events`` /
``hosts`` / ``describe``. The checker reads the module's syntax tree and is shown to catch each kind.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lockengine.daemon.commands as commands

# Fields of Daemon and Lockspace that are state guarded by their owner (a lock, or the lockspace's
# own rules), never read by a handler.
INTERNAL = frozenset({"lockspaces", "delta", "table", "events", "liveness", "history", "state"})


def reaches_inside(source: str) -> list[str]:
    """Every ``x.<internal>`` and ``x._private`` attribute use in ``source`` (self. excluded)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        if owner == "self":
            continue
        if node.attr in INTERNAL or (node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_commands_use_only_public_accessors() -> None:
    source = Path(commands.__file__).read_text()
    assert reaches_inside(source) == []


@pytest.mark.parametrize("snippet", [
    "for ls in d.lockspaces.values(): pass",
    "ls.delta.set_event(1, 2, 3, 4)",
    "gen = ls.table.info(3)",
    "events = list(ls.events)",
    "ok = ls.state == 'JOINED'",
    "d._ls_lock.acquire()",
])
def test_checker_catches_a_handler_reaching_inside(snippet: str) -> None:
    assert reaches_inside(snippet), snippet


def test_checker_passes_the_accessors() -> None:
    assert reaches_inside("for ls in d.lockspace_list(): ls.set_event(1, 0, 2, 3); ls.recent_events()") == []
