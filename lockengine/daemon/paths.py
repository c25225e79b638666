"""May this client name this path? Checked by opening it with the client's own credentials.

The daemon runs as root and could open any file, so a path from a client that is not root is first
opened for reading and writing by a short-lived child that has dropped to the client's uid, gid and
supplementary groups. That is exactly the kernel's own decision — ACLs, search permission on every
directory, read-only devices, LSMs — rather than our imitation of it from st_mode bits. The child
reports the device and inode it opened; the daemon then compares them with what its own storage
handle for that path has open, so a path swapped in between (a symlink replaced) is refused, not
followed. Only block devices and regular files are accepted, and every refusal names the path but
never anything read from it: a client learns no more than it could learn itself.

A fork (not an exec) because the daemon's interpreter may not be executable by the client (it may
live under root's home); the child runs only a few system calls before ``_exit``.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from .authz import Refused
from .clients import PeerCred

warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning)

CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class FileId:
    dev: int
    ino: int


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a block device or regular file"


def check_kind(path: str, mode: int, field: str) -> None:
    if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
        raise InputError(field, path, f"it is {_kind(mode)}; give a block device or a regular file")


def _fail(path: str, err: int, cred: PeerCred, field: str) -> Refused | InputError:
    if err == errno.ENOENT:
        return InputError(field, path, "no such file or device; give an existing block device or file")
    if err in (errno.EROFS,):
        return Refused("EROFS", f"{path} is read-only; leases need a device or file open for writing", field)
    if err in (errno.EACCES, errno.EPERM):
        return Refused("EACCES", f"{path}: you (uid {cred.uid}) may not open it for reading and writing; give a "
                                 "device or file your user or one of its groups may read and write", field)
    return InputError(field, path, f"cannot open it ({errno.errorcode.get(err, err)}: {os.strerror(err)})")


def _child(path: str, cred: PeerCred, w: int) -> None:
    """In the forked child: become the client, try the open, report ``code dev ino mode``."""
    code, dev, ino, mode = 0, 0, 0, 0
    try:
        os.setgroups(list(cred.groups))
        os.setgid(cred.gid)
        os.setuid(cred.uid)
        st = os.stat(path)
        if stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode):  # never open a FIFO or a tty
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            st = os.fstat(fd)
            os.close(fd)
        dev, ino, mode = st.st_dev, st.st_ino, st.st_mode
    except OSError as exc:
        code = exc.errno or errno.EIO
    os.write(w, f"{code} {dev} {ino} {mode}".encode())


def open_as(path: str, cred: PeerCred, field: str = "path", timeout: float = CHECK_TIMEOUT) -> FileId:
    """Open ``path`` as the client would; its identity, or a refusal naming ``field``."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: nothing here may raise into the daemon's code
        try:
            os.close(r)
            _child(path, cred, w)
        finally:
            os._exit(0)
    os.close(w)
    try:
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, 9)
                raise InputError(field, path, f"checking access to it took over {timeout:g} s (hung storage?)")
            chunk = os.read(r, 128)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    try:
        code, dev, ino, mode = (int(x) for x in data.split())
    except ValueError:
        raise InputError(field, path, "the access check of this path failed; try again") from None
    if code:
        raise _fail(path, code, cred, field)
    check_kind(path, mode, field)
    return FileId(dev, ino)


def under_prefixes(path: str, prefixes: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == p or real.startswith(p.rstrip("/") + "/") for p in prefixes)


def authorize_path(path: str, cred: PeerCred, prefixes: Sequence[str], field: str = "path") -> FileId:
    """The checks every path from a client passes before the daemon opens it."""
    if prefixes and not cred.admin and not under_prefixes(path, prefixes):
        raise Refused("EACCES", f"{path} is outside the paths this daemon serves to non-administrators "
                                f"({', '.join(prefixes)})", field)
    if cred.uid != 0:
        return open_as(path, cred, field)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _fail(path, exc.errno or errno.EIO, cred, field) from None
    check_kind(path, st.st_mode, field)
    return FileId(st.st_dev, st.st_ino)


def check_same(path: str, checked: FileId, opened: os.stat_result, field: str = "path") -> None:
    """The daemon's own handle must be the file the client was allowed to open."""
    if (opened.st_dev, opened.st_ino) != (checked.dev, checked.ino):
        raise Refused("EACCES", f"{path} changed while it was checked (a replaced link?); not used", field)
