"""The project's test-host harness: systemd-nspawn hosts, shared disks, faults, virtual watchdogs.

    from testhosts import Cluster
    cluster = Cluster()          # or Cluster(state_dir)
    cluster.up(3, disks=1, sector_size=512, watchdog_timeout=10)
    ...
    cluster.down()

CLI: ``python -m testhosts --help``; documentation: docs/harness.md. Not shipped: a product of its own
for the project's tests, the demo and molecule.
"""

from __future__ import annotations

from .cluster import Cluster
from .errors import HarnessError, HostTimeout, HostUnreachable, UnknownHost
from .outputs import Host
from .plan import default_image_dir, default_state_dir

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
