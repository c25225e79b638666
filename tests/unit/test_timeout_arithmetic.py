"""No timeout arithmetic anywhere in lockengine/ outside lockengine/timeouts.py.

An AST scan: any arithmetic (``*``, ``+``, ``-``, ``/``, ``//``) one of whose operands names an I/O or
fire timeout (``io_timeout``, ``io``, ``oio``, ``fire_timeout``...) is a derived timeout and belongs in
``Timeouts``. The scan is shown to catch such a line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "lockengine"
SCANNED = sorted(p for p in ROOT.rglob("*.py") if p != ROOT / "timeouts.py")
TIMEOUT_NAME = re.compile(r"(^|_)(io|oio|io_timeout|fire|fire_timeout)$")
ARITH = (ast.Mult, ast.Add, ast.Sub, ast.Div, ast.FloorDiv)


def _names(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
    return out


def timeout_arithmetic(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ARITH):
            for side in (node.left, node.right):
                if isinstance(side, (ast.Name, ast.Attribute)) and any(TIMEOUT_NAME.search(n) for n in _names(side)[:1]):
                    found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
                    break
    return found


def test_the_daemon_derives_no_timeout_itself() -> None:
    found = []
    for path in SCANNED:
        found += timeout_arithmetic(path.read_text(), str(path.relative_to(ROOT.parent)))
    assert found == [], "derive these in lockengine/timeouts.py (Timeouts):\n" + "\n".join(found)


def test_the_scan_catches_inline_timeout_arithmetic() -> None:
    bad = "def f(ls, io_timeout):\n    a = 8 * io_timeout\n    b = ls.timeouts.io_timeout * 6 + 1\n    return a, b\n"
    assert len(timeout_arithmetic(bad, "bad.py")) == 2
    assert timeout_arithmetic("x = ls.timeouts.id_renewal_fail_seconds + grace\n", "ok.py") == []
