"""The project's test-host harness: systemd-nspawn hosts, shared disks, faults, virtual watchdogs.

    from tests.cluster import Cluster
    cluster = Cluster()          # or Cluster(state_dir)
    cluster.up(3, disks=1, sector_size=512, watchdog_timeout=10)
    ...
    cluster.down()

CLI: ``python -m tests.cluster --help``; documentation: docs/harness.md.
"""

from __future__ import annotations

from .cluster import Cluster, Host, default_image_dir, default_state_dir
from .common import HarnessError, HostTimeout, UnknownHost
from .ssh import HostUnreachable

__all__ = [
    "Cluster",
    "HarnessError",
    "Host",
    "HostTimeout",
    "HostUnreachable",
    "UnknownHost",
    "default_image_dir",
    "default_state_dir",
]
