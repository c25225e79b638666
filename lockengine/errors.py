"""Errors with sanlock's names and numbers, so operators who know sanlock read ours at once."""

from __future__ import annotations

import errno as _errno

TYPE_CHECKING = False  # typing, dataclasses and collections stay unloaded: the CLI starts through here
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Literal

# sanlock 3.8 return codes (sanlock_rv.h); names without the SANLK_ prefix.
CODES: dict[str, int] = {
    "ERROR": -201,
    "AIO_TIMEOUT": -202,
    "WD_ERROR": -203,
    "DBLOCK_READ": -210,
    "DBLOCK_WRITE": -211,
    "DBLOCK_LVER": -212,
    "DBLOCK_MBAL": -213,
    "DBLOCK_CHECKSUM": -214,
    "LEADER_READ": -220,
    "LEADER_WRITE": -221,
    "LEADER_DIFF": -222,
    "LEADER_MAGIC": -223,
    "LEADER_VERSION": -224,
    "LEADER_SECTORSIZE": -225,
    "LEADER_LOCKSPACE": -226,
    "LEADER_RESOURCE": -227,
    "LEADER_NUMHOSTS": -228,
    "LEADER_CHECKSUM": -229,
    "ADDLS_SIZES": -230,
    "ADDLS_INVALID_HOSTID": -231,
    "ACQUIRE_LVER": -240,
    "ACQUIRE_LOCKSPACE": -241,
    "ACQUIRE_IDDISK": -242,
    "ACQUIRE_IDLIVE": -243,
    "ACQUIRE_OWNED": -244,
    "ACQUIRE_OTHER": -245,
    "ACQUIRE_SHRETRY": -246,
    "ACQUIRE_OWNED_RETRY": -247,
    "RELEASE_LVER": -250,
    "RELEASE_OWNER": -251,
    "RENEW_OWNER": -260,
    "RENEW_DIFF": -261,
    "HOSTID_BUSY": -262,
    "REQUEST_MAGIC": -270,
    "REQUEST_VERSION": -271,
    "REQUEST_OLD": -272,
    "REQUEST_LVER": -273,
    # errno values sanlock returns as negatives
    "EEXIST": -_errno.EEXIST,
    "EAGAIN": -_errno.EAGAIN,
    "EINVAL": -_errno.EINVAL,
    "ENOENT": -_errno.ENOENT,
    "ENOSPC": -_errno.ENOSPC,
    "EINPROGRESS": -_errno.EINPROGRESS,
    "EBUSY": -_errno.EBUSY,
    "EIO": -_errno.EIO,
    "EPERM": -_errno.EPERM,
    "EACCES": -_errno.EACCES,
    "EROFS": -_errno.EROFS,
    "ESRCH": -_errno.ESRCH,
    "ETIMEDOUT": -_errno.ETIMEDOUT,
}

NAMES: dict[int, str] = {code: name for name, code in CODES.items()}


class LockError(Exception):
    """The engine's one failure type: a sanlock error name and code, what to do, and where it came from.

    ``name`` is one of CODES, or an errno name (``ENOTDIR``) when ``errno`` is given: then the code is
    ``-errno``, as sanlock returns errno values. ``errno`` keeps the operating system's number when the
    failure began as an OSError (a DBLOCK_READ caused by EIO keeps 5). ``field`` names the request
    field at fault, when there is one."""

    def __init__(self, name: str, message: str, *, errno: int | None = None, field: str | None = None) -> None:
        code = CODES.get(name)
        if code is None and errno is not None and _errno.errorcode.get(errno) == name:
            code = -errno
        if code is None:
            raise ValueError(f"unknown error name {name!r}")
        super().__init__(f"{name} ({code}): {message}")
        self.name = name
        self.code = code
        self.message = message
        self.errno = errno
        self.field = field

    def as_dict(self) -> dict[str, object]:
        """The ``error`` object of the daemon's replies and of the CLI's --json output (docs/cli.md)."""
        out: dict[str, object] = {"name": self.name, "code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        if self.errno is not None:
            out["errno"] = self.errno
        return out


class InputError(ValueError):
    """Bad user input: names the field, the value and what is allowed. Nothing was written."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field}: {value!r} is not valid; {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed

    def as_dict(self) -> dict[str, object]:
        return {"name": "EINVAL", "code": CODES["EINVAL"], "message": str(self), "field": self.field}


class StorageIOError(OSError):
    """An I/O on shared storage failed: the OSError (errno, strerror, path) and which I/O it was.

    Raised by storage.DirectStorage; still an OSError, so every ``except OSError`` keeps working. The
    operation and offset let the boundary name the record (``storage_error``)."""

    def __init__(self, errno: int, strerror: str, path: str, op: str, offset: int, length: int) -> None:
        super().__init__(errno, strerror, path)
        self.op = op  # "read" or "write"
        self.offset = offset
        self.length = length


class Area:
    """A lease area a command works on, so a storage failure inside it can name its record.

    Immutable, compared and hashed by its fields (a frozen dataclass, written out: ``dataclasses``
    costs the CLI ~10 ms of start-up)."""

    __slots__ = ("kind", "offset", "path")
    path: str
    offset: int
    kind: Literal["lockspace", "resource"]

    def __init__(self, path: str, offset: int, kind: Literal["lockspace", "resource"]) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "kind", kind)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: an Area is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: an Area is immutable")

    def _fields(self) -> tuple[str, int, str]:
        return (self.path, self.offset, self.kind)

    def __eq__(self, other: object) -> bool:
        return other._fields() == self._fields() if type(other) is Area else NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Area(path={self.path!r}, offset={self.offset!r}, kind={self.kind!r})"


# sanlock's names for a failed I/O on a record: (area kind, first record of the area?, op) -> name.
_RECORD_ERRORS: dict[tuple[str, bool, str], str] = {
    ("resource", True, "read"): "LEADER_READ",  # the leader, or the whole area read with it
    ("resource", True, "write"): "LEADER_WRITE",
    ("resource", False, "read"): "DBLOCK_READ",  # request record, dblocks and mode blocks
    ("resource", False, "write"): "DBLOCK_WRITE",
    ("lockspace", True, "read"): "LEADER_READ",  # delta leases are leader records, one per host slot
    ("lockspace", False, "read"): "LEADER_READ",
    ("lockspace", True, "write"): "LEADER_WRITE",
    ("lockspace", False, "write"): "LEADER_WRITE",
}


def read_only_error(exc: OSError) -> LockError | None:
    """EROFS, or EPERM from a write (a block device set read-only), as "PATH is read-only"; else None.

    Storage names the path in the OSError it raises (``filename``), so the message can say which."""
    if exc.errno not in (_errno.EROFS, _errno.EPERM) or not exc.filename:
        return None
    return LockError("EROFS", f"{exc.filename} is read-only ({exc.strerror or exc}); make it writable "
                              "(blockdev --setrw, or mount it read-write) or give another path", errno=exc.errno)


def _record_of(exc: OSError, areas: Sequence[Area]) -> tuple[Area, bool] | None:
    """The area (nearest at or below the I/O's offset on its path) a StorageIOError fell in."""
    if not isinstance(exc, StorageIOError):
        return None
    below = [a for a in areas if a.path == exc.filename and a.offset <= exc.offset]
    if not below:
        return None
    area = max(below, key=lambda a: a.offset)
    return area, exc.offset == area.offset


def storage_error(exc: OSError, areas: Sequence[Area] = ()) -> LockError:
    """An OSError as a LockError that keeps its errno: EROFS for a read-only device, sanlock's
    LEADER_/DBLOCK_ READ/WRITE when the failed I/O falls in one of ``areas``, else the errno's own name."""
    ro = read_only_error(exc)
    if ro is not None:
        return ro
    num = exc.errno if exc.errno else _errno.EIO
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    found = _record_of(exc, areas)
    if found is not None and isinstance(exc, StorageIOError):
        area, first = found
        return LockError(_RECORD_ERRORS[(area.kind, first, exc.op)], f"{exc.op} of {exc.length} bytes at {exc.offset} on {exc.filename} failed: {reason} "
                               f"({_errno.errorcode.get(num, num)}); check the storage path", errno=num)
    errno_name = _errno.errorcode.get(num)
    if errno_name is None:
        return LockError("ERROR", f"{reason}{where} (errno {num})", errno=num)
    return LockError(errno_name, f"{reason}{where}", errno=num)


def as_lock_error(exc: LockError | OSError, areas: Sequence[Area] = ()) -> LockError:
    """A failure of the storage path as the one error type: a LockError as it is, an OSError through
    ``storage_error``."""
    return exc if isinstance(exc, LockError) else storage_error(exc, areas)


def _wire_form(exc: BaseException) -> Callable[[], dict[str, object]] | None:
    """The ``as_dict`` of anything that knows its own wire form (LockError, InputError, the daemon's
    ProtocolError), else None: what a runtime-checkable Protocol would check, without loading typing."""
    method = getattr(exc, "as_dict", None)
    found: Callable[[], dict[str, object]] | None = method if callable(method) else None
    return found


# A failure that reaches the CLI's top level: the process exits with this code (docs/cli.md).
EXIT_FAILURE = 1


def error_document(exc: BaseException) -> dict[str, object]:
    """The one mapping from any failure to its ``error`` object: the daemon's reply (protocol.error_dict)
    and the CLI's output (cli.output) both come from here. An unexpected exception is ERROR (-201)."""
    as_dict = _wire_form(exc)
    if as_dict is not None:
        return as_dict()
    if isinstance(exc, OSError):
        return storage_error(exc).as_dict()
    return {"name": "ERROR", "code": CODES["ERROR"], "message": f"{type(exc).__name__}: {exc}"}


def is_expected(exc: BaseException) -> bool:
    """A failure the engine reports as such; anything else is a bug (worth a traceback in the log)."""
    return _wire_form(exc) is not None or isinstance(exc, OSError)
