"""Fixtures for the collection tests.

The collection is built once per session by tools/build_collection.py (from an assembled copy with real
plugins/ and meta/ directories) and installed from the tarball into a private collections path with a
private ANSIBLE_HOME, never into ~/.ansible. Module code is imported from the source tree through a
private ``ansible_collections/lockengine/cluster`` link, so unit tests need no build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MODULES = ("host_status", "lease", "lease_info", "lockspace", "resource", "watchdog_info")
FILTERS = ("assign_host_ids", "cluster_view_table", "lease_offset")
ROLES = ("engine", "lockspace", "watchdog")
FQCN = "lockengine.cluster"


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: install the dev dependencies "
                    "(pip install -e '.[dev]' brings ansible-core, ansible-lint and molecule)")
    return str(path)


def run(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=env, cwd=cwd, timeout=timeout, input=stdin,
                          capture_output=True, text=True, check=False)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, proc.args))}\nrc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


# The source tree, importable as ansible_collections.lockengine.cluster (for argument specs and units).
_DEV_ROOT = Path(os.environ.get("TMPDIR", "/tmp")) / f"lockengine-collection-src-{os.getpid()}"


def _dev_collections_root() -> Path:
    link = _DEV_ROOT / "ansible_collections" / "lockengine" / "cluster"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return _DEV_ROOT


if str(_dev_collections_root()) not in sys.path:
    sys.path.insert(0, str(_DEV_ROOT))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    link = _DEV_ROOT / "ansible_collections" / "lockengine" / "cluster"
    if link.is_symlink():
        link.unlink()
        for d in (link.parent, link.parent.parent, _DEV_ROOT):
            try:
                d.rmdir()
            except OSError:
                break


@pytest.fixture(scope="session")
def ansible_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ansible-home")


def base_env(home: Path, collections: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
        PY_COLORS="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return env


@pytest.fixture(scope="session")
def built_collection(tmp_path_factory: pytest.TempPathFactory, ansible_home: Path) -> Path:
    out = tmp_path_factory.mktemp("build")
    # From an assembled copy with real plugins/ and meta/ (tools/build_collection.py), never from the
    # repository, whose symlinked plugins/ and meta/ would travel as links.
    proc = run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--output-path", str(out),
                "--galaxy", tool("ansible-galaxy")], env=base_env(ansible_home, None))
    assert proc.returncode == 0, explain(proc)
    tarballs = sorted(out.glob("lockengine-cluster-*.tar.gz"))
    assert len(tarballs) == 1, f"expected one tarball in {out}: {tarballs}"
    return tarballs[0]


@pytest.fixture(scope="session")
def collections_path(built_collection: Path, tmp_path_factory: pytest.TempPathFactory, ansible_home: Path) -> Path:
    dest = tmp_path_factory.mktemp("collections")
    # The collections path is the configured one, as a user's would be: then any warning is a fault.
    proc = run([tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(dest), str(built_collection)],
               env=base_env(ansible_home, dest))
    assert proc.returncode == 0, explain(proc)
    # No warning at all: in particular not "does not have requires_ansible metadata" (symlinked meta/).
    assert "WARNING" not in proc.stdout + proc.stderr, explain(proc)
    return dest


@pytest.fixture(scope="session")
def installed(collections_path: Path) -> Path:
    root = collections_path / "ansible_collections" / "lockengine" / "cluster"
    assert (root / "MANIFEST.json").is_file(), f"no installed collection at {root}"
    return root


@pytest.fixture(scope="session")
def ansible_env(collections_path: Path, ansible_home: Path) -> dict[str, str]:
    return base_env(ansible_home, collections_path)


def module_source(name: str) -> Path:
    return REPO / "collection" / "plugins" / "modules" / f"{name}.py"


def import_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"ansible_collections.lockengine.cluster.plugins.modules.{name}")


def run_module(module: str, args: dict[str, Any], tmp: Path, *, check: bool = False,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one of the collection's modules the way Ansible's module runner does (a JSON args file), from
    the source tree, and return its result."""
    import json

    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=True)}
    args_file = tmp / f"args-{module}-{os.getpid()}.json"
    args_file.write_text(json.dumps(payload))
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_DEV_ROOT), full_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", f"ansible_collections.lockengine.cluster.plugins.modules.{module}",
                           str(args_file)], env=full_env, cwd=tmp, capture_output=True, text=True, timeout=300,
                          check=False)
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        pytest.fail(f"{module} printed no result: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
