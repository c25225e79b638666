"""A host with a persistent root (``up --persistent-root``) keeps what it wrote across ``restart``, as a
machine keeps its disk across a reboot; ``down`` unmounts its root. Run as root, like test_harness.py (its
own one-host cluster, after that module's cluster is down)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testhosts import Cluster

pytestmark = pytest.mark.cluster


def _mounts_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_a_persistent_root_survives_restart_and_is_unmounted_by_down(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "state")
    c.up(1, watchdog_timeout=60, persistent_root=True)
    try:
        rc, _, err = c.run("node1", "mkdir -p /opt/le && echo kept > /opt/le/marker && sync", timeout=30)
        assert rc == 0, err
        assert _mounts_below(tmp_path / "state"), "no overlay root mounted for the host"
        c.restart("node1")
        rc, out, err = c.run("node1", "cat /opt/le/marker; cat /etc/machine-id", timeout=30)
        assert rc == 0, err
        assert out.split()[0] == "kept"
        c.crash("node1")
        c.restart("node1")
        rc, out, _ = c.run("node1", "cat /opt/le/marker", timeout=30)
        assert (rc, out.strip()) == (0, "kept")
    finally:
        c.down()
    assert _mounts_below(tmp_path / "state") == []
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
