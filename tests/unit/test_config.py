"""Configuration: JSON and TOML files, the shipped schema, overrides and the stable host name."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]

from lockengine import config as config_mod
from lockengine.config import (
    Config,
    Overrides,
    add_override_arguments,
    load_config,
    overrides_from_args,
    read_machine_id,
    stable_host_name,
)
from lockengine.errors import InputError
from lockengine.schema import load_schema

MACHINE_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def machine_id(tmp_path: Path) -> Path:
    path = tmp_path / "machine-id"
    path.write_text(MACHINE_ID + "\n")
    return path


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's /etc/lockengine/lockengine.conf and environment must not leak into tests."""
    monkeypatch.setattr(config_mod, "DEFAULT_PATH", str(tmp_path / "absent" / "lockengine.conf"))
    monkeypatch.delenv("LOCKENGINE_RUN_DIR", raising=False)


def load(tmp_path: Path, machine_id: Path, doc: dict[str, Any] | str, name: str = "lockengine.conf",
         overrides: Overrides | None = None, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return load_config(str(path), overrides, environ=environ or {}, machine_id_paths=[str(machine_id)],
                       nodename="node1")


# --------------------------------------------------------------------------- defaults and formats


def test_missing_default_file_gives_the_defaults(machine_id: Path) -> None:
    cfg = load_config(None, environ={}, machine_id_paths=[str(machine_id)], nodename="node1")
    assert cfg.source is None
    assert cfg.as_dict() == {
        "host_name": stable_host_name(MACHINE_ID, "node1"),
        "host_name_source": "machine-id",
        "io_timeout": 10,
        "watchdog_fire_timeout": 60,
        "kill_grace": 40,
        "watchdog": {"backend": "linux", "device": "/dev/watchdog0"},
        "run_dir": "/run/lockengine",
        "socket_group": "lockengine",
        "admin_group": None,
        "path_prefixes": [],
        "max_connections": 128,
        "max_output_bytes": 1048576,
        "sanlock_socket": None,
        "log_level": "INFO",
        "syslog": True,
        "lockspaces": [],
        "source": None,
    }
    assert cfg.socket_path == "/run/lockengine/lockengined.sock"
    assert cfg.timeouts().host_dead_seconds == 140


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load_config(str(tmp_path / "nope.conf"), environ={})
    assert exc.value.field == "config" and "no such file" in str(exc.value)


FULL = {
    "host_name": "db1.example",
    "io_timeout": 5,
    "watchdog_fire_timeout": 30,
    "watchdog": {"backend": "linux", "device": "/dev/watchdog1"},
    "run_dir": "/run/le-test",
    "socket_group": "wheel",
    "log_level": "debug",
    "syslog": True,
    "lockspaces": [
        {"name": "LS", "host_id": 3, "path": "/dev/loop0", "offset": 0},
        {"name": "LS2", "host_id": 250, "path": "/dev/loop1", "offset": "2M", "io_timeout": 20},
    ],
}

FULL_TOML = """
host_name = "db1.example"
io_timeout = 5
watchdog_fire_timeout = 30
run_dir = "/run/le-test"
socket_group = "wheel"
log_level = "debug"
syslog = true

[watchdog]
backend = "linux"
device = "/dev/watchdog1"

[[lockspaces]]
name = "LS"
host_id = 3
path = "/dev/loop0"
offset = 0

[[lockspaces]]
name = "LS2"
host_id = 250
path = "/dev/loop1"
offset = "2M"
io_timeout = 20
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("lockengine.json", json.dumps(FULL)),
        ("lockengine.conf", json.dumps(FULL, indent=2)),  # sniffed: starts with "{"
        ("lockengine.toml", FULL_TOML),
        ("lockengine.conf", FULL_TOML),  # sniffed: not JSON
    ],
)
def test_json_and_toml_give_the_same_config(tmp_path: Path, machine_id: Path, name: str, text: str) -> None:
    cfg = load(tmp_path, machine_id, text, name)
    assert cfg.source == str(tmp_path / name)
    assert cfg.host_name == "db1.example" and cfg.host_name_source == "config"
    assert (cfg.io_timeout, cfg.watchdog_fire_timeout, cfg.kill_grace) == (5, 30, 15)
    assert (cfg.watchdog.backend, cfg.watchdog.device) == ("linux", "/dev/watchdog1")
    assert (cfg.run_dir, cfg.socket_group, cfg.log_level, cfg.syslog) == ("/run/le-test", "wheel", "DEBUG", True)
    assert [(ls.name, ls.host_id, ls.path, ls.offset, ls.io_timeout) for ls in cfg.lockspaces] == [
        ("LS", 3, "/dev/loop0", 0, None),
        ("LS2", 250, "/dev/loop1", 2 << 20, 20),
    ]
    assert cfg.timeouts(20).host_dead_seconds == 8 * 20 + 30
    assert cfg.timeouts().kill_grace_seconds == 15


def test_empty_file_means_defaults(tmp_path: Path, machine_id: Path) -> None:
    assert load(tmp_path, machine_id, "  \n").io_timeout == 10


def test_config_is_frozen(tmp_path: Path, machine_id: Path) -> None:
    cfg = load(tmp_path, machine_id, {})
    with pytest.raises(AttributeError):
        cfg.io_timeout = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("c.json", '{"io_timeout": 10,}', "fix the JSON syntax"),
        ("c.toml", "io_timeout = = 3", "fix the TOML syntax"),
        ("c.json", "[1, 2]", "must be a JSON object"),
    ],
)
def test_syntax_errors_name_the_file(tmp_path: Path, machine_id: Path, name: str, text: str, says: str) -> None:
    with pytest.raises(InputError) as exc:
        load(tmp_path, machine_id, text, name)
    assert exc.value.field == "config" and says in str(exc.value) and str(tmp_path / name) in str(exc.value)


def test_toml_without_a_parser_says_to_use_json(
    tmp_path: Path, machine_id: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_mod, "_toml_module", lambda: None)
    with pytest.raises(InputError, match="write the configuration as JSON"):
        load(tmp_path, machine_id, "io_timeout = 5\n", "lockengine.toml")
    assert load(tmp_path, machine_id, {"io_timeout": 5}).io_timeout == 5  # JSON still works


# --------------------------------------------------------------------------- bad fields


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({"io_timeout": 0}, "io_timeout", "io_timeout: 0 is not valid; use a whole number of seconds from 1 to 255"),
        ({"io_timeout": 256}, "io_timeout", "256 is not valid; use a whole number of seconds from 1 to 255"),
        ({"io_timeout": "10"}, "io_timeout", "'10' is not valid"),
        ({"io_timeout": True}, "io_timeout", "True is not valid"),
        ({"io_timeout": 2.5}, "io_timeout", "2.5 is not valid"),
        ({"watchdog_fire_timeout": 4}, "watchdog_fire_timeout", "from 5 to 600"),
        ({"kill_grace": -1}, "kill_grace", "-1 is not valid"),
        ({"kill_grace": 41}, "kill_grace", "kill_grace: 41 is not valid; use 0 to 40 seconds"),
        ({"watchdog_fire_timeout": 20, "kill_grace": 17}, "kill_grace", "use 0 to 16 seconds"),
        ({"host_name": ""}, "host_name", "1 to 48 printable ASCII"),
        ({"host_name": "a:b"}, "host_name", "without spaces or ':'"),
        ({"host_name": "has space"}, "host_name", "'has space' is not valid"),
        ({"host_name": "x" * 49}, "host_name", "1 to 48"),
        ({"watchdog": {"backend": "softdog"}}, "watchdog.backend", "'softdog' is not valid; use 'linux'"),
        ({"watchdog": {"device": "watchdog0"}}, "watchdog.device", "use an absolute path"),
        ({"watchdog": {"backend": "none", "extra": 1}}, "watchdog.extra", "backend, device"),
        ({"watchdog": "none"}, "watchdog", "use an object with 'backend' and 'device'"),
        ({"run_dir": "run/x"}, "run_dir", "absolute directory path"),
        ({"socket_group": "1bad"}, "socket_group", "use a group name"),
        ({"sanlock_socket": "sanlock.sock"}, "sanlock_socket", "use an absolute socket path"),
        ({"log_level": "loud"}, "log_level", "use one of debug, info"),
        ({"syslog": "yes"}, "syslog", "use true or false"),
        ({"frobnicate": 1}, "frobnicate", "no such setting exists; the settings here are: admin_group, host_name, io_timeout"),
        ({"lockspaces": {"name": "LS"}}, "lockspaces", "use a list of lockspaces"),
        ({"lockspaces": [{"name": "LS", "host_id": 1}]}, "lockspaces[0].path", "it is missing and required"),
        ({"lockspaces": [{"name": "LS", "host_id": 0, "path": "/d"}]}, "lockspaces[0].host_id", "from 1 to 2000"),
        ({"lockspaces": [{"name": "L:S", "host_id": 1, "path": "/d"}]}, "lockspaces[0].name", "without ':'"),
        ({"lockspaces": [{"name": "é" * 25, "host_id": 1, "path": "/d"}]}, "lockspaces[0].name", "at most 48 bytes"),
        ({"lockspaces": [{"name": "LS", "host_id": 1, "path": "/d", "offset": 512}]}, "lockspaces[0].offset",
         "multiple of 1 MiB"),
        ({"lockspaces": [{"name": "LS", "host_id": 1, "path": "/d", "offset": "1G"}]}, "lockspaces[0].offset",
         "'1G' is not valid"),
        ({"lockspaces": [{"name": "LS", "host_id": 1, "path": "/d", "offset": -1048576}]},
         "lockspaces[0].offset", "is not valid"),
        ({"lockspaces": [{"name": "LS", "host_id": 1, "path": "/d", "io_timeout": 0}]},
         "lockspaces[0].io_timeout", "from 1 to 255"),
        ({"lockspaces": [{"name": "LS", "host_id": 1, "path": "/d"}, {"name": "LS", "host_id": 2, "path": "/e"}]},
         "lockspaces[1].name", "also lockspaces[0]"),
    ],
)
def test_bad_field_names_field_value_and_fix(
    tmp_path: Path, machine_id: Path, doc: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InputError) as exc:
        load(tmp_path, machine_id, doc)
    assert exc.value.field == field
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"{field}: ")
    assert exc.value.as_dict()["name"] == "EINVAL"


# --------------------------------------------------------------------------- overrides and environment


def test_overrides_apply_after_the_file(tmp_path: Path, machine_id: Path) -> None:
    doc = {"host_name": "fromfile", "io_timeout": 20, "watchdog": {"device": "/dev/watchdog1"}}
    cfg = load(tmp_path, machine_id, doc,
               overrides=Overrides(host_name="fromcli", watchdog="none", io_timeout=5, fire_timeout=30))
    assert (cfg.host_name, cfg.host_name_source) == ("fromcli", "command line")
    assert (cfg.io_timeout, cfg.watchdog_fire_timeout, cfg.kill_grace) == (5, 30, 15)
    assert cfg.watchdog.backend == "none" and cfg.watchdog.device == "/dev/watchdog1"
    cfg = load(tmp_path, machine_id, {"watchdog": {"backend": "none"}}, overrides=Overrides(watchdog="/dev/wd/x"))
    assert (cfg.watchdog.backend, cfg.watchdog.device) == ("linux", "/dev/wd/x")


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        (Overrides(io_timeout=0), "--io-timeout"),
        (Overrides(fire_timeout=1000), "--fire-timeout"),
        (Overrides(watchdog="watchdog0"), "--watchdog"),
        (Overrides(host_name="bad name"), "--host-name"),
    ],
)
def test_bad_override_names_the_option(tmp_path: Path, machine_id: Path, overrides: Overrides, option: str) -> None:
    with pytest.raises(InputError) as exc:
        load(tmp_path, machine_id, {}, overrides=overrides)
    assert exc.value.field == option


def test_run_dir_environment_overrides_the_file(tmp_path: Path, machine_id: Path) -> None:
    cfg = load(tmp_path, machine_id, {"run_dir": "/run/a"}, environ={"LOCKENGINE_RUN_DIR": "/tmp/le-run/"})
    assert cfg.run_dir == "/tmp/le-run" and cfg.socket_path == "/tmp/le-run/lockengined.sock"
    with pytest.raises(InputError) as exc:
        load(tmp_path, machine_id, {}, environ={"LOCKENGINE_RUN_DIR": "relative"})
    assert exc.value.field == "run_dir"


def test_argparse_helpers_round_trip() -> None:
    parser = argparse.ArgumentParser()
    add_override_arguments(parser)
    args = parser.parse_args(["--config", "/etc/x.conf", "--host-name", "h1", "--watchdog", "none",
                              "--io-timeout", "5", "--fire-timeout", "30"])
    assert args.config == "/etc/x.conf"
    assert overrides_from_args(args) == Overrides(host_name="h1", watchdog="none", io_timeout=5, fire_timeout=30)
    assert overrides_from_args(parser.parse_args([])) == Overrides()


# --------------------------------------------------------------------------- stable host name


def test_stable_host_name_is_stable_and_distinct() -> None:
    a = stable_host_name(MACHINE_ID, "node1")
    assert a == stable_host_name(MACHINE_ID.upper() + "\n", "node1")  # same machine → same name, every start
    assert a.endswith(".node1") and len(a.split(".")[0]) == 16
    assert a != stable_host_name("f" * 32, "node1")  # another machine
    assert a != stable_host_name(MACHINE_ID, "node2")  # clones of one image keep apart by node name
    assert MACHINE_ID not in a and MACHINE_ID[:16] not in a  # the machine id itself is not exposed


def test_stable_host_name_fits_and_is_a_valid_name() -> None:
    long = stable_host_name(MACHINE_ID, "n" * 100)
    assert len(long.encode()) == 47
    odd = stable_host_name(MACHINE_ID, "we:ird node\u00e9")
    assert odd.endswith(".we-ird-node-")
    pattern = load_schema()["properties"]["host_name"]["pattern"]
    assert Draft202012Validator({"type": "string", "pattern": pattern}).is_valid(odd)


def test_default_host_name_from_machine_id(tmp_path: Path, machine_id: Path) -> None:
    first = load(tmp_path, machine_id, {})
    second = load(tmp_path, machine_id, {"io_timeout": 20})
    assert first.host_name == second.host_name == stable_host_name(MACHINE_ID, "node1")


def test_machine_id_fallbacks(tmp_path: Path) -> None:
    uninit, good = tmp_path / "etc-machine-id", tmp_path / "dbus-machine-id"
    uninit.write_text("uninitialized\n")
    good.write_text(MACHINE_ID + "\n")
    assert read_machine_id([str(tmp_path / "none"), str(uninit), str(good)]) == MACHINE_ID
    assert read_machine_id([str(uninit)]) is None


def test_no_machine_id_and_no_host_name_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    with pytest.raises(InputError) as exc:
        load_config(str(path), environ={}, machine_id_paths=[str(tmp_path / "none")], nodename="n")
    assert exc.value.field == "host_name" and "set host_name" in str(exc.value)
    # with a configured name no machine id is needed
    path.write_text('{"host_name": "h1"}')
    assert load_config(str(path), environ={}, machine_id_paths=[str(tmp_path / "none")]).host_name == "h1"


# --------------------------------------------------------------------------- the schema file


def test_schema_is_valid_self_contained_and_matches_defaults() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    text = json.dumps(schema)
    refs = [part.split('"')[0] for part in text.split('"$ref": "')[1:]]
    assert refs and all(ref.startswith("#/") for ref in refs)  # no external references
    props = schema["properties"]
    defaults = Config(host_name="h", host_name_source="config")
    assert props["io_timeout"]["default"] == defaults.io_timeout
    assert props["watchdog_fire_timeout"]["default"] == defaults.watchdog_fire_timeout
    assert props["run_dir"]["default"] == defaults.run_dir
    assert props["socket_group"]["default"] == defaults.socket_group
    assert props["log_level"]["default"].upper() == defaults.log_level
    assert props["syslog"]["default"] is defaults.syslog
    assert props["watchdog"]["properties"]["backend"]["default"] == defaults.watchdog.backend
    assert props["watchdog"]["properties"]["device"]["default"] == defaults.watchdog.device
    # every property tells the user what is allowed
    for name, prop in props.items():
        assert prop.get("x-allowed"), name
    for name, prop in schema["$defs"]["lockspace"]["properties"].items():
        assert prop.get("x-allowed"), name


def test_schema_file_is_readable_without_the_package(tmp_path: Path) -> None:
    """The Ansible role validates its variables with the file alone."""
    schema_file = Path(config_mod.__file__).parent / "schema" / "lockengine.schema.json"
    schema = json.loads(schema_file.read_text())
    assert Draft202012Validator(schema).is_valid(FULL)
    assert not Draft202012Validator(schema).is_valid({"io_timeout": 0})
