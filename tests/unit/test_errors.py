"""One error type and one path from error to reply (errors.py).

A failure becomes its ``error`` object in one place (``errors.error_document``): the daemon's replies
(protocol.error_dict) and the CLI's output and exit code (cli.output.render_error) come from it. A
failed I/O on shared storage becomes a LockError that keeps its errno, named after the record when the
caller knows its lease areas (LEADER_READ, DBLOCK_WRITE, ...), else after the errno.
"""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest

from lockengine.cli.output import render_error
from lockengine.daemon.protocol import ProtocolError, error_dict
from lockengine.errors import (
    CODES,
    EXIT_FAILURE,
    Area,
    InputError,
    LockError,
    StorageIOError,
    as_lock_error,
    error_document,
    is_expected,
    storage_error,
)
from lockengine.storage import DirectStorage

PATH = "/dev/lockdisk0"
RES = Area(PATH, 1 << 20, "resource")
LS = Area(PATH, 0, "lockspace")


def _io(op: str, offset: int, num: int = errno.EIO, path: str = PATH) -> StorageIOError:
    return StorageIOError(num, os.strerror(num), path, op, offset, 512)


@pytest.mark.parametrize("exc, areas, name", [
    (_io("read", 1 << 20), [LS, RES], "LEADER_READ"),  # the leader (or the area read with it)
    (_io("write", 1 << 20), [LS, RES], "LEADER_WRITE"),
    (_io("read", (1 << 20) + 1024), [LS, RES], "DBLOCK_READ"),  # dblocks, mode blocks, the request record
    (_io("write", (1 << 20) + 5 * 512), [LS, RES], "DBLOCK_WRITE"),
    (_io("read", 3 * 512), [LS, RES], "LEADER_READ"),  # a host's delta lease is a leader record
    (_io("write", 0), [LS, RES], "LEADER_WRITE"),
    (_io("read", 1 << 20), [], "EIO"),  # the record is unknown: the errno's name
    (_io("read", 1 << 20, path="/dev/other"), [LS, RES], "EIO"),  # another path: not these areas
    (OSError(errno.EIO, "Input/output error"), [LS, RES], "EIO"),  # no I/O details (a fault seam's OSError)
    (_io("read", 1 << 20, errno.ENOSPC), [RES], "LEADER_READ"),
])
def test_storage_errors_keep_their_errno_and_name_the_record(exc: OSError, areas: list[Area], name: str) -> None:
    err = storage_error(exc, areas)
    assert err.name == name
    assert err.code == CODES[name]
    assert err.errno == exc.errno
    assert err.as_dict()["errno"] == exc.errno
    if name != "EIO":
        assert os.strerror(exc.errno) in err.message and errno.errorcode[exc.errno] in err.message


def test_as_lock_error_keeps_a_lock_error_and_maps_an_os_error_once() -> None:
    """The renewal history records failures through this: an EIO stays EIO (-5), as it always read; another
    errno keeps its own name instead of being called EIO; a LockError passes unchanged."""
    mine = LockError("RENEW_OWNER", "slot taken")
    assert as_lock_error(mine) is mine
    eio = as_lock_error(_io("write", 0))
    assert (eio.name, eio.code, eio.errno) == ("EIO", -errno.EIO, errno.EIO)
    nospc = as_lock_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert (nospc.name, nospc.code) == ("ENOSPC", -errno.ENOSPC)
    assert as_lock_error(_io("write", 0), [LS]).name == "LEADER_WRITE"  # with its areas, as storage_error


def test_read_only_storage_is_erofs_with_its_errno() -> None:
    err = storage_error(_io("write", 1 << 20, errno.EPERM), [RES])
    assert (err.name, err.code, err.errno) == ("EROFS", -errno.EROFS, errno.EPERM)
    assert PATH in err.message and "--setrw" in err.message


def test_an_errno_sanlock_does_not_name_keeps_its_own_name() -> None:
    err = storage_error(OSError(errno.ENOTDIR, "Not a directory", "/x/y"))
    assert (err.name, err.code, err.errno) == ("ENOTDIR", -errno.ENOTDIR, errno.ENOTDIR)
    assert err.message == "Not a directory (/x/y)"
    with pytest.raises(ValueError):
        LockError("ENOTDIR", "no errno given, so not a known name")
    with pytest.raises(ValueError):
        LockError("NOT_A_NAME", "x", errno=errno.EIO)


@pytest.mark.parametrize("exc", [
    LockError("ACQUIRE_IDLIVE", "held by a live host"),
    LockError("EBUSY", "in use", field="lockspace"),
    InputError("host_id", 0, "give 1 to 2000"),
    ProtocolError("request is not JSON", "cmd"),
    _io("read", 1 << 20),
    OSError(errno.EROFS, "Read-only file system", PATH),
    OSError(errno.ENOTDIR, "Not a directory"),
    ValueError("a bug"),
])
def test_daemon_reply_and_cli_output_come_from_one_mapping(exc: BaseException) -> None:
    doc = error_document(exc)
    assert error_dict(exc) == doc
    out, err = io.StringIO(), io.StringIO()
    assert render_error(exc, True, out=out, err=err) == EXIT_FAILURE == 1
    assert json.loads(out.getvalue()) == {"ok": False, "error": doc}
    assert render_error(exc, False, out=out, err=err) == EXIT_FAILURE
    assert err.getvalue() == f"lockengine: {doc['name']} ({doc['code']}): {doc['message']}\n"
    assert isinstance(doc["code"], int) and doc["code"] < 0
    # Only a failure no layer knows is a bug (a traceback in the log); ERROR (-201) is its reply.
    assert is_expected(exc) == (doc["name"] != "ERROR")


def test_wire_form_is_unchanged_for_engine_errors() -> None:
    assert LockError("ACQUIRE_IDLIVE", "held").as_dict() == {"name": "ACQUIRE_IDLIVE", "code": -243,
                                                             "message": "held"}
    assert error_document(ValueError("bug")) == {"name": "ERROR", "code": -201, "message": "ValueError: bug"}


def test_direct_storage_reports_which_io_failed(tmp_path: Path) -> None:
    """Real O_DIRECT I/O on a file: a read past the end is a short read, a write through a read-only
    handle fails in the kernel; both leave as StorageIOError with the operation, offset and path."""
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(1 << 20))
    with DirectStorage(str(path), sector_size=512) as storage, pytest.raises(StorageIOError) as read:
        storage.read(2 << 20, 512, 5.0)
    assert (read.value.errno, read.value.op, read.value.offset, read.value.filename) == (
        errno.EIO, "read", 2 << 20, str(path))
    assert storage_error(read.value, [Area(str(path), 2 << 20, "resource")]).name == "LEADER_READ"
    with DirectStorage(str(path), sector_size=512, readonly=True) as storage, \
            pytest.raises(StorageIOError) as write:
        storage.write(1024, bytes(512), 5.0)
    assert (write.value.errno, write.value.op, write.value.offset) == (errno.EBADF, "write", 1024)
    err = storage_error(write.value, [Area(str(path), 0, "resource")])
    assert (err.name, err.errno) == ("DBLOCK_WRITE", errno.EBADF)
    assert isinstance(write.value, OSError), "every except OSError in the lease code still catches it"


def test_every_daemon_handler_maps_storage_failures_at_the_boundary() -> None:
    """No OSError leaves a command handler, nor its Future: the daemon's bug branch never sees one."""
    import concurrent.futures

    from lockengine.daemon import commands

    assert all(hasattr(fn, "__wrapped__") for fn, _ in commands.HANDLERS.values()), "every handler is wrapped"

    def raises(d: object, ctx: object, args: dict[str, object]) -> dict[str, object]:
        raise _io("read", 1 << 20)

    with pytest.raises(LockError) as exc:
        commands.at_boundary(raises)(None, None, {})  # type: ignore[arg-type]
    assert (exc.value.name, exc.value.errno) == ("EIO", errno.EIO)  # no areas known here: the errno's name

    inner: concurrent.futures.Future[dict[str, object]] = concurrent.futures.Future()
    out = commands.at_boundary(lambda d, ctx, args: inner)(None, None, {})  # type: ignore[arg-type,return-value]
    assert isinstance(out, concurrent.futures.Future)
    inner.set_exception(_io("write", 0, errno.ENOSPC))
    mapped = out.exception()
    assert isinstance(mapped, LockError) and (mapped.name, mapped.errno) == ("ENOSPC", errno.ENOSPC)

    with pytest.raises(LockError) as known, commands.storage_errors(commands.resource_areas([])):
        raise _io("read", 1 << 20)
    assert known.value.name == "EIO"
