"""ansible-test sanity on an assembled, dereferenced copy of the collection, offline.

ansible-test refuses symlinked directories (plugins/, meta/ here) and must run from
ansible_collections/<ns>/<name>; its venvs bootstrap pip with a script from a host that is unreachable,
so an offline stand-in (get_pip_offline.py) is put in its cache. The engine source lockengine/ is not part
of the copy: it is not Ansible content (ruff and mypy check it) and ansible-test's pylint profile rules
(for example no `_` names) do not apply to it.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import ansible_test

from .conftest import REPO, base_env, explain, run, tool

# A persistent HOME for ansible-test (its sanity venvs live there): the first run builds them (~2 min),
# later runs reuse them. build/ is ignored by git and by the collection build.
TEST_HOME = REPO / "build" / "ansible-test-home"


def assemble(dest: Path) -> Path:
    """The collection as tools/build_collection.py assembles it, without the engine payload."""
    proc = run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--assemble-only", str(dest),
                "--no-engine"])
    assert proc.returncode == 0, explain(proc)
    return Path(proc.stdout.strip())


def pip_bootstrap_version() -> str:
    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    assert match, f"cannot find the pip version ansible-test bootstraps in {source}; update test_sanity.py"
    return match.group(1)


def test_assembled_copy_has_no_symlinks(tmp_path: Path) -> None:
    root = assemble(tmp_path)
    links = [p for p in root.rglob("*") if p.is_symlink()]
    assert not links, links
    assert (root / "plugins" / "modules" / "lockspace.py").is_file()
    assert (root / "meta" / "runtime.yml").is_file()


def test_ansible_test_sanity(tmp_path: Path) -> None:
    root = assemble(tmp_path)
    cache = TEST_HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shim = cache / f"get_pip_{pip_bootstrap_version().replace('.', '_')}.py"
    shutil.copy2(Path(__file__).with_name("get_pip_offline.py"), shim)
    env = base_env(TEST_HOME, None)
    env["HOME"] = str(TEST_HOME)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    proc = run([tool("ansible-test"), "sanity", "--venv", "--python", python, "--color", "no"],
               env=env, cwd=root, timeout=1200)
    assert proc.returncode == 0, explain(proc)
    ran = re.findall(r'^Running sanity test "([\w-]+)"', proc.stdout, re.MULTILINE)
    # The tests that matter most for a collection of modules must have run, not been skipped.
    for name in ("validate-modules", "ansible-doc", "compile", "import", "pylint", "pep8", "yamllint",
                 "runtime-metadata", "shebang"):
        assert name in ran, f"sanity test {name} did not run; ran: {ran}"
