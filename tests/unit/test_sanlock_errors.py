"""The sanlock socket answers a storage failure through errors.storage_error, the JSON socket's one mapping:
named after the record of the request's lease areas it fell in, EROFS for a read-only device, else the errno."""

from __future__ import annotations

import errno

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.common import reported, result_code
from lockengine.daemon.sanlock.wire import Header, Request, WireDisk, WireLockspace, WireResource
from lockengine.errors import CODES, LockError, StorageIOError

M = 1 << 20
DEV = "/dev/loopX"


def acquire_req() -> Request:
    res = WireResource("LS", "R1", disks=(WireDisk(DEV, M),))
    return Request(Header(cmd=wire.ACQUIRE, data=1), resources=(res,))


def test_a_failed_io_in_a_resource_area_is_named_after_its_record() -> None:
    req = acquire_req()
    cases = [("read", M, "LEADER_READ"), ("write", M, "LEADER_WRITE"), ("read", M + 512, "DBLOCK_READ"),
             ("write", M + 1024, "DBLOCK_WRITE")]
    for op, offset, name in cases:
        exc = StorageIOError(errno.EIO, "Input/output error", DEV, op, offset, 512)
        assert result_code(exc, req) == CODES[name], (op, offset)
        out = reported(exc, req)
        assert isinstance(out, LockError) and out.name == name and out.errno == errno.EIO


def test_a_failed_io_in_a_lockspace_area_and_outside_any() -> None:
    req = Request(Header(cmd=wire.ADD_LOCKSPACE), lockspace=WireLockspace("LS", 1, 0, WireDisk(DEV, 0)))
    exc = StorageIOError(errno.EIO, "Input/output error", DEV, "write", 512, 512)
    assert result_code(exc, req) == CODES["LEADER_WRITE"]
    assert result_code(exc, None) == -errno.EIO  # no area known: the errno's own name


def test_read_only_and_plain_errno() -> None:
    assert result_code(OSError(errno.EROFS, "Read-only file system", DEV)) == -errno.EROFS
    assert result_code(OSError(errno.ENOENT, "No such file or directory", DEV)) == -errno.ENOENT
    assert result_code(OSError(errno.ENOTDIR, "Not a directory", DEV)) == -errno.ENOTDIR
    assert result_code(RuntimeError("a bug")) == -201
