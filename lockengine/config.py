"""The daemon's configuration: /etc/lockengine/lockengine.conf (JSON or TOML), the schema, overrides.

Order: built-in defaults < the file < LOCKENGINE_RUN_DIR (run_dir only) < command-line overrides.
The merged document is validated against lockengine/schema/lockengine.schema.json, then the checks a
schema cannot express run (byte lengths, 1 MiB offsets, duplicate lockspaces, kill_grace against the
fire timeout). Every error is an InputError naming the field, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .daemon.protocol import DEFAULT_RUN_DIR, RUN_DIR_ENV, SOCKET_NAME
from .errors import InputError
from .ondisk import encode_name, parse_size
from .schema import load_schema
from .timeouts import DEFAULT_FIRE_TIMEOUT, DEFAULT_IO_TIMEOUT, Timeouts

DEFAULT_PATH = "/etc/lockengine/lockengine.conf"
DEFAULT_SOCKET_GROUP = "lockengine"
DEFAULT_WATCHDOG_DEVICE = "/dev/watchdog0"
DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_MAX_OUTPUT = 1 << 20  # unsent reply bytes one connection may hold before it is dropped
MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")
HOST_NAME_MAX = 47  # derived names: sanlock's 47 characters + NUL
ALIGN_MIN = 1 << 20  # every lease area offset is a multiple of the smallest align size
# Application key for the machine-id hash: machine-id(5) asks never to expose the id itself.
_HOST_NAME_KEY = b"lockengine host name"
_NAME_CHAR = re.compile(r"[!-9;-~]")

# Which command-line option set a field, so its error names what the user typed.
_OPTION_OF = {
    "host_name": "--host-name",
    "io_timeout": "--io-timeout",
    "watchdog_fire_timeout": "--fire-timeout",
    "watchdog": "--watchdog",
    "watchdog.backend": "--watchdog",
    "watchdog.device": "--watchdog",
}


@dataclass(frozen=True)
class WatchdogConfig:
    backend: str = "linux"  # "linux" | "none"
    device: str = DEFAULT_WATCHDOG_DEVICE


@dataclass(frozen=True)
class LockspaceConfig:
    name: str
    host_id: int
    path: str
    offset: int = 0
    io_timeout: int | None = None  # None: the daemon's io_timeout


@dataclass(frozen=True)
class Overrides:
    """Command-line settings applied after the file (None = not given)."""

    host_name: str | None = None
    watchdog: str | None = None  # "none" or a device path
    io_timeout: int | None = None
    fire_timeout: int | None = None


@dataclass(frozen=True)
class Config:
    host_name: str
    host_name_source: str  # "config", "command line" or "machine-id"
    io_timeout: int = DEFAULT_IO_TIMEOUT
    watchdog_fire_timeout: int = DEFAULT_FIRE_TIMEOUT
    kill_grace: int = 40  # resolved: the configured value or the default for the fire timeout
    watchdog: WatchdogConfig = WatchdogConfig()
    run_dir: str = DEFAULT_RUN_DIR
    socket_group: str = DEFAULT_SOCKET_GROUP
    admin_group: str | None = None  # members may do everything root may (docs/daemon.md "Who may do what")
    path_prefixes: tuple[str, ...] = ()  # non-administrators may name only paths under these ( () = any)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_output_bytes: int = DEFAULT_MAX_OUTPUT
    sanlock_socket: str | None = None  # the sanlock-protocol socket; None = not served
    log_level: str = "INFO"
    syslog: bool = True
    lockspaces: tuple[LockspaceConfig, ...] = ()
    source: str | None = None  # the file read, or None when only defaults applied

    @property
    def socket_path(self) -> str:
        return os.path.join(self.run_dir, SOCKET_NAME)

    def timeouts(self, io_timeout: int | None = None) -> Timeouts:
        """This host's timeouts, for the daemon's io_timeout or a lockspace's own."""
        return Timeouts(io_timeout or self.io_timeout, self.watchdog_fire_timeout, self.kill_grace)

    def as_dict(self) -> dict[str, object]:
        return {
            "host_name": self.host_name,
            "host_name_source": self.host_name_source,
            "io_timeout": self.io_timeout,
            "watchdog_fire_timeout": self.watchdog_fire_timeout,
            "kill_grace": self.kill_grace,
            "watchdog": {"backend": self.watchdog.backend, "device": self.watchdog.device},
            "run_dir": self.run_dir,
            "socket_group": self.socket_group,
            "admin_group": self.admin_group,
            "path_prefixes": list(self.path_prefixes),
            "max_connections": self.max_connections,
            "max_output_bytes": self.max_output_bytes,
            "sanlock_socket": self.sanlock_socket,
            "log_level": self.log_level,
            "syslog": self.syslog,
            "lockspaces": [
                {"name": ls.name, "host_id": ls.host_id, "path": ls.path, "offset": ls.offset,
                 "io_timeout": ls.io_timeout}
                for ls in self.lockspaces
            ],
            "source": self.source,
        }


# --------------------------------------------------------------------------- stable host name


def read_machine_id(paths: Sequence[str] = MACHINE_ID_PATHS) -> str | None:
    """The first usable machine id (32 hex digits); "uninitialized" or empty files are skipped."""
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.read().strip().lower()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-f]{32}", text):
            return text
    return None


def stable_host_name(machine_id: str, nodename: str) -> str:
    """``<16 hex of HMAC-SHA256(machine-id, "lockengine host name")>.<nodename>``, at most 47 bytes.

    Same machine id and node name → same name on every start, so a restarted host finds its own slot
    again (it still waits on it like any held slot: delta.py, no fast reacquire). The node name keeps hosts cloned from one image
    (same machine id) apart. Characters not allowed in host names become '-'.
    """
    digest = hmac.new(machine_id.strip().lower().encode("ascii"), _HOST_NAME_KEY, hashlib.sha256).hexdigest()[:16]
    node = "".join(c if _NAME_CHAR.fullmatch(c) else "-" for c in nodename)
    name = f"{digest}.{node}" if node else digest
    return name[:HOST_NAME_MAX]


def default_host_name(machine_id_paths: Sequence[str] = MACHINE_ID_PATHS, nodename: str | None = None) -> str:
    machine_id = read_machine_id(machine_id_paths)
    if machine_id is None:
        raise InputError(
            "host_name",
            None,
            f"no usable machine id in {', '.join(machine_id_paths)} to derive a stable name from; set host_name "
            f"in {DEFAULT_PATH} (unique and stable for this host) or create one with systemd-machine-id-setup",
        )
    return stable_host_name(machine_id, os.uname().nodename if nodename is None else nodename)


# --------------------------------------------------------------------------- reading the file


def _toml_module() -> ModuleType | None:
    try:
        import tomllib  # Python ≥ 3.11

        return tomllib
    except ImportError:
        pass
    try:
        import tomli  # type: ignore[import-not-found,unused-ignore]

        return tomli  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        return None


def _is_toml(path: str, text: str) -> bool:
    if path.endswith(".toml"):
        return True
    if path.endswith(".json"):
        return False
    stripped = text.lstrip()
    return bool(stripped) and not stripped.startswith("{")


def parse_config_text(text: str, path: str) -> dict[str, Any]:
    """JSON or TOML (by extension, else by content: JSON starts with '{'); empty means all defaults."""
    if not text.strip():
        return {}
    if _is_toml(path, text):
        toml = _toml_module()
        if toml is None:
            raise InputError(
                "config", path, "it is TOML, and this Python has no TOML parser (tomllib needs Python 3.11; "
                "or install tomli): write the configuration as JSON instead"
            )
        try:
            data = toml.loads(text)
        except toml.TOMLDecodeError as e:
            raise InputError("config", path, f"fix the TOML syntax: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError("config", path, f"fix the JSON syntax: {e}") from None
    if not isinstance(data, dict):
        raise InputError("config", path, "the configuration must be a JSON object (or a TOML document)")
    return data


def read_config_file(path: str | None) -> tuple[dict[str, Any], str | None]:
    """The file's settings and its path; the default path may be missing (then: all defaults)."""
    explicit = path is not None
    path = DEFAULT_PATH if path is None else path
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if explicit:
            raise InputError("config", path, "no such file; give an existing configuration file") from None
        return {}, None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("config", path, f"cannot read it ({e}); make it a readable UTF-8 file") from None
    return parse_config_text(text, path), path


# --------------------------------------------------------------------------- validation


def _field(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_errors(doc: Mapping[str, Any], overridden: set[str]) -> None:
    """Raise the first schema violation (in document order) as an InputError."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]

    validator = Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    err = errors[0]
    path = list(err.absolute_path)
    schema: Mapping[str, Any] = err.schema if isinstance(err.schema, Mapping) else {}
    value: object = err.instance
    allowed = str(schema.get("x-allowed") or err.message)
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        known = sorted(schema.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in known)
        path.append(unknown[0])
        value = err.instance[unknown[0]]
        allowed = f"no such setting exists; the settings here are: {', '.join(known)}"
    elif err.validator == "required" and isinstance(err.instance, Mapping):
        missing = [k for k in err.validator_value if k not in err.instance][0]
        path.append(missing)
        value = None
        prop = schema.get("properties", {}).get(missing, {})
        allowed = f"it is missing and required; {prop.get('x-allowed', 'give a value')}"
    field = _field(path) or "config"
    raise InputError(_OPTION_OF.get(field, field) if field in overridden else field, value, allowed)


def _apply_overrides(doc: dict[str, Any], overrides: Overrides, environ: Mapping[str, str]) -> set[str]:
    """Settings from the environment and command line, on top of the file. Returns what they set."""
    touched: set[str] = set()
    if environ.get(RUN_DIR_ENV):
        doc["run_dir"] = environ[RUN_DIR_ENV]
    if overrides.host_name is not None:
        doc["host_name"] = overrides.host_name
        touched.add("host_name")
    if overrides.io_timeout is not None:
        doc["io_timeout"] = overrides.io_timeout
        touched.add("io_timeout")
    if overrides.fire_timeout is not None:
        doc["watchdog_fire_timeout"] = overrides.fire_timeout
        touched.add("watchdog_fire_timeout")
    if overrides.watchdog is not None:
        wd = dict(doc["watchdog"]) if isinstance(doc.get("watchdog"), Mapping) else {}
        if overrides.watchdog == "none":
            wd["backend"] = "none"
        else:
            wd.update(backend="linux", device=overrides.watchdog)
        doc["watchdog"] = wd
        touched.update({"watchdog", "watchdog.backend", "watchdog.device"})
    return touched


def _offset(value: object, field: str) -> int:
    # The schema admits only non-negative integers and digit strings with an optional M.
    offset = parse_size(value, field) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    if offset % ALIGN_MIN:
        raise InputError(field, value, "use a byte offset that is a multiple of 1 MiB (1048576), e.g. 0 or \"1M\"")
    return offset


def _lockspaces(items: Sequence[Mapping[str, Any]]) -> tuple[LockspaceConfig, ...]:
    seen: dict[str, int] = {}
    out = []
    for i, item in enumerate(items):
        name = item["name"]
        encode_name(name, f"lockspaces[{i}].name")  # byte length, NUL and ':' rules of the on-disk name
        if name in seen:
            raise InputError(f"lockspaces[{i}].name", name, f"each lockspace once; it is also lockspaces[{seen[name]}]")
        seen[name] = i
        io = item.get("io_timeout")
        out.append(LockspaceConfig(name, int(item["host_id"]), item["path"],
                                   _offset(item.get("offset", 0), f"lockspaces[{i}].offset"),
                                   None if io is None else int(io)))
    return tuple(out)


def load_config(
    path: str | None = None,
    overrides: Overrides | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    machine_id_paths: Sequence[str] = MACHINE_ID_PATHS,
    nodename: str | None = None,
) -> Config:
    """Read, merge and validate the configuration. ``path=None``: the default file, if it exists."""
    raw, source = read_config_file(path)
    doc = copy.deepcopy(raw)
    touched = _apply_overrides(doc, overrides or Overrides(), os.environ if environ is None else environ)
    _schema_errors(doc, touched)

    io_timeout = int(doc.get("io_timeout", DEFAULT_IO_TIMEOUT))
    fire_timeout = int(doc.get("watchdog_fire_timeout", DEFAULT_FIRE_TIMEOUT))
    kill_grace = doc.get("kill_grace")
    timeouts = Timeouts(io_timeout, fire_timeout, None if kill_grace is None else int(kill_grace))

    if "host_name" in doc:
        host_name = doc["host_name"]
        host_name_source = "command line" if "host_name" in touched else "config"
    else:
        host_name = default_host_name(machine_id_paths, nodename)
        host_name_source = "machine-id"

    wd = doc.get("watchdog", {})
    return Config(
        host_name=host_name,
        host_name_source=host_name_source,
        io_timeout=io_timeout,
        watchdog_fire_timeout=fire_timeout,
        kill_grace=timeouts.kill_grace_seconds,
        watchdog=WatchdogConfig(wd.get("backend", "linux"), wd.get("device", DEFAULT_WATCHDOG_DEVICE)),
        run_dir=os.path.normpath(doc.get("run_dir", DEFAULT_RUN_DIR)),
        socket_group=doc.get("socket_group", DEFAULT_SOCKET_GROUP),
        admin_group=doc.get("admin_group"),
        path_prefixes=tuple(os.path.normpath(p) for p in doc.get("path_prefixes", [])),
        max_connections=int(doc.get("max_connections", DEFAULT_MAX_CONNECTIONS)),
        max_output_bytes=int(doc.get("max_output_bytes", DEFAULT_MAX_OUTPUT)),
        sanlock_socket=doc.get("sanlock_socket"),
        log_level=str(doc.get("log_level", "info")).upper(),
        syslog=bool(doc.get("syslog", True)),
        lockspaces=_lockspaces(doc.get("lockspaces", [])),
        source=source,
    )


# --------------------------------------------------------------------------- command line


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's --config and override options (applied after the file)."""
    parser.add_argument("--config", "-c", metavar="PATH", help=f"configuration file (default {DEFAULT_PATH})")
    parser.add_argument("--host-name", metavar="NAME", help="this host's name in delta leases")
    parser.add_argument("--watchdog", metavar="none|PATH", help="'none' (NO protection) or the watchdog device path")
    parser.add_argument("--io-timeout", type=int, metavar="SECONDS", help="io_timeout (1-255)")
    parser.add_argument("--fire-timeout", type=int, metavar="SECONDS", help="watchdog fire timeout (same on all hosts)")


def overrides_from_args(args: argparse.Namespace) -> Overrides:
    return Overrides(
        host_name=getattr(args, "host_name", None),
        watchdog=getattr(args, "watchdog", None),
        io_timeout=getattr(args, "io_timeout", None),
        fire_timeout=getattr(args, "fire_timeout", None),
    )
