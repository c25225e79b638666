"""`lockengine client status` loads only what it needs (issue 12: a whole process within 2x a bare
interpreter). Pinned by what a real run against a real lockengined imports (``python -X importtime``),
never by timing: the time is docs/performance.md's CLI figure (devkit/bench/compare.py).

Each module named below cost the command measurable start-up (docs/performance.md); a change that
brings one back onto the status path fails here with the chain that imported it.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.daemons import REPO, DaemonFactory, daemons  # noqa: F401 - the fixture

# Never on the status path (unless the bare interpreter of this environment loads them already).
HEAVY = {
    "argparse", "gettext", "locale", "shutil",  # the parser tree: only for help, errors and unusual forms
    "dataclasses", "inspect", "typing",  # errors.py, strings.py, the daemon's protocol module
    "socket", "selectors", "threading",  # client.py uses _socket and _thread
    "shlex", "logging", "importlib.metadata", "jsonschema", "crc32c",
}
# Exactly these of ours.
OURS = {"lockengine", "lockengine.cli", "lockengine.cli.main", "lockengine.cli.args", "lockengine.cli.client",
        "lockengine.cli.output", "lockengine.client", "lockengine.endpoint", "lockengine.errors",
        "lockengine.states"}
LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$")


def imports(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    """Run ``cmd`` under -X importtime: the process and {module: the chain of imports that loaded it}."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *cmd], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    pending: list[tuple[int, str]] = []  # importtime prints a module after its imports, deeper = indented
    for line in proc.stderr.splitlines():
        m = LINE.match(line)
        if m is not None:
            pending.append((len(m[1]) // 2, m[2]))
    parent: dict[str, str] = {}  # a module's importer: the next line printed at a smaller depth
    for i, (depth, name) in enumerate(pending):
        parent[name] = next((p for d, p in pending[i + 1:] if d < depth), "")
    chains: dict[str, list[str]] = {}
    for _, name in pending:
        chain = [name]
        while parent[chain[0]]:
            chain.insert(0, parent[chain[0]])
        chains[name] = chain
    return proc, chains


def loaded_beyond_bare(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    _, bare = imports(["-c", "pass"], env)
    proc, chains = imports(cmd, env)
    return proc, {name: chain for name, chain in chains.items() if name not in bare}


def check(loaded: dict[str, list[str]]) -> list[str]:
    """What is wrong with a status run that loaded ``loaded`` (empty: within budget)."""
    problems = [f"{name} ({' -> '.join(chain)})" for name, chain in sorted(loaded.items())
                if name in HEAVY]
    ours = {name for name in loaded if name.split(".")[0] == "lockengine"}
    if ours != OURS:
        problems.append(f"lockengine modules: extra {sorted(ours - OURS)}, missing {sorted(OURS - ours)}")
    return problems


def test_client_status_loads_only_its_budget(daemons: DaemonFactory) -> None:  # noqa: F811 - the fixture
    d = daemons("imports")
    for cmd in (["-m", "lockengine", "client", "status"],  # `python -m lockengine`
                ["-c", "import sys; from lockengine.cli.main import main; sys.exit(main())",  # the console script
                 "client", "status", "-D", "--json"]):
        proc, loaded = loaded_beyond_bare(cmd, d.env)
        assert proc.returncode == 0 and "imports" in proc.stdout, proc.stderr[-3000:]  # a real reply
        assert not check(loaded), "\n".join(check(loaded))


def test_the_budget_check_catches_a_heavy_import(daemons: DaemonFactory) -> None:  # noqa: F811 - the fixture
    """The same run, with argparse and lockengine.strings loaded first, fails the check and names them."""
    d = daemons("imports")
    cmd = ["-c", "import argparse, lockengine.strings, sys; from lockengine.cli.main import main; sys.exit(main())",
           "client", "status"]
    proc, loaded = loaded_beyond_bare(cmd, d.env)
    assert proc.returncode == 0
    problems = check(loaded)
    assert "argparse (argparse)" in problems and "gettext (argparse -> gettext)" in problems
    assert "dataclasses (lockengine.strings -> dataclasses)" in problems
    assert any("extra ['lockengine.strings']" in p for p in problems)
