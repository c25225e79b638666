"""The molecule scenarios on the project's test hosts (testhosts/: systemd-nspawn hosts, a shared
loop-device disk, virtual watchdogs). Each converges the three roles, converges again to prove nothing
changes, and verifies on the real engine and daemon:

- ``default``: a dry run, membership, rejoin after a daemon restart and after a reboot of the host, support
  bundle, cluster view, leases: a release request, a refused and a real force-release;
- ``failover``: a lease holder's host is crashed; the lease moves only after its owner counts as dead;
- ``storage_loss``: a holder's storage fails or hangs (the cluster view marks the hung host's stale view); the
  daemon kills the holder (SIGTERM, then SIGKILL), the watchdog goes unpetted (and resets the host whose
  holder cannot be killed), the leases move after;
- ``force_release``: graceful release on request, force-release refused for a live owner, done for a dead one.

The collection comes from the session's private install (ANSIBLE_COLLECTIONS_PATH); molecule's own prerun
is off. docs/collection.md lists each scenario's timeouts and wall time.
"""

from __future__ import annotations

import shutil

import pytest

from .conftest import REPO, explain, run, tool

STEPS = ("create", "converge", "idempotence", "verify", "destroy")


def molecule_test(scenario: str, env: dict[str, str]) -> str:
    missing = [t for t in ("systemd-nspawn", "losetup", "ip", "ssh") if shutil.which(t) is None]
    assert not missing, f"missing {missing}: run tools/install-system-packages.sh (as root)"
    proc = run([tool("molecule"), "test", "-s", scenario], env=env, cwd=REPO, timeout=1700)
    out = proc.stdout + proc.stderr
    tail = explain(proc)[-15000:]
    assert proc.returncode == 0, tail
    for step in STEPS:
        assert f"[{scenario} > {step}] Executed: Successful" in out, f"step {step} did not succeed:\n{tail}"
    return out


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_default_scenario(ansible_env: dict[str, str]) -> None:
    out = molecule_test("default", ansible_env)
    assert "Same id, a generation newer than before the reboot" in out, "the verify did not reach the reboot"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_failover_scenario(ansible_env: dict[str, str]) -> None:
    out = molecule_test("failover", ansible_env)
    assert "R1 moved only after node1 counted as dead" in out, "the verify did not reach its main check"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_storage_loss_scenario(ansible_env: dict[str, str]) -> None:
    out = molecule_test("storage_loss", ansible_env)
    assert "Host 3's row is a disagreement, node2 seeing it fail or dead and node3 live" in out, \
        "the verify did not reach the cluster view"
    assert "reset node2 before R2 moved" in out, "the verify did not reach its watchdog checks"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_force_release_scenario(ansible_env: dict[str, str]) -> None:
    out = molecule_test("force_release", ansible_env)
    assert "Predicted without writing, done once, logged once" in out, "the verify did not reach its last check"
