"""Collection documentation and changelog as Ansible's own tooling reads them: antsibull-docs
lint-collection-docs on the assembled collection (plugin docs, role argument specs, references such as
M() and R()), and antsibull-changelog lint on changelogs/fragments."""

from __future__ import annotations

import sys
from pathlib import Path

from .conftest import REPO, base_env, explain, run, tool


def test_antsibull_docs_lint_is_clean(tmp_path: Path, ansible_home: Path) -> None:
    proc = run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--assemble-only", str(tmp_path)])
    assert proc.returncode == 0, explain(proc)
    root = Path(proc.stdout.strip())
    proc = run([tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", str(root)],
               env=base_env(ansible_home, None), cwd=root)
    assert proc.returncode == 0 and not proc.stdout.strip(), explain(proc)


def test_antsibull_docs_lint_catches_a_module_link_to_a_role(tmp_path: Path, ansible_home: Path) -> None:
    """The checker can fail: M() naming a role (there is no such module) is reported."""
    proc = run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--assemble-only", str(tmp_path),
                "--no-engine"])
    assert proc.returncode == 0, explain(proc)
    root = Path(proc.stdout.strip())
    spec = root / "roles" / "watchdog" / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace("R(lockengine.cluster.engine,ansible_collections.lockengine.cluster."
                                             "engine_role)", "M(lockengine.cluster.engine)", 1))
    proc = run([tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", str(root)],
               env=base_env(ansible_home, None), cwd=root)
    assert proc.returncode != 0 and "there is no module lockengine.cluster.engine" in proc.stdout, explain(proc)


def test_changelog_fragments_lint() -> None:
    fragments = sorted((REPO / "changelogs" / "fragments").glob("*.yml"))
    assert fragments, "changelogs/fragments/ holds the unreleased changes"
    proc = run([tool("antsibull-changelog"), "lint"], cwd=REPO)
    assert proc.returncode == 0 and not proc.stdout.strip(), explain(proc)
    assert not (REPO / "CHANGELOG.md").exists(), "changes go into changelogs/fragments/, not a hand-written file"
