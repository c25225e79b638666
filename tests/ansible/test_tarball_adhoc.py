"""The built tarball, installed into a fresh collections path, drives real test hosts ad hoc.

The session fixtures build the collection (absolute path) and install the tarball into a private
collections path (conftest). Here the harness (testhosts/) starts two hosts, the shared molecule
converge installs the engine from that installed collection (roles watchdog, engine, lockspace; io_timeout
1 s, fire timeout 10 s), node2 takes R1 with ``lockengine client command``, and plain ``ansible HOST -m
lockengine.cluster.MODULE -a ...`` runs against the harness inventory:

- ``lease_info`` on node1 names node2 as R1's owner (id, name, generation, live, from node1's daemon),
  the same as node2's own ``host_status`` says about itself;
- ``lease_info`` at an offset without a lease fails with a message naming path and offset;
- ``watchdog_info`` on a host whose daemon pets the harness's virtual watchdog (test_build.py covers
  ``ansible localhost -m lockengine.cluster.watchdog_info`` without a daemon).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testhosts import Cluster

from .conftest import FQCN, REPO, explain, run, tool

IO_TIMEOUT = 1
FIRE_TIMEOUT = 10
R1 = "LS:R1:/dev/lockdisk0:1M"


@dataclass
class Hosts:
    cluster: Cluster
    env: dict[str, str]

    def adhoc(self, host: str, module: str, args: str) -> tuple[str, dict[str, Any]]:
        """`ansible HOST -m lockengine.cluster.MODULE -a ARGS`: (SUCCESS|FAILED, the module's result)."""
        proc = run([tool("ansible"), "-i", str(self.cluster.inventory_path), host, "-m", f"{FQCN}.{module}",
                    "-a", args], env=self.env, cwd=REPO, timeout=120)
        # The minimal callback prints "HOST | STATUS => {json}" (STATUS "FAILED!" on failure), after any
        # [ERROR] lines of a failed module.
        found = re.search(rf"^{re.escape(host)} \| (\w+)!? => ", proc.stdout, re.MULTILINE)
        assert found, explain(proc)
        status, body = found.group(1), proc.stdout[found.end():]
        return status, dict(json.loads(body))


@pytest.fixture(scope="module")
def hosts(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    missing = [t for t in ("systemd-nspawn", "losetup", "ip", "ssh") if shutil.which(t) is None]
    assert not missing, f"missing {missing}: run tools/install-system-packages.sh (as root)"
    env = dict(ansible_env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
               ANSIBLE_PIPELINING="1", ANSIBLE_HOST_KEY_CHECKING="0",
               # no ssh master may outlive the hosts (docs/harness.md, pitfalls)
               ANSIBLE_SSH_ARGS="-o ControlMaster=no",
               LOCKENGINE_IO_TIMEOUT=str(IO_TIMEOUT), LOCKENGINE_FIRE_TIMEOUT=str(FIRE_TIMEOUT))
    env.pop("LOCKENGINE_KILL_GRACE", None)
    cluster = Cluster(tmp_path_factory.mktemp("tarball-hosts"))
    try:
        cluster.up(2, watchdog_timeout=FIRE_TIMEOUT)
        proc = run([tool("ansible-playbook"), "-i", str(cluster.inventory_path),
                    str(REPO / "molecule" / "_shared" / "converge.yml")], env=env, cwd=REPO, timeout=900)
        assert proc.returncode == 0, explain(proc)[-15000:]
        yield Hosts(cluster, env)
    finally:
        cluster.down()


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_lease_info_ad_hoc_names_the_owner_on_another_host(hosts: Hosts) -> None:
    rc, out, err = hosts.cluster.run(
        "node2", f"setsid nohup /opt/lockengine/bin/lockengine client command -r {R1} -- /bin/sleep 3600 "
                 "</dev/null >/run/holder.out 2>&1 & echo started")
    assert rc == 0 and "started" in out, (rc, out, err)
    status, me = hosts.adhoc("node2", "host_status", "lockspace=LS")
    assert status == "SUCCESS" and me["joined"] and me["source"] == "daemon", me
    mine = next(h for h in me["hosts"] if h["host_id"] == me["local_host_id"])

    deadline = time.monotonic() + 30
    while True:
        status, info = hosts.adhoc("node1", "lease_info", "path=/dev/lockdisk0 offset=1M")
        assert status == "SUCCESS" and info["changed"] is False, info
        lease = info["leases"][0]
        if lease["held"] and lease["owner_state"] == "live" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert info["daemon_running"] is True
    assert (lease["lockspace"], lease["resource"], lease["offset"]) == ("LS", "R1", 1 << 20)
    assert lease["held"] is True and lease["lver"] >= 1, lease
    assert lease["owner_id"] == me["local_host_id"], f"R1's owner is not node2: {lease}"
    assert lease["owner_name"] == me["local_host_name"], lease
    assert lease["owner_generation"] == mine["generation"] == lease["owner_host_generation"], (lease, mine)
    assert lease["owner_generation_current"] is True
    assert lease["owner_state"] == "live", lease
    assert lease["liveness_source"] == "daemon" and lease["liveness_reason"] is None, lease
    assert lease["request"]["pending"] is False

    # Without an offset the whole device is read: the lockspace area names every host that joined.
    status, whole = hosts.adhoc("node1", "lease_info", "path=/dev/lockdisk0 lockspace=LS name=R1")
    assert status == "SUCCESS", whole
    assert [(w["resource"], w["owner_id"], w["lver"]) for w in whole["leases"]] == [("R1", lease["owner_id"], lease["lver"])]
    [area] = whole["lockspaces"]
    assert area["lockspace"] == "LS"
    assert {h["host_id"]: h["host_name"] for h in area["hosts"]}[me["local_host_id"]] == me["local_host_name"]


@pytest.mark.cluster
@pytest.mark.slow
def test_lease_info_ad_hoc_without_a_lease_there_fails_clearly(hosts: Hosts) -> None:
    status, result = hosts.adhoc("node1", "lease_info", "path=/dev/lockdisk0 offset=5M")
    assert status == "FAILED", result
    assert "/dev/lockdisk0:5242880 holds no resource lease" in result["msg"], result


@pytest.mark.cluster
@pytest.mark.slow
def test_watchdog_info_ad_hoc_on_a_host_whose_daemon_pets_the_virtual_watchdog(hosts: Hosts) -> None:
    pets_before = hosts.cluster.watchdog("node1")["pets"]
    status, result = hosts.adhoc("node1", "watchdog_info", "device=/dev/watchdog0")
    assert status == "SUCCESS" and result["changed"] is False, result
    daemon = result["daemon"]
    assert daemon["running"] is True and daemon["device"] == "/dev/watchdog0", daemon
    assert daemon["fire_timeout"] == FIRE_TIMEOUT
    assert daemon["watchdog"]["petting"] is True and daemon["watchdog"]["armed"] is True, daemon
    [device] = result["devices"]
    assert device["path"] == "/dev/watchdog0" and device["kind"] == "fifo", device
    assert device["in_use_by_daemon"] is True
    # The module reports the daemon's view; the harness, which plays the device, sees the pets arrive
    # (one per test interval, 2 s at a fire timeout of 10 s).
    deadline = time.monotonic() + 5 * FIRE_TIMEOUT
    while hosts.cluster.watchdog("node1")["pets"] <= pets_before and time.monotonic() < deadline:
        time.sleep(0.5)
    harness_view = hosts.cluster.watchdog("node1")
    assert harness_view["pets"] > pets_before and harness_view["armed"], harness_view
    assert harness_view["resets"] == [], harness_view
