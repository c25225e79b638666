"""The collection's copy of the engine's rules may not drift from the engine's.

The modules run on hosts that have only the collection (they call the engine's CLI), so the collection
keeps ONE copy of each rule in module_utils/common.py, used by the modules and the filter plugins. This
test imports both sides and compares them: the geometry table, the host-id limit, the offset syntax,
names and paths, the run dir / socket name / its environment variable, the audit log's default path,
request force modes and host states. ``drifts()`` lists every difference; a parametrised test shows it
catches each table deliberately broken. The module watchdog_info keeps its own reading of sysfs (it runs
before the engine is installed); ``watchdog_drifts`` reads fake sysfs trees with it and with the engine's
lockengine/watchdog/sysfs.py and lists every difference, shown to catch each deliberate break. The Python floor is stated once (pyproject's requires-python)
and ``floor_drifts`` checks mypy and the engine role's preflight against it.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.lockengine.cluster.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.lockengine.cluster.plugins.filter import host_ids, offsets
from ansible_collections.lockengine.cluster.plugins.module_utils import common, engine, liveness
from ansible_collections.lockengine.cluster.plugins.modules import lease

from lockengine import audit, client, config, ondisk, states, strings
from lockengine.daemon import protocol
from lockengine.errors import InputError
from lockengine.schema import load_schema

M = 1 << 20
SECTORS = (512, 1024, 4096)
ALIGNS = (M // 2, M, 2 * M, 3 * M, 4 * M, 8 * M, 16 * M)
OFFSETS = ("0", "1", "512", "1048576", "1M", "1m", "8M", "1K", "1k", "1024K", "01M", "1G", "1 M", " 1M", "1M ",
           "", "M", "K", "-1", "+1", "1.5M", "0x10", "1e6", "١", "²", "1MM", "1KM", "True")
NAMES = ("LS", "a" * 48, "a" * 49, "é" * 24, "é" * 25, "", "a:b", "a\0b", "a b", "ü")
PATH_LENGTHS = (1, 1022, 1023, 1024, 1025)


def _engine_offset(text: str) -> int | None:
    """The engine's offset in a LOCKSPACE/RESOURCE string; the collection first drops surrounding spaces."""
    try:
        return strings.parse_offset(text.strip(), "offset")
    except InputError:
        return None


def _module_offset(text: str) -> int | None:
    try:
        return int(common.offset_bytes(text))
    except ValueError:
        return None


def _filter_offset(text: str) -> int | None:
    try:
        return int(offsets.lease_offset(text))
    except AnsibleFilterError:
        return None


def _engine_max_hosts(sector: int, align: int) -> int | None:
    try:
        return ondisk.Geometry(sector, align).max_hosts
    except InputError:
        return None


def _accepts(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except (InputError, ValueError):
        return False
    return True


def _doc_default(doc: str, option: str) -> object:
    return yaml.safe_load(doc)["options"][option].get("default")


def _differ(what: str, collection: object, engine_side: object) -> Iterator[str]:
    if collection != engine_side:
        yield f"{what}: collection {collection!r} != engine {engine_side!r}"


def drifts() -> list[str]:
    """Every place where the collection's copy of a rule differs from the engine's."""
    out: list[str] = []
    # geometry: the same valid sector/align pairs with the same max_hosts, the same align sizes
    engine_table = {(s, a): _engine_max_hosts(s, a) for s in SECTORS for a in ALIGNS}
    out += _differ("geometry table", common.MAX_HOSTS, {k: v for k, v in engine_table.items() if v is not None})
    out += _differ("align sizes", sorted(common.ALIGN_SIZES.values()), sorted(ondisk.ALIGN_FLAGS))
    # host ids: the largest any geometry allows, in the modules' check and the host-id filter's default
    out += _differ("host id limit", common.HOST_ID_MAX, strings.MAX_HOST_ID)
    out += _differ("host id limit (geometries)", common.HOST_ID_MAX, max(v for v in engine_table.values() if v))
    default = inspect.signature(host_ids.assign_host_ids).parameters["max_hosts"].default
    out += _differ("assign_host_ids max_hosts default", default, strings.MAX_HOST_ID)
    for value in (0, 1, 2000, 2001):
        out += _differ(f"host id {value} accepted", _accepts(common.check_host_id, value),
                       _accepts(strings.parse_host_id, str(value), "host_id", False))
    # offsets: the modules, the filter and the engine's LOCKSPACE/RESOURCE strings read them alike
    for text in OFFSETS:
        out += _differ(f"offset {text!r}", _module_offset(text), _engine_offset(text))
        out += _differ(f"offset {text!r} (filter)", _filter_offset(text), _engine_offset(text))
    # names and paths
    out += _differ("name length", common.NAME_MAX_BYTES, ondisk.NAME_LEN)
    for name in NAMES:
        out += _differ(f"name {name!r} accepted", _accepts(common.check_name, name, "name"),
                       _accepts(ondisk.encode_name, name, "name"))
    for n in PATH_LENGTHS:
        path = "/" + "p" * (n - 1)
        out += _differ(f"path of {n} bytes accepted", _accepts(common.check_path, path),
                       _accepts(strings.check_path, path, "path"))
    io_max = load_schema()["properties"]["io_timeout"]["maximum"]
    out += _differ("io_timeout maximum", common.IO_TIMEOUT_MAX, io_max)
    # where the daemon listens
    out += _differ("run dir", common.DEFAULT_RUN_DIR, protocol.DEFAULT_RUN_DIR)
    out += _differ("run dir (doc fragment)", _doc_default(ModuleDocFragment.DOCUMENTATION, "run_dir"),
                   protocol.DEFAULT_RUN_DIR)
    out += _differ("run dir variable", common.RUN_DIR_ENV, protocol.RUN_DIR_ENV)
    out += _differ("socket name", common.SOCKET_NAME, protocol.SOCKET_NAME)
    out += _differ("socket path", engine.Engine.socket_path.fget(_RunDir()),  # type: ignore[attr-defined]
                   client.socket_path("/x"))
    # the audit log the lease module writes through the engine
    out += _differ("audit log", common.AUDIT_LOG, audit.DEFAULT_LOG)
    out += _differ("lease log_file default", _doc_default(lease.DOCUMENTATION, "log_file"), audit.DEFAULT_LOG)
    # request force modes and host states, as the engine writes and reports them
    out += _differ("force modes", liveness.FORCE_MODES,
                   {0: "none", ondisk.REQ_FORCE: "force", ondisk.REQ_GRACEFUL: "graceful"})
    out += _differ("lease mode codes", lease.MODE_CODES, {"force": ondisk.REQ_FORCE, "graceful": ondisk.REQ_GRACEFUL})
    out += _differ("host states", liveness.STATES, tuple(s.lower() for s in states.HostState))
    return out


class _RunDir:
    run_dir = "/x"


def test_the_collection_copy_matches_the_engine() -> None:
    assert drifts() == []


def test_the_engine_keeps_each_rule_once() -> None:
    assert config.DEFAULT_RUN_DIR is protocol.DEFAULT_RUN_DIR and config.SOCKET_NAME is protocol.SOCKET_NAME
    assert config.RUN_DIR_ENV is protocol.RUN_DIR_ENV
    assert client.DEFAULT_RUN_DIR is protocol.DEFAULT_RUN_DIR and client.PROTOCOL_VERSION is protocol.VERSION
    assert offsets.offset_bytes is common.offset_bytes  # the filter has no rule of its own


BREAKS: list[tuple[ModuleType, str, Any]] = [
    (common, "MAX_HOSTS", {**common.MAX_HOSTS, (4096, 2 * M): 499}),
    (common, "MAX_HOSTS", {k: v for k, v in common.MAX_HOSTS.items() if k != (4096, 4 * M)}),
    (common, "ALIGN_SIZES", {**common.ALIGN_SIZES, "16M": 16 * M}),
    (common, "HOST_ID_MAX", 1999),
    (common, "_OFFSET_RE", re.compile(r"^\s*(\d+)\s*([Mm]?)\s*$")),  # the old module syntax: no K, '1 M', '١'
    (common, "_SUFFIX", {"": 1, "k": 1000, "m": M}),
    (common, "NAME_MAX_BYTES", 47),
    (common, "PATH_MAX_BYTES", 1025),
    (common, "IO_TIMEOUT_MAX", 256),
    (common, "DEFAULT_RUN_DIR", "/var/run/lockengine"),
    (common, "RUN_DIR_ENV", "SANLOCK_RUN_DIR"),
    (common, "SOCKET_NAME", "sanlock.sock"),
    (common, "AUDIT_LOG", "/var/log/lockengine/audit.log"),
    (liveness, "STATES", ("free", "live", "fail", "dead")),
    (liveness, "FORCE_MODES", {0: "none", 1: "graceful", 2: "force"}),
    (lease, "MODE_CODES", {"force": 2, "graceful": 1}),
    (strings, "MAX_HOST_ID", 4000),
]


@pytest.mark.parametrize(("module", "name", "value"), BREAKS, ids=[f"{m.__name__.split('.')[-1]}.{n}" for m, n, _ in BREAKS])
def test_a_drifted_table_is_caught(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str, value: Any) -> None:
    monkeypatch.setattr(module, name, value)
    assert drifts() != []


# --------------------------------------------------------------------------- one Python floor

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFLIGHT = REPO_ROOT / "roles" / "engine" / "tasks" / "preflight.yml"


def floor_drifts(pyproject_text: str, preflight_text: str) -> list[str]:
    """The floor is pyproject's requires-python; ruff derives it (no target-version), mypy and the engine
    role's preflight state the same version."""
    project = tomllib.loads(pyproject_text)
    floor = re.fullmatch(r">=\s*(3\.\d+)", project["project"]["requires-python"])
    if floor is None:
        return [f"requires-python {project['project']['requires-python']!r} is not '>=3.N'"]
    out: list[str] = []
    if "target-version" in project["tool"]["ruff"]:
        out.append("ruff target-version is set: remove it, ruff reads requires-python")
    out += _differ("mypy python_version", project["tool"]["mypy"]["python_version"], floor.group(1))
    role = re.findall(r"lockengine_python_version\.stdout is version\('([0-9.]+)', '>='\)", preflight_text)
    out += _differ("engine role preflight", role, [floor.group(1)])
    return out


def test_one_python_floor() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    preflight = PREFLIGHT.read_text()
    assert floor_drifts(pyproject, preflight) == []
    assert floor_drifts(pyproject.replace('python_version = "3.11"', 'python_version = "3.12"'), preflight)
    assert floor_drifts(pyproject.replace("line-length = 120", 'line-length = 120\ntarget-version = "py39"'), preflight)
    assert floor_drifts(pyproject, preflight.replace("version('3.11', '>=')", "version('3.9', '>=')"))


# --------------------------------------------------------------------------- watchdog sysfs

# The module watchdog_info runs before the engine is installed (role watchdog picks the device), so it reads
# sysfs itself; its reading must stay the engine's (lockengine/watchdog/sysfs.py). Both read the same fake
# trees: attributes as the kernel prints them (bootstatus and timeouts decimal, options hex with 0x), missing
# and unreadable ones. Device nodes are links to /dev/null (1:3) and /dev/zero (1:5): stat only, never opened.
SYSFS_CASES: dict[str, dict[str, str]] = {
    "watchdog0": {"identity": "iTCO_wdt", "timeout": "30", "min_timeout": "1", "max_timeout": "613",
                  "state": "active", "nowayout": "1", "bootstatus": "32", "options": "0x8180", "dev": "1:3",
                  "timeleft": "29", "pretimeout": "0"},
    "watchdog1": {"identity": "Software Watchdog", "timeout": "60", "state": "inactive", "nowayout": "0",
                  "bootstatus": "0", "options": "0x8100", "dev": "1:5"},
    "watchdog2": {"identity": "odd", "timeout": "x", "bootstatus": "0x20", "options": "garbage", "max_timeout": "0"},
    "watchdog3": {"timeout": "10", "options": "0x80", "min_timeout": "15", "max_timeout": "20"},
}
FIRE_TIMEOUTS = (5, 10, 16, 20, 30, 60, 700)
ATTRS = ("identity", "state", "timeout", "min_timeout", "max_timeout", "timeleft", "pretimeout", "bootstatus",
         "options", "dev")


def _watchdog_tree(root: Path) -> tuple[Path, Path, Path]:
    sysfs, dev, proc = root / "sys", root / "dev", root / "proc"
    for name, attrs in SYSFS_CASES.items():
        d = sysfs / "class" / "watchdog" / name
        d.mkdir(parents=True)
        for key, value in attrs.items():
            (d / key).write_text(value + "\n")
    dev.mkdir()
    (dev / "watchdog0").symlink_to("/dev/null")
    (dev / "watchdog1").symlink_to("/dev/zero")
    for pid, comm, target in ((7, "wdmd", "/dev/null"), (9, "bash", str(root)), (11, "other", "/dev/zero")):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "fd" / "3").symlink_to(target)
    return sysfs, dev, proc


def watchdog_drifts(root: Path) -> list[str]:
    """Every difference between the module's and the engine's reading of one fake sysfs, /dev and /proc."""
    from ansible_collections.lockengine.cluster.plugins.modules import watchdog_info

    from lockengine.watchdog import sysfs as engine_sysfs

    sysfs, dev, proc = _watchdog_tree(root)
    mine = {d["name"]: d for d in watchdog_info.list_devices(str(sysfs / "class" / "watchdog"), str(dev))}
    theirs = {str(e["name"]): e for e in engine_sysfs.list_watchdogs(str(sysfs), str(dev))}
    out: list[str] = []
    out += _differ("devices with sysfs", sorted(n for n, d in mine.items() if d.get("sysfs")), sorted(theirs))
    for name, entry in theirs.items():
        d = mine.get(name, {})
        for attr in ATTRS:
            out += _differ(f"{name}.{attr}", d.get(attr), entry.get(attr))
        out += _differ(f"{name}.nowayout", d.get("nowayout"),
                       None if entry.get("nowayout") is None else entry["nowayout"] == 1)
        out += _differ(f"{name}.last_boot_watchdog_reset", d.get("last_boot_watchdog_reset"),
                       engine_sysfs.last_boot_was_watchdog_reset(entry))
        for fire in FIRE_TIMEOUTS:
            ok = watchdog_info.fire_timeout_check(dict(d, kind="char"), fire)[0]
            out += _differ(f"{name} fire timeout {fire} ok", ok, engine_sysfs.timeout_check(entry, fire)[0])
        path = str(dev / name)
        if name in ("watchdog0", "watchdog1"):
            out += _differ(f"{name} device numbers", watchdog_info._numbers(d, list(mine.values())),
                           engine_sysfs._device_numbers(path, str(sysfs)))
            out += _differ(f"{name} holders", watchdog_info.holders(watchdog_info._numbers(d, list(mine.values())),
                                                                    str(proc)),
                           engine_sysfs.holders_of(path, str(sysfs), str(proc)))
    return out


def test_watchdog_info_reads_sysfs_as_the_engine_does(tmp_path: Path) -> None:
    assert watchdog_drifts(tmp_path) == []


def _hex_everywhere(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text, 16) if text is not None else None
    except ValueError:
        return None


WATCHDOG_BREAKS: list[tuple[str, Any]] = [
    ("_int", _hex_everywhere),  # the old bug: bootstatus read as hex (the kernel prints 32, not 0x20)
    ("WDIOF_CARDRESET", 0x10),
    ("WDIOF_SETTIMEOUT", 0x100),
    ("_INT_ATTRS", ("timeout", "min_timeout", "pretimeout", "timeleft")),  # max_timeout forgotten
    ("LEGACY_DEV", (10, 131)),
]


@pytest.mark.parametrize(("name", "value"), WATCHDOG_BREAKS, ids=[n for n, _ in WATCHDOG_BREAKS])
def test_a_drifted_watchdog_reading_is_caught(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
                                              value: Any) -> None:
    from ansible_collections.lockengine.cluster.plugins.modules import watchdog_info

    monkeypatch.setattr(watchdog_info, name, value)
    assert watchdog_drifts(tmp_path) != []
