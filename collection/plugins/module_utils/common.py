# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared argument specs and input checks for the lockengine.cluster modules.

Each *_argument_spec() matches one section of the doc fragment lockengine.cluster.common, the way
community.postgresql pairs postgres_common_argument_spec() with its fragment. The checks here catch
what Ansible's type system cannot (geometry combinations, offsets, names) so that a bad value fails
before the engine is called, with the option name, the value and the fix.

This is the collection's ONE copy of the engine's rules (the modules and the filter plugins import it;
hosts that run the modules have only the collection, not the engine's package). tests/ansible/test_drift.py
fails when a table here drifts from the engine's: geometry, host-id limit, offset syntax, run dir and
socket name, the audit log's default path.
"""

from __future__ import annotations

import re

DEFAULT_RUN_DIR = "/run/lockengine"
RUN_DIR_ENV = "LOCKENGINE_RUN_DIR"
FALLBACK_BIN = "/opt/lockengine/bin/lockengine"
SOCKET_NAME = "lockengined.sock"
# The engine's force-release audit log (lockengine/audit.py DEFAULT_LOG); the lease module's log_file default.
AUDIT_LOG = "/var/log/lockengine/force-release.log"

MIB = 1024 * 1024
ALIGN_SIZES = {"1M": MIB, "2M": 2 * MIB, "4M": 4 * MIB, "8M": 8 * MIB}
# The only sector/align pairs sanlock 3.8 accepts, with the number of host ids each holds.
MAX_HOSTS = {
    (512, MIB): 2000,
    (4096, MIB): 250,
    (4096, 2 * MIB): 500,
    (4096, 4 * MIB): 1000,
    (4096, 8 * MIB): 2000,
}
NAME_MAX_BYTES = 48
PATH_MAX_BYTES = 1024  # including the NUL sanlock stores: paths are at most 1023 bytes
HOST_ID_MAX = max(MAX_HOSTS.values())
# Renewals store io_timeout & 0xFF in the delta record: a larger value would be read back wrong by peers.
IO_TIMEOUT_MAX = 255

# The engine's syntax (lockengine.strings.parse_offset): ASCII digits, then M (MiB), K (KiB) or nothing;
# whitespace around it (templating leaves some) is dropped first.
_OFFSET_RE = re.compile(r"^([0-9]+)([MmKk]?)$")
_SUFFIX = {"": 1, "k": 1024, "m": MIB}


def common_argument_spec():
    """Options every module has: where the engine is and where its daemon listens."""
    return dict(
        lockengine_bin=dict(type="path"),
        run_dir=dict(type="path", default=DEFAULT_RUN_DIR),
    )


def geometry_argument_spec():
    """Sector and align size of a lease area (sanlock's -Z and -A)."""
    return dict(
        sector_size=dict(type="int", choices=[512, 4096]),
        align_size=dict(type="str", choices=sorted(ALIGN_SIZES)),
    )


def io_timeout_argument_spec():
    return dict(io_timeout=dict(type="int"))


def area_argument_spec(offset_required=False):
    """Where a lease area is: a path (block device or file) and a byte offset."""
    offset = dict(type="str", required=True) if offset_required else dict(type="str", default="0")
    return dict(path=dict(type="path", required=True), offset=offset)


def align_bytes(align_size):
    return ALIGN_SIZES[align_size] if align_size else None


def offset_bytes(value, option="offset"):
    """An offset as sanlock writes it (bytes, or a whole number of MiB with an M suffix) -> bytes."""
    match = None if isinstance(value, bool) else _OFFSET_RE.match(str(value).strip())
    if not match:
        raise ValueError(
            "%s: %r is not an offset; give bytes (1048576) or MiB with an M suffix (1M)" % (option, value)
        )
    return int(match.group(1)) * _SUFFIX[match.group(2).lower()]


def parse_offset(value, option="offset", align=None):
    """offset_bytes, and a multiple of the area's align size (which is at least 1 MiB)."""
    text = str(value)
    number = offset_bytes(value, option)
    step = align or MIB
    if number % step:
        raise ValueError(
            "%s: %s (%d bytes) is not a multiple of the align size %d MiB; use e.g. %dM or %dM"
            % (option, text.strip(), number, step // MIB, (number // step) * step // MIB,
               (number // step + 1) * step // MIB)
        )
    return number


def check_geometry(sector_size, align_size):
    """Refuse the sector/align pairs sanlock refuses, before anything touches the disk."""
    if sector_size is None or align_size is None:
        return
    if (sector_size, ALIGN_SIZES[align_size]) not in MAX_HOSTS:
        raise ValueError(
            "align_size: %s is not allowed with sector_size %d (allowed: 512 with 1M; 4096 with 1M, 2M, 4M "
            "or 8M); use align_size: 1M or sector_size: 4096" % (align_size, sector_size)
        )


def check_name(value, option):
    raw = value.encode("utf-8")
    if not raw:
        raise ValueError("%s: must not be empty" % option)
    if len(raw) > NAME_MAX_BYTES:
        raise ValueError(
            "%s: %r is %d bytes long; lockspace and resource names hold at most %d bytes"
            % (option, value, len(raw), NAME_MAX_BYTES)
        )
    if ":" in value or "\0" in value:
        raise ValueError(
            "%s: %r contains ':' or NUL, which separate fields in lockspace/resource strings; "
            "choose a name without them" % (option, value)
        )


def check_path(value, option="path"):
    if len(value.encode("utf-8")) >= PATH_MAX_BYTES:
        raise ValueError("%s: paths are shorter than %d bytes" % (option, PATH_MAX_BYTES))
    if not value.startswith("/"):
        raise ValueError("%s: %r must be an absolute path" % (option, value))


def check_host_id(value, option="host_id", geometry=None):
    if value is None:
        return
    limit = MAX_HOSTS.get(geometry, HOST_ID_MAX) if geometry else HOST_ID_MAX
    if not 1 <= value <= limit:
        raise ValueError(
            "%s: %d is out of range; host ids run from 1 to %d%s"
            % (option, value, limit, " for this sector/align size" if geometry else "")
        )


def check_io_timeout(value, option="io_timeout"):
    if value is None:
        return
    if not 1 <= value <= IO_TIMEOUT_MAX:
        raise ValueError(
            "%s: %d is out of range; use 1 to %d seconds (sanlock's default is 10)" % (option, value, IO_TIMEOUT_MAX)
        )


def escape_path(path):
    """A colon inside a path is written as '\\:' in lockspace and resource strings (cli.md)."""
    return path.replace(":", "\\:")


def lockspace_string(name, host_id, path, offset):
    return "%s:%d:%s:%d" % (name, host_id or 0, escape_path(path), offset)


def resource_string(lockspace, resource, path, offset, lver=None):
    text = "%s:%s:%s:%d" % (lockspace, resource, escape_path(path), offset)
    return text if lver is None else "%s:%d" % (text, lver)


def validated(module, checks):
    """Run (callable, args...) checks; fail the module with the first message."""
    for check in checks:
        try:
            check[0](*check[1:])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
