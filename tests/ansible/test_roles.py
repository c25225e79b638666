"""The roles' interfaces: argument specs agree with defaults; preflights fail early, naming the variable.

The preflight runs are real ansible-playbook runs against this machine (connection local), limited to the
preflight (tag lockengine_preflight) so that even a case that passed could not install anything here.
Several cases run as several inventory hosts in one play: each host fails on its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, ROLES, explain, run, tool

# Variables a role documents without a default in defaults/main.yml (set per host or computed).
NO_DEFAULT = {"lockspace": {"lockengine_host_id"}, "watchdog": set(), "engine": set()}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_every_default(role: str) -> None:
    spec = _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]
    options = spec["options"]
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml")
    assert spec["short_description"] and spec["description"]
    assert set(defaults) <= set(options), f"{role}: undocumented defaults {sorted(set(defaults) - set(options))}"
    assert set(options) - set(defaults) == NO_DEFAULT[role], f"{role}: documented without default"
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value:
            continue  # computed from other variables
        assert options[name].get("default") == value, f"{role}.{name}: spec {options[name].get('default')!r}, defaults {value!r}"
        assert options[name].get("description"), f"{role}.{name}"


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role: str) -> None:
    base = REPO / "roles" / role
    for part in ("tasks/main.yml", "tasks/preflight.yml", "handlers/main.yml", "meta/main.yml", "defaults/main.yml"):
        assert (base / part).is_file(), f"{role}: no {part}"
    meta = _yaml(base / "meta" / "main.yml")["galaxy_info"]
    assert meta["role_name"] == role and meta["namespace"] == "lockengine" and meta["min_ansible_version"]
    main = _yaml(base / "tasks" / "main.yml")
    assert main[0]["ansible.builtin.import_tasks"] == "preflight.yml", f"{role}: the preflight must come first"


def _preflight(role: str, cases: dict[str, dict[str, Any]], env: dict[str, str], tmp: Path) -> str:
    inventory = {"all": {"hosts": {name: dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                                              **hostvars) for name, hostvars in cases.items()}}}
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "play.yml").write_text(yaml.safe_dump([{
        "name": f"preflight of {role}", "hosts": "all", "gather_facts": False,
        "roles": [{"role": f"lockengine.cluster.{role}"}],
    }]))
    proc = run([tool("ansible-playbook"), "-i", "inventory.yml", "play.yml", "--tags", "lockengine_preflight"],
               env=dict(env, ANSIBLE_DISPLAY_FAILED_STDERR="0"), cwd=tmp)
    assert proc.returncode != 0, explain(proc)  # the failing cases fail the run
    return proc.stdout + proc.stderr


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = output[output.index("PLAY RECAP"):].splitlines()[1:]
    out = {}
    for line in recap:
        if ":" not in line:
            continue
        host, _sep, counters = line.partition(":")
        out[host.strip()] = {k: int(v) for k, v in (c.split("=") for c in counters.split())}
    return out


def _fatal(output: str, host: str) -> str:
    """The failure line of a host (`fatal: [h]: FAILED! => {...}`, or `failed: [h] (item=...)` in a loop)."""
    match = re.search(rf"^(?:fatal|failed): \[{re.escape(host)}\].*$", output, re.MULTILINE)
    assert match, f"{host} did not fail:\n{output}"
    return match.group(0)


def test_engine_preflight(ansible_env: dict[str, str], tmp_path: Path) -> None:
    cases = {
        "ok": {"lockengine_python": sys.executable},
        # the schema allows '.' and capitals in a group name (a hand-copied rule once refused them)
        "group_with_dot": {"lockengine_python": sys.executable, "lockengine_group": "Lock.admins"},
        "bad_io_timeout": {"lockengine_python": sys.executable, "lockengine_io_timeout": 0},
        "bad_host_name": {"lockengine_python": sys.executable, "lockengine_host_name": "a b"},
        "bad_extra": {"lockengine_python": sys.executable, "lockengine_config_extra": {"max_connections": 2}},
        "no_watchdog": {"lockengine_python": sys.executable, "lockengine_watchdog_backend": "none"},
        "bad_python": {"lockengine_python": "/nonexistent/python3"},
    }
    out = _preflight("engine", cases, ansible_env, tmp_path)
    recap = _recap(out)
    for host in ("ok", "group_with_dot"):
        assert recap[host]["failed"] == 0, out
    # The engine's own loader and shipped schema decide, and the message names the role variable and the field.
    assert ("lockengine_io_timeout makes lockengine.conf invalid: io_timeout: 0 is not valid; use a whole number of "
            "seconds from 1 to 255") in _fatal(out, "bad_io_timeout")
    assert "lockengine_host_name makes lockengine.conf invalid: host_name: 'a b' is not valid" in _fatal(out, "bad_host_name")
    assert ("lockengine_config_extra (field max_connections) makes lockengine.conf invalid: max_connections: 2 is not "
            "valid; use a whole number from 4 to 65536") in _fatal(out, "bad_extra")
    assert "set lockengine_watchdog_allow_none: true" in _fatal(out, "no_watchdog")
    assert "lockengine_python=/nonexistent/python3" in _fatal(out, "bad_python")
    for host in ("bad_io_timeout", "bad_host_name", "bad_extra", "no_watchdog", "bad_python"):
        assert recap[host]["failed"] == 1 and recap[host]["changed"] == 0, out


def test_engine_role_refuses_the_pure_python_crc(ansible_env: dict[str, str], tmp_path: Path) -> None:
    """The engine role's CRC check (tasks/crc.yml, run after the install) asks the engine itself which CRC-32C
    it uses: with the venv's Python (crc32c installed) it is C; with a Python that lacks crc32c the role fails
    and says how to fix it, unless lockengine_require_c_crc is false."""
    lib = tmp_path / "prefix" / "lib"
    lib.mkdir(parents=True)
    (lib / "lockengine").symlink_to(REPO / "lockengine")
    bare = tmp_path / "bare"  # a Python with the standard library only
    proc = run([sys.executable, "-m", "venv", "--without-pip", str(bare)])
    assert proc.returncode == 0, explain(proc)
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "lockengine_prefix": str(tmp_path / "prefix")}
    cases = {
        "c_crc": dict(base, lockengine_python=sys.executable),
        "python_crc": dict(base, lockengine_python=str(bare / "bin" / "python3")),
        "python_crc_allowed": dict(base, lockengine_python=str(bare / "bin" / "python3"),
                                   lockengine_require_c_crc=False),
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": cases}}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "crc check", "hosts": "all", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "lockengine.cluster.engine", "tasks_from": "crc.yml"}}],
    }]))
    proc = run([tool("ansible-playbook"), "-i", "inventory.yml", "play.yml"], env=ansible_env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    recap = _recap(out)
    assert recap["c_crc"]["failed"] == 0 and recap["python_crc_allowed"]["failed"] == 0, out
    assert recap["python_crc"]["failed"] == 1, out
    assert "checksums in pure Python (python: crc32c does not import" in _fatal(out, "python_crc")
    assert "python3-crc32c" in _fatal(out, "python_crc")


def test_watchdog_preflight(ansible_env: dict[str, str], tmp_path: Path) -> None:
    cases = {
        "ok": {"lockengine_watchdog_virtual": True, "lockengine_watchdog_device": "/dev/watchdog0"},
        "virtual_without_device": {"lockengine_watchdog_virtual": True},
        "short_fire": {"lockengine_watchdog_fire_timeout": 3},
        "relative_device": {"lockengine_watchdog_device": "watchdog0"},
    }
    out = _preflight("watchdog", cases, ansible_env, tmp_path)
    recap = _recap(out)
    assert recap["ok"]["failed"] == 0, out
    assert "lockengine_watchdog_device is empty" in _fatal(out, "virtual_without_device")
    assert ("lockengine_watchdog_fire_timeout is refused by the engine: watchdog_fire_timeout: 3 is not valid; use a "
            "whole number of seconds from 5 to 600") in _fatal(out, "short_fire")
    assert ("lockengine_watchdog_device is refused by the engine: watchdog.device: 'watchdog0' is not valid; use an "
            "absolute path") in _fatal(out, "relative_device")


def test_lockspace_preflight(ansible_env: dict[str, str], tmp_path: Path) -> None:
    good = [{"name": "LS", "path": "/dev/lockdisk0", "offset": 0, "resources": [{"name": "R1", "offset": "1M"}]}]
    cases = {
        "ok": {"lockengine_lockspaces": good, "lockengine_host_id": 1},
        "empty": {"lockengine_lockspaces": []},
        "colon": {"lockengine_lockspaces": [{"name": "L:S", "path": "/dev/lockdisk0"}]},
        # 30 characters but 60 bytes: the engine counts bytes, as the name is stored on disk
        "long_name": {"lockengine_lockspaces": [{"name": "\u00e9" * 30, "path": "/dev/lockdisk0"}]},
        "relative_path": {"lockengine_lockspaces": [{"name": "LS", "path": "dev/lockdisk0"}]},
        "overlap": {"lockengine_lockspaces": [{"name": "LS", "path": "/dev/lockdisk0", "offset": "1M",
                                               "resources": [{"name": "R1", "offset": 1048576}]}]},
        "no_name": {"lockengine_lockspaces": [{"path": "/dev/lockdisk0"}]},
        "bad_id": {"lockengine_lockspaces": good, "lockengine_host_id": 2001},
    }
    out = _preflight("lockspace", cases, ansible_env, tmp_path)
    recap = _recap(out)
    assert recap["ok"]["failed"] == 0, out
    assert "lockengine_lockspaces must be a non-empty list" in _fatal(out, "empty")
    assert ("lockengine_lockspaces[0].name is refused by the engine: lockspaces[0].name: 'L:S' is not valid; "
            "use a name of 1 to 48 bytes without ':'") in _fatal(out, "colon")
    assert "lockengine_lockspaces[0].name is refused by the engine" in _fatal(out, "long_name")
    assert "at most 48 bytes (60 given)" in _fatal(out, "long_name")
    assert "lockengine_lockspaces[0].path is refused by the engine" in _fatal(out, "relative_path")
    assert "offsets different from each other and from the lockspace's" in _fatal(out, "overlap")
    # The argument spec catches a missing name before the preflight runs.
    assert "missing required arguments: name" in _fatal(out, "no_name")
    assert "lockengine_host_id of bad_id is 2001" in _fatal(out, "bad_id")


def test_role_templates_parse() -> None:
    import jinja2

    templates = sorted((REPO / "roles").glob("*/templates/*.j2"))
    assert templates
    for path in templates:
        try:
            jinja2.Environment().parse(path.read_text())
        except jinja2.TemplateSyntaxError as exc:
            pytest.fail(f"{path.relative_to(REPO)}:{exc.lineno}: {exc.message}")


def test_plain_service_script_starts_and_stops_the_real_daemon(tmp_path: Path) -> None:
    """roles/engine/templates/lockengined-ctl.j2, rendered, on this machine (whose PID 1 is not systemd):
    start, start again (no second daemon), status, stop - only the daemon it started is signalled."""
    import jinja2

    prefix, run_dir, log_dir = tmp_path / "opt", tmp_path / "run", tmp_path / "log"
    for d in (prefix / "bin", prefix / "libexec", log_dir):
        d.mkdir(parents=True)
    daemon = prefix / "bin" / "lockengined"
    # As the launcher template does, with this checkout's engine and this Python.
    daemon.write_text("#!/bin/sh\nexec " + sys.executable + " -I -c 'import sys; sys.path.insert(0, \"" + str(REPO)
                      + "\"); sys.argv[0] = \"lockengined\"; from lockengine.daemon.main import main; sys.exit(main())' \"$@\"\n")
    daemon.chmod(0o755)
    config = tmp_path / "lockengine.conf"
    config.write_text('{"host_name": "ctl-test", "watchdog": {"backend": "none"}, "io_timeout": 1, '
                      '"watchdog_fire_timeout": 10}')
    template = (REPO / "roles" / "engine" / "templates" / "lockengined-ctl.j2").read_text()
    script = prefix / "libexec" / "lockengined-ctl"
    script.write_text(jinja2.Environment(keep_trailing_newline=True).from_string(template).render(
        ansible_managed="test", lockengine_run_dir=str(run_dir), lockengine_log_dir=str(log_dir),
        lockengine_start_timeout=30, lockengine_prefix=str(prefix), lockengine_config_file=str(config)))
    script.chmod(0o755)

    def ctl(verb: str) -> tuple[int, str]:
        proc = run([str(script), verb], timeout=180)
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    started = ctl("start")
    pid = 0
    try:
        assert started[0] == 0 and started[1].startswith("started "), (started, (log_dir / "lockengined.log").read_text())
        pid = int(started[1].split()[1])
        assert (run_dir / "lockengined.sock").exists()
        assert ctl("start") == (0, f"running {pid}")
        assert ctl("status") == (0, f"running {pid}")
        assert ctl("stop") == (0, f"stopped {pid}")
        assert ctl("status") == (3, "not running")
        assert not Path(f"/proc/{pid}").exists()
    finally:
        if pid and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)  # only the daemon this test started


def _role_run(role: str, hostvars: dict[str, Any], env: dict[str, str], tmp: Path,
              *extra: str) -> subprocess.CompletedProcess[str]:
    inventory = {"all": {"hosts": {"h": dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                                             **hostvars)}}}
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "play.yml").write_text(yaml.safe_dump([{"name": role, "hosts": "all", "gather_facts": False,
                                                   "roles": [{"role": f"lockengine.cluster.{role}"}]}]))
    return run([tool("ansible-playbook"), "-i", "inventory.yml", "play.yml", *extra],
               env=dict(env, ANSIBLE_DISPLAY_FAILED_STDERR="0"), cwd=tmp)


def test_watchdog_role_check_mode_predicts_a_driver_load(ansible_env: dict[str, str], tmp_path: Path) -> None:
    """--check on a host without the device: the driver would be loaded, so its device is not checked yet
    (it used to fail "no /dev/watchdogN even after loading softdog" although nothing was loaded)."""
    device = tmp_path / "nodev" / "watchdog9"
    proc = _role_run("watchdog", {"lockengine_watchdog_device": str(device), "lockengine_watchdog_persist": False,
                                  "lockengine_prefix": str(tmp_path / "noengine")},
                     ansible_env, tmp_path, "--check", "--diff")
    assert proc.returncode == 0, explain(proc)
    assert "check mode: softdog would be loaded" in proc.stdout, explain(proc)
    assert not device.parent.exists()


def test_watchdog_role_refuses_a_device_another_program_holds(ansible_env: dict[str, str], tmp_path: Path) -> None:
    """A character device held open by other processes (/dev/null stands in: never a real watchdog here) is
    refused before the daemon would meet EBUSY, naming the holders."""
    with open("/dev/null", "rb"):  # this test process is one holder for sure
        proc = _role_run("watchdog", {"lockengine_watchdog_device": "/dev/null", "lockengine_watchdog_persist": False,
                                      "lockengine_prefix": str(tmp_path / "noengine")}, ansible_env, tmp_path)
    assert proc.returncode != 0, explain(proc)
    fatal = _fatal(proc.stdout + proc.stderr, "h")
    assert "is held open by" in fatal and "Only one program may open a watchdog" in fatal, fatal
    assert f"pid {os.getpid()}" in fatal.replace("  ", " "), fatal
