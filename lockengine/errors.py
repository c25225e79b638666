"""Errors with sanlock's names and numbers, so operators who know sanlock read ours at once."""

from __future__ import annotations

import errno

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
    "EEXIST": -errno.EEXIST,
    "EAGAIN": -errno.EAGAIN,
    "EINVAL": -errno.EINVAL,
    "ENOENT": -errno.ENOENT,
    "ENOSPC": -errno.ENOSPC,
    "EINPROGRESS": -errno.EINPROGRESS,
    "EBUSY": -errno.EBUSY,
    "EIO": -errno.EIO,
    "EPERM": -errno.EPERM,
    "EACCES": -errno.EACCES,
    "EROFS": -errno.EROFS,
    "ESRCH": -errno.ESRCH,
    "ETIMEDOUT": -errno.ETIMEDOUT,
}

NAMES: dict[int, str] = {code: name for name, code in CODES.items()}


class LockError(Exception):
    """An engine failure carrying a sanlock error name and code."""

    def __init__(self, name: str, message: str) -> None:
        if name not in CODES:
            raise ValueError(f"unknown error name {name!r}")
        super().__init__(f"{name} ({CODES[name]}): {message}")
        self.name = name
        self.code = CODES[name]
        self.message = message

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "code": self.code, "message": self.message}


class InputError(ValueError):
    """Bad user input: names the field, the value and what is allowed. Nothing was written."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field}: {value!r} is not valid; {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed

    def as_dict(self) -> dict[str, object]:
        return {"name": "EINVAL", "code": CODES["EINVAL"], "message": str(self), "field": self.field}


def read_only_error(exc: OSError) -> LockError | None:
    """EROFS, or EPERM from a write (a block device set read-only), as "PATH is read-only"; else None.

    Storage names the path in the OSError it raises (``filename``), so the message can say which."""
    if exc.errno not in (errno.EROFS, errno.EPERM) or not exc.filename:
        return None
    return LockError("EROFS", f"{exc.filename} is read-only ({exc.strerror or exc}); make it writable "
                              "(blockdev --setrw, or mount it read-write) or give another path")
