"""What ships to hosts holds no test code: no seams, benchmarks, interop runners or harness.

Two payloads leave this repository: the collection tarball (tools/build_collection.py, as a user builds
it) and, inside it, the engine the role ``engine`` packs with roles/engine/files/pack_engine.py and copies
to every host. Both are read back here, member by member, and judged by one checker:

- by path: no folder or file that is test code by name (devkit/, testhosts/, tests/, bench/, interop/,
  faults.py, conftest.py, test_*.py, ...);
- by content: no Python file that imports test-only packages (devkit, testhosts, tests, pytest, hypothesis,
  the python3-sanlock binding) or defines a fake (a class named Fake*, Faulty*, Mock*, Stub*);
- by behaviour: every module of the unpacked engine imports from the payload alone, and loading all of them
  loads no test-only package.

The checker is shown to catch a ``faults.py`` and a ``bench/`` planted in lockengine/ and carried through
the real build and the real pack script.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from .conftest import REPO, base_env, explain, run, tool

# Folders that hold only test or development code, wherever they appear in a payload.
TEST_DIRS = frozenset({"devkit", "testhosts", "tests", "test", "molecule", "tools", "bench", "benchmarks",
                       "interop", "sim", "testing", "fixtures", ".ci"})
# Module names (file stems) that are test code by name.
TEST_STEMS = frozenset({"faults", "fault", "fakes", "fake", "mocks", "mock", "stubs", "sim", "vtime",
                        "bench", "benchmark", "sanlockd", "conftest", "leasekit", "testdisk", "harness"})
TEST_STEM_PREFIXES = ("test_", "fake_", "bench_", "mock_")
# Top-level imports that only test or development code may make (``sanlock`` is the python3-sanlock
# binding: the engine speaks sanlock's protocol itself and never loads the binding).
TEST_IMPORTS = frozenset({"devkit", "testhosts", "tests", "pytest", "hypothesis", "sanlock", "unittest"})
FAKE_CLASS_PREFIXES = ("Fake", "Faulty", "Mock", "Stub")


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_code_in(members: dict[str, bytes | None]) -> list[str]:
    """Every reason a payload (member name -> file bytes, None for a folder) carries test code."""
    findings: list[str] = []
    for name, data in sorted(members.items()):
        path = PurePosixPath(name)
        parts = [p for p in path.parts if p not in (".", "")]
        dirs = parts if data is None else parts[:-1]
        bad_dirs = sorted(TEST_DIRS.intersection(dirs))
        if bad_dirs:
            findings.append(f"{name}: inside a test-only folder {bad_dirs}")
            continue
        if data is None:
            continue
        if path.suffix == ".py" and (path.stem in TEST_STEMS or path.stem.startswith(TEST_STEM_PREFIXES)
                                     or path.stem.endswith("_test")):
            findings.append(f"{name}: a test module by name")
            continue
        if path.suffix != ".py":
            continue
        try:
            tree = ast.parse(data, filename=name)
        except SyntaxError as exc:
            findings.append(f"{name}: does not parse ({exc.msg})")
            continue
        bad_imports = sorted(_imports(tree) & TEST_IMPORTS)
        if bad_imports:
            findings.append(f"{name}: imports test-only {bad_imports}")
        fakes = sorted(n.name for n in ast.walk(tree)
                       if isinstance(n, ast.ClassDef) and n.name.startswith(FAKE_CLASS_PREFIXES))
        if fakes:
            findings.append(f"{name}: defines fakes {fakes}")
    return findings


# pytest must not collect the checker itself as a test.
test_code_in.__test__ = False  # type: ignore[attr-defined]


def _tar_members(tarball: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.isdir():
                out[member.name] = None
            elif member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out


def _pack_engine(source: Path, dest: Path) -> Path:
    """The engine payload exactly as the role makes it (tasks/install_collection.yml)."""
    script = REPO / "roles" / "engine" / "files" / "pack_engine.py"
    proc = subprocess.run([sys.executable, str(script), str(source), str(dest)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, explain(proc)
    return dest


def _plant(engine: Path) -> None:
    (engine / "faults.py").write_text("class FaultyStorage:\n    pass\n")
    (engine / "bench").mkdir()
    (engine / "bench" / "__init__.py").write_text("import sanlock\n")


def test_collection_tarball_carries_no_test_code(built_collection: Path) -> None:
    members = _tar_members(built_collection)
    assert "lockengine/paxos.py" in members, "the tarball must carry the engine"
    findings = test_code_in(members)
    assert not findings, f"test code in {built_collection.name}:\n" + "\n".join(findings)


def test_engine_payload_the_role_installs_carries_no_test_code(installed: Path, tmp_path: Path) -> None:
    # The role packs <collection>/lockengine (vars/main.yml: role_path/../../lockengine): the installed copy.
    payload = _pack_engine(installed / "lockengine", tmp_path / "lockengine.tar.gz")
    members = _tar_members(payload)
    assert "lockengine/daemon/main.py" in members
    findings = test_code_in(members)
    assert not findings, "test code in the engine payload:\n" + "\n".join(findings)


def test_every_engine_module_loads_from_the_payload_alone(installed: Path, tmp_path: Path) -> None:
    payload = _pack_engine(installed / "lockengine", tmp_path / "lockengine.tar.gz")
    lib = tmp_path / "lib"
    with tarfile.open(payload) as tar:
        tar.extractall(lib, filter="data")
    modules = sorted(".".join(p.relative_to(lib).with_suffix("").parts).removesuffix(".__init__")
                     for p in (lib / "lockengine").rglob("*.py") if p.name != "__main__.py")
    probe = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(lib)!r})\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps({'file': sys.modules['lockengine'].__file__, 'loaded': sorted(sys.modules)}))\n"
    )
    # -I: no PYTHONPATH, no user site; the only lockengine on the path is the payload.
    proc = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=False,
                          cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    result = json.loads(proc.stdout)
    assert result["file"].startswith(str(lib)), result["file"]
    test_only = sorted(m for m in result["loaded"] if m.split(".")[0] in TEST_IMPORTS)
    assert not test_only, f"loading the engine loaded test-only modules: {test_only}"


def test_checker_catches_test_code_planted_in_the_engine(tmp_path: Path) -> None:
    """A faults.py and a bench/ dropped into lockengine/ reach the role's payload, and the checker says so."""
    engine = tmp_path / "src" / "lockengine"
    shutil.copytree(REPO / "lockengine", engine, ignore=shutil.ignore_patterns("__pycache__"))
    clean = test_code_in(_tar_members(_pack_engine(engine, tmp_path / "clean.tar.gz")))
    assert not clean, clean
    _plant(engine)
    findings = test_code_in(_tar_members(_pack_engine(engine, tmp_path / "planted.tar.gz")))
    assert any(f.startswith("lockengine/faults.py:") for f in findings), findings
    assert any(f.startswith("lockengine/bench") for f in findings), findings


def test_checker_catches_test_code_planted_before_the_collection_build(
        ansible_home: Path, tmp_path: Path) -> None:
    """build_ignore does not guard lockengine/: a planted faults.py reaches the tarball, and the checker says so."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_collection
    finally:
        sys.path.remove(str(REPO / "tools"))
    root = build_collection.assemble(tmp_path / "assembled")
    _plant(root / "lockengine")
    out = tmp_path / "out"
    proc = run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(root)],
               env=base_env(ansible_home, None))
    assert proc.returncode == 0, explain(proc)
    (tarball,) = out.glob("lockengine-cluster-*.tar.gz")
    findings = test_code_in(_tar_members(tarball))
    assert any(f.startswith("lockengine/faults.py:") for f in findings), findings
    assert any(f.startswith("lockengine/bench") for f in findings), findings


@pytest.mark.parametrize("name, data", [
    ("devkit/faults.py", b""),
    ("testhosts/__init__.py", b""),
    ("tests/unit/test_x.py", b""),
    ("lockengine/interop/run.py", b""),
    ("lockengine/vtime.py", b""),
    ("lockengine/storage_test.py", b""),
    ("lockengine/seam.py", b"from devkit.faults import FaultyStorage\n"),
    ("lockengine/seam.py", b"import hypothesis.strategies\n"),
    ("lockengine/seam.py", b"class FakeClock:\n    pass\n"),
])
def test_checker_flags_each_rule(name: str, data: bytes) -> None:
    assert test_code_in({name: data}), f"{name} with {data!r} passed the checker"


def test_checker_passes_production_names() -> None:
    members: dict[str, bytes | None] = {
        "lockengine/": None,
        "lockengine/storage.py": b"import os\nclass DirectStorage:\n    pass\n",
        "lockengine/watchdog/backends.py": b"class NoneWatchdog:\n    pass\n",
        "roles/engine/files/pack_engine.py": b"import tarfile\n",
        "docs/testing.md": b"# devkit/faults.py is not shipped\n",
    }
    assert test_code_in(members) == []


def test_checker_reads_tarballs(tmp_path: Path) -> None:
    tarball = tmp_path / "t.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"import pytest\n"
        info = tarfile.TarInfo("lockengine/clock.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert test_code_in(_tar_members(tarball)) == ["lockengine/clock.py: imports test-only ['pytest']"]
