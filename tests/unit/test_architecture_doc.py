"""docs/architecture.md matches the tree.

- every repository path it names (in backticks) exists;
- every module and package of lockengine/ is named in it, so a new module fails here until the page
  says what it owns;
- every code name it gives (``DirectStorage``, ``Runtime``, ``errors.storage_error``, ``SYSTEM_RUNTIME``)
  is defined somewhere in the code, so a rename fails here too.

Each check is shown to catch a broken page or tree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lockengine.errors import CODES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
TOP = ("lockengine/", "devkit/", "testhosts/", "tests/", "collection/", "roles/", "molecule/", "tools/", "docs/")
CODE_DIRS = ("lockengine", "devkit", "testhosts", "tests", "tools")
TICKED = re.compile(r"`([^`\n]+)`")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def ticked(text: str) -> list[str]:
    return TICKED.findall(text)


def named_paths(text: str) -> set[str]:
    return {t for t in ticked(text) if t.startswith(TOP) and " " not in t}


def missing_paths(text: str, root: Path) -> list[str]:
    return sorted(p for p in named_paths(text) if not (root / p).exists() or p.endswith("/") and not (root / p).is_dir())


def undocumented_modules(text: str, root: Path) -> list[str]:
    """Modules (not __init__) and packages of lockengine/ the page does not name."""
    named = named_paths(text)
    wanted = set()
    for path in (root / "lockengine").rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel:
            continue
        wanted.add(f"{path.parent.relative_to(root).as_posix()}/" if path.name == "__init__.py" else rel)
    wanted.discard("lockengine/")
    return sorted(wanted - named)


def code_names(text: str) -> set[str]:
    """Names the page gives for code: CamelCase, snake_case with an underscore, or dotted."""
    out = set()
    for t in ticked(text):
        if not NAME.match(t) or t in CODES or t.startswith("time."):
            continue
        last = t.rsplit(".", 1)[-1]
        camel = last[:1].isupper() and any(c.islower() for c in last)
        if camel or "_" in last or "." in t:
            out.add(last)
    return out


def defined_names(roots: list[Path]) -> set[str]:
    names: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(node.name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        for n in ast.walk(target):
                            if isinstance(n, ast.Name):
                                names.add(n.id)
                            elif isinstance(n, ast.Attribute):
                                names.add(n.attr)
    return names


def unknown_names(text: str, roots: list[Path]) -> list[str]:
    return sorted(code_names(text) - defined_names(roots))


def test_every_path_the_page_names_exists() -> None:
    text = DOC.read_text()
    assert len(named_paths(text)) > 60
    assert missing_paths(text, REPO) == []


def test_every_lockengine_module_is_named() -> None:
    assert undocumented_modules(DOC.read_text(), REPO) == []


def test_every_code_name_on_the_page_is_defined() -> None:
    text = DOC.read_text()
    assert {"DirectStorage", "Runtime", "ProcessControl", "WatchdogBackend", "storage_error"} <= code_names(text)
    assert unknown_names(text, [REPO / d for d in CODE_DIRS]) == []


def test_the_page_stays_about_one_page() -> None:
    assert len(DOC.read_text().splitlines()) < 160


# --------------------------------------------------------------------------- the checks catch breakage


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "lockengine" / "daemon").mkdir(parents=True)
    for rel in ("lockengine/__init__.py", "lockengine/storage.py", "lockengine/daemon/__init__.py",
                "lockengine/daemon/engine.py"):
        (tmp_path / rel).write_text("class DirectStorage:\n    pass\n")
    return tmp_path


PAGE = "`lockengine/storage.py` `lockengine/daemon/` `lockengine/daemon/engine.py` `DirectStorage`"


def test_checks_pass_a_matching_page(tree: Path) -> None:
    assert missing_paths(PAGE, tree) == []
    assert undocumented_modules(PAGE, tree) == []
    assert unknown_names(PAGE, [tree]) == []


def test_a_new_undocumented_module_is_caught(tree: Path) -> None:
    (tree / "lockengine" / "faults.py").write_text("")
    (tree / "lockengine" / "bench").mkdir()
    (tree / "lockengine" / "bench" / "__init__.py").write_text("")
    assert undocumented_modules(PAGE, tree) == ["lockengine/bench/", "lockengine/faults.py"]


def test_a_removed_file_is_caught(tree: Path) -> None:
    (tree / "lockengine" / "daemon" / "engine.py").unlink()
    assert missing_paths(PAGE, tree) == ["lockengine/daemon/engine.py"]


def test_a_renamed_class_is_caught(tree: Path) -> None:
    assert unknown_names(PAGE + " `Runtime` `errors.storage_error`", [tree]) == ["Runtime", "storage_error"]
