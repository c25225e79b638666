"""The built collection: what the tarball holds, that it installs, that every plugin loads."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from .conftest import FILTERS, FQCN, MODULES, REPO, ROLES, explain, run, tool

# The tarball carries the engine's source; it must stay small (no venvs, tests, caches, images).
MAX_TARBALL_BYTES = 1_500_000


def _members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_tarball_holds_plugins_roles_and_the_engine(built_collection: Path) -> None:
    names = _members(built_collection)
    wanted = [f"plugins/modules/{m}.py" for m in MODULES] + [
        "plugins/module_utils/common.py",
        "plugins/module_utils/engine.py",
        "plugins/module_utils/liveness.py",
        "plugins/doc_fragments/common.py",
        "plugins/filter/host_ids.py",
        "meta/runtime.yml",
        "changelogs/config.yaml",
        "lockengine/__init__.py",
        "lockengine/cli/main.py",
        "lockengine/daemon/main.py",
        "lockengine/schema/lockengine.schema.json",
        "MANIFEST.json",
        "FILES.json",
    ] + [f"roles/{r}/meta/argument_specs.yml" for r in ROLES] + [f"roles/{r}/tasks/preflight.yml" for r in ROLES]
    missing = [w for w in wanted if w not in names]
    assert not missing, f"missing from {built_collection.name}: {missing}"
    # Real directories, not links (a link to meta/ makes the install warn about requires_ansible).
    links = [n for n, m in names.items() if m.issym() or m.islnk()]
    assert not links, f"links in {built_collection.name}: {links}"
    assert names["plugins"].isdir() and names["meta"].isdir()
    assert not [n for n in names if n.split("/")[0] == "collection"], "the repository's collection/ is not shipped"


def test_tarball_leaves_out_what_hosts_do_not_need(built_collection: Path) -> None:
    names = list(_members(built_collection))
    unwanted = [n for n in names
                if n.split("/")[0] in {"tests", "molecule", ".venv", ".git", "build", "tools", ".ci", "devkit"}
                or n.startswith(("lockengine/bench", "lockengine/interop"))
                or "__pycache__" in n.split("/") or n.endswith(".pyc")]
    assert not unwanted, f"unwanted in the tarball: {unwanted[:20]}"
    size = os.path.getsize(built_collection)
    assert size < MAX_TARBALL_BYTES, f"{built_collection.name} is {size} bytes; check build_ignore in galaxy.yml"


def test_installed_collection_has_its_plugins(installed: Path) -> None:
    for module in MODULES:
        assert (installed / "plugins" / "modules" / f"{module}.py").is_file()
    manifest = json.loads((installed / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["namespace"] == "lockengine"
    assert manifest["collection_info"]["name"] == "cluster"
    assert (installed / "meta" / "runtime.yml").is_file()
    assert (installed / "lockengine" / "__init__.py").is_file(), "the engine role installs this copy"


def test_ansible_doc_loads_every_module(ansible_env: dict[str, str]) -> None:
    proc = run([tool("ansible-doc"), "--json", "-t", "module", *[f"{FQCN}.{m}" for m in MODULES]], env=ansible_env)
    assert proc.returncode == 0, explain(proc)
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(f"{FQCN}.{m}" for m in MODULES)
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["examples"].strip(), f"{name}: no EXAMPLES"
        assert doc["return"], f"{name}: no RETURN"
        # The shared fragment is merged in: every module has the common options.
        assert {"lockengine_bin", "run_dir"} <= set(doc["doc"]["options"]), name


def test_ansible_doc_loads_the_filters(ansible_env: dict[str, str]) -> None:
    proc = run([tool("ansible-doc"), "--json", "-t", "filter", *[f"{FQCN}.{f}" for f in FILTERS]], env=ansible_env)
    assert proc.returncode == 0, explain(proc)
    assert sorted(json.loads(proc.stdout)) == sorted(f"{FQCN}.{f}" for f in FILTERS)


def test_action_group_lists_every_module(installed: Path) -> None:
    import yaml

    runtime = yaml.safe_load((installed / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=2.15.0"
    assert sorted(runtime["action_groups"]["lockengine"]) == sorted(MODULES)


def test_watchdog_info_runs_ad_hoc_from_the_installed_collection(
        ansible_env: dict[str, str], tmp_path: Path) -> None:
    """No daemon needed: an empty run_dir means "not running", reported instead of failing."""
    env = dict(ansible_env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal")
    proc = run([tool("ansible"), "localhost", "-m", f"{FQCN}.watchdog_info", "-a", f"run_dir={tmp_path}"],
               env=env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    head, _sep, body = proc.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS", explain(proc)
    result = json.loads(body)
    assert result["changed"] is False and not result.get("failed"), result
    assert result["daemon"]["running"] is False
    assert result["daemon"]["reason"], result["daemon"]
    # The devices listed are this machine's own (sysfs and /dev), nothing invented.
    sysfs = Path("/sys/class/watchdog")
    expected = {n for n in os.listdir(sysfs)} if sysfs.is_dir() else set()
    expected |= {n for n in os.listdir("/dev") if n.startswith("watchdog")}
    assert {d["name"] for d in result["devices"]} == expected
    assert str(REPO) not in json.dumps(result), "the module must run from the installed collection"
