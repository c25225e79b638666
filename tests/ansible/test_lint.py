"""ansible-lint (production profile, .ansible-lint) and yamllint over the roles and molecule playbooks."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import REPO, explain, run, tool

# ansible-lint's own yamllint rules (it embeds them); used for the files ansible-lint does not read.
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 160}, "
    "truthy: {allowed-values: ['true', 'false'], check-keys: true}, "
    "comments: {min-spaces-from-content: 1}, comments-indentation: false, "
    "braces: {max-spaces-inside: 1}, "
    "octal-values: {forbid-implicit-octal: true, forbid-explicit-octal: true}}}"
)
YAML_PATHS = ["roles", "molecule", "galaxy.yml", ".ansible-lint", "collection/meta", "collection/plugins/filter"]


def test_ansible_lint_production_profile(ansible_env: dict[str, str]) -> None:
    # The installed collection resolves lockengine.cluster.* FQCNs and the action group for lint's syntax check.
    proc = run([tool("ansible-lint"), "--offline", "-f", "pep8", "--profile", "production", "roles", "molecule",
                "collection/playbooks", "galaxy.yml"], env=ansible_env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, explain(proc)
    summary = re.search(r"(\d+) failure\(s\), (\d+) warning\(s\) in (\d+) files processed", proc.stdout + proc.stderr)
    assert summary, explain(proc)
    failures, _warnings, files = map(int, summary.groups())
    assert failures == 0
    role_and_play_files = [p for p in (REPO / "roles").rglob("*.yml")] + list((REPO / "molecule").rglob("*.yml")) \
        + list((REPO / "collection" / "playbooks").rglob("*.yml"))
    assert files >= len(role_and_play_files), f"lint saw {files} files, the roles and molecule have {len(role_and_play_files)}"


def test_yamllint(ansible_env: dict[str, str]) -> None:
    proc = run([tool("yamllint"), "-s", "-f", "parsable", "-d", YAMLLINT_CONFIG, *YAML_PATHS],
               env=ansible_env, cwd=REPO)
    assert proc.returncode == 0, explain(proc)


def test_yamllint_would_catch_a_problem(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("---\nkey: yes\nkey: no\n")
    proc = run([tool("yamllint"), "-s", "-f", "parsable", "-d", YAMLLINT_CONFIG, str(bad)], env=ansible_env)
    assert proc.returncode != 0 and "key-duplicates" in proc.stdout
