"""Module logic against a fake `lockengine` (fake_lockengine.py) — an extra seam, run now.

What is checked is the module's own part: which engine commands it issues (and that check mode issues
none that write), its idempotence decisions, its refusals and their messages, the force-release log.
The engine's answers follow docs/cli.md; the real engine and daemon are exercised by molecule.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, run_module

MIB = 1 << 20
DISK = "/dev/fake-shared0"


class FakeEngine:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = tmp / "lockengine"
        self.bin.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).with_name('fake_lockengine.py')} \"$@\"\n")
        self.bin.chmod(0o755)
        self.scenario = tmp / "scenario.json"
        self.calls_file = tmp / "calls.jsonl"
        self.calls_file.write_text("")
        self.run_dir = tmp / "run"
        self.run_dir.mkdir()

    def daemon(self, running: bool = True) -> None:
        sock = self.run_dir / "lockengined.sock"
        if running:
            sock.write_text("")  # the modules only test that it exists before asking the CLI
        elif sock.exists():
            sock.unlink()

    def set(self, **scenario: Any) -> None:
        self.scenario.write_text(json.dumps(scenario))

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def verbs(self) -> list[str]:
        return [" ".join(c[:2]) for c in self.calls]

    def module(self, module: str, check: bool = False, **args: Any) -> dict[str, Any]:
        env = dict(os.environ, FAKE_LOCKENGINE_SCENARIO=str(self.scenario), FAKE_LOCKENGINE_CALLS=str(self.calls_file))
        return run_module(module, dict(args, lockengine_bin=str(self.bin), run_dir=str(self.run_dir)), self.tmp,
                          check=check, env=env)


@pytest.fixture
def fake(tmp_path: Path) -> FakeEngine:
    assert (REPO / "collection").is_dir()
    return FakeEngine(tmp_path)


def lockspace_area(name: str = "LS", hosts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"offset": 0, "kind": "lockspace", "lockspace": name, "sector_size": 512, "align_size": MIB,
            "max_hosts": 2000, "hosts": hosts or [], "valid": True}


def resource_area(offset: int = MIB, **kw: Any) -> dict[str, Any]:
    area = {"offset": offset, "kind": "resource", "lockspace": "LS", "resource": "R1", "sector_size": 512,
            "align_size": MIB, "num_hosts": 2000, "max_hosts": 2000, "owner_id": 2, "owner_generation": 3,
            "lver": 7, "timestamp": 1300, "cleared": False, "valid": True,
            "request": {"lver": 0, "force_mode": 0}, "shared": [], "dblocks": []}
    area.update(kw)
    return area


def dump(*areas: dict[str, Any]) -> dict[str, Any]:
    return {"path": DISK, "offset": 0, "areas": list(areas)}


STATUS_JOINED = {"daemon": {"host_name": "abcd.node1", "pid": 42, "watchdog": {"device": "/dev/watchdog0"},
                            "fire_timeout": 60},
                 "lockspaces": [{"lockspace": "LS", "host_id": 1, "path": DISK, "offset": 0, "io_timeout": 10,
                                 "generation": 2, "state": "JOINED"}],
                 "clients": [], "resources": []}


# ------------------------------------------------------------------ lockspace


def test_initialise_in_check_mode_predicts_and_writes_nothing(fake: FakeEngine) -> None:
    fake.set(dump=dump())
    result = fake.module("lockspace", check=True, name="LS", path=DISK, state="initialized", io_timeout=10)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["diff"]["before"] == {"kind": "empty"}
    assert result["diff"]["after"]["lockspace"] == "LS"
    assert fake.verbs() == ["direct dump"]


def test_initialise_writes_once_then_is_idempotent(fake: FakeEngine) -> None:
    fake.set(dump=dump(), dump_after_init=dump(lockspace_area()))
    first = fake.module("lockspace", name="LS", path=DISK, state="initialized", io_timeout=10)
    assert first["changed"] is True and first["geometry"] == {"sector_size": 512, "align_size": MIB, "max_hosts": 2000}
    init = [c for c in fake.calls if c[:2] == ["direct", "init"]]
    assert init == [["direct", "init", "-s", f"LS:0:{DISK}:0", "-o", "10", "--json"]]
    second = fake.module("lockspace", name="LS", path=DISK, state="initialized", io_timeout=10)
    assert second["changed"] is False
    assert len([c for c in fake.calls if c[:2] == ["direct", "init"]]) == 1


def test_initialise_never_overwrites_another_area_without_force(fake: FakeEngine) -> None:
    fake.set(dump=dump(resource_area(offset=0)))
    result = fake.module("lockspace", name="LS", path=DISK, state="initialized")
    assert result["failed"] and "already holds resource LS:R1" in result["msg"] and "force: true" in result["msg"]
    assert "direct init" not in fake.verbs()
    forced = fake.module("lockspace", name="LS", path=DISK, state="initialized", force=True)
    assert forced["changed"] and fake.calls[-2][-2:] == ["--force", "--json"]


def test_initialise_refuses_an_area_that_fails_validation(fake: FakeEngine) -> None:
    fake.set(dump=dump({"offset": 0, "kind": "lockspace", "valid": False,
                        "error": {"name": "LEADER_CHECKSUM", "code": -229, "message": "bad"}}))
    result = fake.module("lockspace", name="LS", path=DISK, state="initialized")
    assert result["failed"] and "fails validation (LEADER_CHECKSUM)" in result["msg"]


def test_join_calls_add_lockspace_and_reports_the_generation(fake: FakeEngine) -> None:
    fake.daemon()
    fake.set(dump=dump(lockspace_area()), status=dict(STATUS_JOINED, lockspaces=[]),
             replies={"client add_lockspace": {"ok": True, "lockspace": "LS", "host_id": 3, "generation": 5}})
    result = fake.module("lockspace", name="LS", path=DISK, host_id=3, io_timeout=5)
    assert result["changed"] and result["generation"] == 5 and result["daemon_state"] == "JOINED", result
    assert ["client", "add_lockspace", "-s", f"LS:3:{DISK}:0", "-o", "5", "--json"] in fake.calls


def test_join_is_idempotent_and_refuses_another_id(fake: FakeEngine) -> None:
    fake.daemon()
    fake.set(dump=dump(lockspace_area()), status=STATUS_JOINED)
    same = fake.module("lockspace", name="LS", path=DISK, host_id=1)
    assert same["changed"] is False and same["generation"] == 2
    other = fake.module("lockspace", name="LS", path=DISK, host_id=4)
    assert other["failed"] and "already joined on this host as host_id 1" in other["msg"] and "state: left" in other["msg"]
    assert "client add_lockspace" not in fake.verbs()


def test_join_busy_host_id_says_what_to_do(fake: FakeEngine) -> None:
    fake.daemon()
    fake.set(dump=dump(lockspace_area()), status=dict(STATUS_JOINED, lockspaces=[]),
             errors={"client add_lockspace": {"name": "HOSTID_BUSY", "code": -262, "message": "slot busy"}})
    result = fake.module("lockspace", name="LS", path=DISK, host_id=2)
    assert result["failed"] and "another live host holds host_id 2" in result["msg"]
    assert result["engine_error"] == {"name": "HOSTID_BUSY", "code": -262, "message": "slot busy"}


def test_join_without_the_daemon_names_the_fix(fake: FakeEngine) -> None:
    fake.set(dump=dump(lockspace_area()))
    result = fake.module("lockspace", name="LS", path=DISK, host_id=2)
    assert result["failed"] and "needs the lockengine daemon" in result["msg"]
    assert "lockengine.cluster.engine" in result["msg"]


def test_leave_refuses_while_leases_are_held(fake: FakeEngine) -> None:
    fake.daemon()
    held = dict(STATUS_JOINED, resources=[{"lockspace": "LS", "resource": "R1", "path": DISK, "offset": MIB,
                                           "lver": 7, "shared": False, "pid": 4242}])
    fake.set(status=held)
    result = fake.module("lockspace", name="LS", state="left")
    assert result["failed"] and "pids [4242]" in result["msg"] and "force: true" in result["msg"]
    fake.set(status=STATUS_JOINED, replies={"client rem_lockspace": {"ok": True, "state": "REM"}})
    left = fake.module("lockspace", name="LS", state="left")
    assert left["changed"] and ["client", "rem_lockspace", "-s", f"LS:1:{DISK}:0", "--unused", "--json"] in fake.calls


# ------------------------------------------------------------------ resource


def test_resource_refuses_to_wipe_a_held_lease(fake: FakeEngine) -> None:
    fake.set(dump=dump(resource_area(resource="OTHER")))
    result = fake.module("resource", lockspace="LS", name="R1", path=DISK, offset="1M")
    assert result["failed"] and "HELD (owner host_id 2)" in result["msg"] and "force: true" in result["msg"]
    assert "direct init" not in fake.verbs()


def test_resource_existing_is_left_alone_and_cleared_is_reinitialised(fake: FakeEngine) -> None:
    fake.set(dump=dump(resource_area()))
    assert fake.module("resource", lockspace="LS", name="R1", path=DISK, offset="1M")["changed"] is False
    fake.set(dump=dump(resource_area(cleared=True)), dump_after_init=dump(resource_area(timestamp=0)))
    result = fake.module("resource", lockspace="LS", name="R1", path=DISK, offset="1M", num_hosts=8)
    assert result["changed"]
    assert ["direct", "init", "-r", f"LS:R1:{DISK}:{MIB}", "-n", "8", "--json"] in fake.calls


# ------------------------------------------------------------------ lease


def _host_status(state: str, generation: int = 3) -> dict[str, Any]:
    return {"LS": {"lockspace": "LS", "hosts": [{"host_id": 2, "generation": generation, "state": state,
                                                 "host_name": "abcd.node2"}]}}


def test_force_release_refuses_a_live_owner_and_logs_nothing(fake: FakeEngine, tmp_path: Path) -> None:
    fake.daemon()
    fake.set(dump=dump(resource_area()), status=STATUS_JOINED, host_status=_host_status("LIVE"))
    log = tmp_path / "log" / "force-release.log"
    result = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="force_released",
                         log_file=str(log))
    assert result["failed"] and "may be alive" in result["msg"] and "owner_fenced: true" in result["msg"]
    assert "abcd.node2" in result["msg"]
    assert "direct release" not in fake.verbs() and not log.exists()


def test_force_release_without_liveness_needs_the_fencing_statement(fake: FakeEngine, tmp_path: Path) -> None:
    fake.set(dump=dump(resource_area()))
    log = tmp_path / "force-release.log"
    refused = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="force_released",
                          log_file=str(log))
    assert refused["failed"] and "not running" in refused["msg"]
    fenced = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="force_released",
                         owner_fenced=True, reason="INC-1", log_file=str(log))
    assert fenced["changed"] and fenced["released"]
    release = next(c for c in fake.calls if c[:2] == ["direct", "release"])
    assert release[:8] == ["direct", "release", "-r", f"LS:R1:{DISK}:{MIB}", "-i", "2", "-g", "3"]
    assert release[release.index("--reason") + 1] == "INC-1" and release[release.index("--audit-log") + 1] == str(log)
    assert "--force" in release and "owner_fenced=true" in release
    line = log.read_text().splitlines()
    assert len(line) == 1 and "owner_id=2" in line[0] and "owner_fenced=true" in line[0] and "INC-1" in line[0]
    assert fenced["log_line"] == line[0]


def test_force_release_of_a_dead_owner_check_mode_then_real(fake: FakeEngine, tmp_path: Path) -> None:
    fake.daemon()
    fake.set(dump=dump(resource_area()), status=STATUS_JOINED, host_status=_host_status("DEAD"))
    log = tmp_path / "force-release.log"
    args = dict(lockspace="LS", name="R1", path=DISK, offset="1M", state="force_released", log_file=str(log), lver=7)
    predicted = fake.module("lease", check=True, **args)
    assert predicted["changed"] and "direct release" not in fake.verbs() and not log.exists()
    done = fake.module("lease", **args)
    assert done["changed"] and "owner_state=dead" in log.read_text()
    fake.set(dump=dump(resource_area(timestamp=0)), status=STATUS_JOINED, host_status=_host_status("DEAD"))
    again = fake.module("lease", **args)
    assert again["changed"] is False and len(log.read_text().splitlines()) == 1


def test_force_release_after_the_owner_rejoined(fake: FakeEngine, tmp_path: Path) -> None:
    fake.daemon()
    fake.set(dump=dump(resource_area()), status=STATUS_JOINED, host_status=_host_status("LIVE", generation=4))
    result = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="force_released",
                         log_file=str(tmp_path / "l.log"))
    assert result["changed"], result


def test_lver_guard(fake: FakeEngine) -> None:
    fake.set(dump=dump(resource_area()))
    result = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="released", lver=6)
    assert result["failed"] and "at lver 7, not 6" in result["msg"]


def test_release_request_goes_through_the_daemon_once(fake: FakeEngine) -> None:
    fake.daemon()
    fake.set(dump=dump(resource_area()), status=STATUS_JOINED, host_status=_host_status("LIVE"),
             replies={"client request": {"ok": True, "lver": 8, "owner_id": 2}})
    result = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="released", mode="force")
    assert result["changed"] and result["request"] == {"lver": 8, "force_mode": "force", "owner_id": 2}
    assert ["client", "request", "-r", f"LS:R1:{DISK}:{MIB}:8", "-f", "force", "--json"] in fake.calls
    # The request is on disk now: a graceful one is covered by it.
    fake.set(dump=dump(resource_area(request={"lver": 8, "force_mode": 1})), status=STATUS_JOINED,
             host_status=_host_status("LIVE"))
    again = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="released")
    assert again["changed"] is False and "already pending" in again["msg"]


def test_release_request_needs_this_host_joined(fake: FakeEngine) -> None:
    fake.set(dump=dump(resource_area()))
    result = fake.module("lease", lockspace="LS", name="R1", path=DISK, offset="1M", state="released")
    assert result["failed"] and "joined to lockspace LS" in result["msg"]


# ------------------------------------------------------------------ info modules and input checks


def test_host_status_from_disk_before_joining(fake: FakeEngine) -> None:
    hosts = [{"host_id": 1, "owner_id": 1, "generation": 2, "timestamp": 0, "host_name": "abcd.node1", "io_timeout": 10},
             {"host_id": 2, "owner_id": 2, "generation": 1, "timestamp": 99, "host_name": "abcd.node2", "io_timeout": 10}]
    fake.set(dump=dump(lockspace_area(hosts=hosts)))
    result = fake.module("host_status", lockspace="LS", path=DISK)
    assert result["source"] == "disk" and result["joined"] is False and result["daemon_running"] is False
    assert [(h["host_id"], h["name"], h["state"]) for h in result["hosts"]] == \
        [(1, "abcd.node1", "free"), (2, "abcd.node2", "unknown")]


def test_lease_info_names_the_owner_from_the_lockspace_area(fake: FakeEngine) -> None:
    hosts = [{"host_id": 2, "owner_id": 2, "generation": 3, "timestamp": 99, "host_name": "abcd.node2"}]
    fake.set(dump=dump(lockspace_area(hosts=hosts), resource_area()))
    result = fake.module("lease_info", path=DISK)
    (lease,) = result["leases"]
    assert lease["owner_name"] == "abcd.node2" and lease["owner_state"] == "unknown" and lease["held"]
    assert "dblocks" not in lease and result["lockspaces"][0]["lockspace"] == "LS"


@pytest.mark.parametrize(("module", "args", "message"), [
    ("lockspace", {"name": "LS", "path": DISK, "offset": "3M", "align_size": "2M", "state": "initialized"},
     "offset: 3M (3145728 bytes) is not a multiple of the align size 2 MiB"),
    ("lockspace", {"name": "LS", "path": DISK, "sector_size": 512, "align_size": "4M", "state": "initialized"},
     "align_size: 4M is not allowed with sector_size 512"),
    ("lockspace", {"name": "L:S", "path": DISK, "state": "initialized"}, "name: 'L:S' contains ':'"),
    ("lockspace", {"name": "LS", "path": DISK, "state": "joined"}, "state is joined but all of the following are missing: host_id"),
    ("resource", {"lockspace": "LS", "name": "R1", "path": DISK, "offset": "1M", "num_hosts": 0}, "num_hosts: 0 is out of range"),
    ("lease", {"lockspace": "LS", "name": "R1", "path": DISK, "offset": "1M", "state": "released", "owner_fenced": True},
     "owner_fenced: only applies to state: force_released"),
])
def test_bad_input_fails_before_the_engine_is_called(fake: FakeEngine, module: str, args: dict[str, Any],
                                                     message: str) -> None:
    fake.set(dump=dump())
    result = fake.module(module, **args)
    assert result.get("failed") and message in result["msg"], result
    assert fake.calls == []


def test_a_missing_lockengine_bin_is_named(fake: FakeEngine) -> None:
    fake.bin.unlink()
    fake.set(dump=dump())
    result = fake.module("lease_info", path=DISK)
    assert result["failed"] and result["msg"].startswith(f"lockengine_bin: {fake.bin} does not exist")
