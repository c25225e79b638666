# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the lockengine.cluster modules; each section matches an *_argument_spec() in
module_utils/common.py."""

from __future__ import annotations


class ModuleDocFragment(object):

    # lockengine.cluster.common: every module
    DOCUMENTATION = r"""
options:
  lockengine_bin:
    description:
      - Path of the C(lockengine) executable on the managed host.
      - When unset, C(lockengine) is searched in E(PATH) (and the sbin directories), then
        C(/opt/lockengine/bin/lockengine), where the role R(lockengine.cluster.engine,ansible_collections.lockengine.cluster.engine_role) installs it.
    type: path
  run_dir:
    description:
      - Directory of the daemon's socket C(lockengined.sock); passed to the engine as E(LOCKENGINE_RUN_DIR).
    type: path
    default: /run/lockengine
notes:
  - The module calls the C(lockengine) command line with C(--json) on the managed host; it holds no
    on-disk format code of its own.
  - Errors from the engine carry sanlock's error names and codes (for example C(ACQUIRE_IDLIVE -243)),
    returned in RV(ignore:engine_error) on failure.
requirements:
  - lockengine (installed by the role lockengine.cluster.engine) on the managed host.
"""

    # lockengine.cluster.common.geometry: modules that write a lease area
    GEOMETRY = r"""
options:
  sector_size:
    description:
      - Sector size in bytes of the lease area (sanlock C(-Z)).
      - When unset the engine takes it from the device (a regular file is always 512).
      - C(512) allows only O(align_size=1M); C(4096) allows C(1M), C(2M), C(4M) and C(8M).
    type: int
    choices: [512, 4096]
  align_size:
    description:
      - Size of one lease area (sanlock C(-A)); it fixes the number of host ids. 512/1M and 4096/8M hold
        2000 hosts, 4096/1M 250, 4096/2M 500, 4096/4M 1000.
      - Offsets must be multiples of it.
    type: str
    choices: [1M, 2M, 4M, 8M]
"""

    # lockengine.cluster.common.io_timeout
    IO_TIMEOUT = r"""
options:
  io_timeout:
    description:
      - Per-I/O timeout in seconds (sanlock C(-o)). Renewals run every 2 x O(io_timeout) and other hosts
        consider this host dead 8 x O(io_timeout) + the watchdog fire timeout after its last renewal.
      - When unset the engine's default (10, as sanlock) is used.
      - From 1 to 255 (renewals store it in one byte).
    type: int
"""

    # lockengine.cluster.common.area: where a lease area lives
    AREA = r"""
options:
  path:
    description:
      - Block device or file that holds the lease area, as this host sees it (hosts may reach the same
        shared disk through different paths).
      - A colon in the path is escaped for the engine.
    type: path
    required: true
  offset:
    description:
      - Byte offset of the area, a multiple of O(align_size) (at least 1 MiB).
      - Bytes (V(1048576)) or whole MiB with an C(M) suffix (V(1M)), as sanlock writes them.
    type: str
    default: "0"
"""

    # lockengine.cluster.common.attributes: check and diff support of the state-changing modules
    ATTRIBUTES = r"""
attributes:
  action_group:
    description: Use C(group/lockengine.cluster.lockengine) in C(module_defaults) to set its common options.
    support: full
    membership:
      - lockengine.cluster.lockengine
  check_mode:
    description: Can run in check mode and predicts the change without touching the disk or the daemon.
    support: full
  diff_mode:
    description: Returns a before/after view of the lease area or the lockspace membership.
    support: full
  platform:
    description: Target OS family.
    support: full
    platforms: posix
"""

    # lockengine.cluster.common.info_attributes: the read-only modules
    INFO_ATTRIBUTES = r"""
attributes:
  action_group:
    description: Use C(group/lockengine.cluster.lockengine) in C(module_defaults) to set its common options.
    support: full
    membership:
      - lockengine.cluster.lockengine
  check_mode:
    description: Reads only; runs unchanged in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  platform:
    description: Target OS family.
    support: full
    platforms: posix
"""
