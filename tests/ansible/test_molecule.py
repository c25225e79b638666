"""The molecule scenario on the project's test hosts (tests/cluster: systemd-nspawn hosts, a shared
loop-device disk, virtual watchdogs): the three roles converge, a second converge changes nothing,
membership and leases are verified on the real engine and daemon, a host is crashed and its lease
force-released. The collection comes from the session's private install (ANSIBLE_COLLECTIONS_PATH);
molecule's own prerun is off.
"""

from __future__ import annotations

import shutil

import pytest

from .conftest import REPO, explain, run, tool


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_default_scenario(ansible_env: dict[str, str]) -> None:
    missing = [t for t in ("systemd-nspawn", "losetup", "ip", "ssh") if shutil.which(t) is None]
    assert not missing, f"missing {missing}: run tools/install-system-packages.sh (as root)"
    proc = run([tool("molecule"), "test", "-s", "default"], env=ansible_env, cwd=REPO, timeout=1700)
    out = proc.stdout + proc.stderr
    tail = explain(proc)[-15000:]
    assert proc.returncode == 0, tail
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"[default > {step}] Executed: Successful" in out, f"step {step} did not succeed:\n{tail}"
