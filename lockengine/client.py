"""Python client for lockengined: one connection, one request and one reply per line (JSON).

    from lockengine.client import Client
    with Client() as c:                      # $LOCKENGINE_RUN_DIR/lockengined.sock
        c.register()                         # this process becomes the lease holder
        c.acquire(["LS:R1:/dev/loop0:1048576"])
        ...                                  # the lease is released when we release or exit

Every failure is a ``DaemonError`` (a ``LockError``, so ``except LockError`` catches it too) with a
name, a code and a message that says what to do:

* ``SocketMissing`` (ENOENT): no socket — the daemon is not started, or the run dir is wrong;
* ``DaemonNotRunning`` (ECONNREFUSED): a socket file without a daemon behind it (it died);
* ``SocketPermission`` (EACCES): not root and not in the socket's group;
* ``DaemonGone`` (ECONNRESET): the daemon closed the connection without replying;
* ``BadReply`` (EPROTO): the reply was not the protocol (wrong program on the socket, version skew);
* ``DaemonTimeout`` (ETIMEDOUT): no reply within the timeout given;
* ``RemoteError``: the daemon answered with an error, e.g. ACQUIRE_IDLIVE (-243).
"""

from __future__ import annotations

# Imports are kept to what `lockengine client status` needs (tests/unit/test_cli_imports.py): the C
# modules _socket and _thread instead of socket (which loads selectors, array, enum) and threading,
# the endpoint constants without the daemon's protocol module, and typing only for the type checker.
import _socket
import errno
import grp
import json
import os
import stat
from _thread import allocate_lock

from .endpoint import DEFAULT_RUN_DIR, RUN_DIR_ENV, SOCKET_NAME
from .endpoint import VERSION as PROTOCOL_VERSION
from .errors import LockError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TypeAlias

    from .strings import ResourceSpec

    ResourceArg: TypeAlias = "str | ResourceSpec | dict[str, Any]"

MAX_REPLY = 64 * 1024 * 1024


class DaemonError(LockError):
    """Anything that went wrong talking to the daemon. Names and codes are sanlock's or errno's."""

    def __init__(self, name: str, code: int, message: str, field: str | None = None,
                 os_errno: int | None = None) -> None:
        Exception.__init__(self, f"{name} ({code}): {message}")
        self.name = name
        self.code = code
        self.message = message
        self.field = field
        # The errno the daemon kept (a LEADER_READ caused by EIO: 5), or an errno name's own number.
        if os_errno is None and errno.errorcode.get(-code) == name:
            os_errno = -code
        self.errno = os_errno


class DaemonUnavailable(DaemonError):
    """No daemon could be reached."""


class SocketMissing(DaemonUnavailable):
    pass


class DaemonNotRunning(DaemonUnavailable):
    pass


class SocketPermission(DaemonUnavailable):
    pass


class DaemonGone(DaemonUnavailable):
    pass


class BadReply(DaemonError):
    pass


class DaemonTimeout(DaemonError):
    pass


class RemoteError(DaemonError):
    """The daemon refused the request; ``name``/``code`` are sanlock's (e.g. ACQUIRE_IDLIVE, -243)."""


def run_dir(env: dict[str, str] | None = None) -> str:
    environ = os.environ if env is None else env
    return environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR


def socket_path(run_directory: str | None = None) -> str:
    return os.path.join(run_directory or run_dir(), SOCKET_NAME)


def _socket_access(path: str) -> str:
    """Who may use the socket, from its real owner, group and mode (the config may name another group)."""
    try:
        st = os.stat(path)
    except OSError:
        return (f"its directory {os.path.dirname(path) or '.'} is not open to you; run as root or ask the "
                "administrator for access to lockengined's run directory")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = f"gid {st.st_gid}"
    if st.st_mode & 0o060 == 0o060:
        return f"run as root or as a member of the socket's group {group!r} (mode {stat.S_IMODE(st.st_mode):04o})"
    return (f"the socket is mode {stat.S_IMODE(st.st_mode):04o}, for root only (the daemon's socket_group did "
            "not exist when it started); run as root")


def _connect_error(path: str, exc: OSError) -> DaemonError:
    hint = f"(set {RUN_DIR_ENV} if the daemon uses another run dir)"
    if exc.errno == errno.ENOENT:
        return SocketMissing("ENOENT", -errno.ENOENT,
                             f"no daemon socket at {path}: lockengined is not running {hint}")
    if exc.errno == errno.ECONNREFUSED:
        return DaemonNotRunning("ECONNREFUSED", -errno.ECONNREFUSED,
                                f"nothing listens on {path}: lockengined has stopped or crashed; start it again")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SocketPermission("EACCES", -errno.EACCES, f"permission denied on {path}: {_socket_access(path)}")
    if exc.errno == errno.ENOTSOCK or exc.errno == errno.ENOTDIR:
        return SocketMissing("ENOENT", -errno.ENOENT, f"{path} is not a socket {hint}")
    return DaemonUnavailable("EIO", -errno.EIO, f"cannot connect to {path}: {exc.strerror or exc}")


def resource_arg(res: ResourceArg) -> str | dict[str, Any]:
    """The wire form of a resource: sanlock's string, or a dict with named fields."""
    from .strings import ResourceSpec, format_resource  # not at import: `client status` never needs it

    if isinstance(res, ResourceSpec):
        return format_resource(res)
    if isinstance(res, (str, dict)):
        return res
    raise TypeError(f"a resource is a string LS:RES:PATH:OFF, a dict or a ResourceSpec, not {type(res).__name__}")


class Client:
    """A connection to lockengined. Thread-safe: calls on one Client are serialised."""

    def __init__(self, path: str | None = None, *, run_directory: str | None = None,
                 timeout: float | None = None) -> None:
        self.path = path or socket_path(run_directory)
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._buf = bytearray()
        self._lock = allocate_lock()
        self._seq = 0

    # ------------------------------------------------------------------ connection

    def connect(self) -> Client:
        if self._sock is None:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise _connect_error(self.path, exc) from None
            self._sock = sock
            self._buf.clear()
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def fileno(self) -> int:
        self.connect()
        assert self._sock is not None
        return self._sock.fileno()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return the reply's result; raise a DaemonError on any failure."""
        with self._lock:
            self.connect()
            assert self._sock is not None
            self._seq += 1
            line = json.dumps({"v": PROTOCOL_VERSION, "id": self._seq, "cmd": cmd, "args": args or {}},
                              separators=(",", ":")).encode() + b"\n"
            self._sock.settimeout(timeout if timeout is not None else self.timeout)
            try:
                self._sock.sendall(line)
                raw = self._read_line()
            except TimeoutError:
                self.close()  # the reply may still come: this connection is out of step now
                raise DaemonTimeout("ETIMEDOUT", -errno.ETIMEDOUT,
                                    f"no reply to {cmd!r} from {self.path} within {timeout or self.timeout} s") from None
            except (BrokenPipeError, ConnectionResetError):
                self.close()
                raise DaemonGone("ECONNRESET", -errno.ECONNRESET,
                                 f"lockengined closed the connection during {cmd!r}: it stopped or crashed") from None
            return self._parse(raw, cmd)

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line
            if len(self._buf) > MAX_REPLY:
                self.close()
                raise BadReply("EPROTO", -errno.EPROTO, f"reply from {self.path} exceeds {MAX_REPLY} bytes "
                                                        "without a newline: not a lockengined socket?")
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                self.close()
                raise DaemonGone("ECONNRESET", -errno.ECONNRESET,
                                 f"lockengined at {self.path} closed the connection without replying: it stopped "
                                 "or crashed, or refused the request")
            self._buf += chunk

    def _parse(self, raw: bytes, cmd: str) -> dict[str, Any]:
        def bad(why: str) -> BadReply:
            self.close()
            shown = raw[:120].decode("utf-8", "replace")
            return BadReply("EPROTO", -errno.EPROTO, f"malformed reply to {cmd!r} from {self.path}: {why} "
                                                     f"(got {shown!r}); is lockengined of this version listening?")

        try:
            msg = json.loads(raw)
        except ValueError:
            raise bad("not JSON") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("ok"), bool):
            raise bad("not a reply object with \"ok\"")
        if msg.get("v") != PROTOCOL_VERSION:
            raise bad(f"protocol version {msg.get('v')!r}, this client speaks {PROTOCOL_VERSION}")
        if msg["ok"]:
            result = msg.get("result", {})
            if not isinstance(result, dict):
                raise bad("\"result\" is not an object")
            return result
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("name"), str) or not isinstance(err.get("code"), int):
            raise bad("an error without name and code")
        field, os_errno = err.get("field"), err.get("errno")
        raise RemoteError(err["name"], err["code"], str(err.get("message", "")),
                          field if isinstance(field, str) else None,
                          os_errno if isinstance(os_errno, int) and not isinstance(os_errno, bool) else None)

    # ------------------------------------------------------------------ verbs

    def hello(self) -> dict[str, Any]:
        return self.call("hello")

    def register(self, name: str | None = None, killpath: Sequence[str] | None = None) -> dict[str, Any]:
        """Make this process a lease holder; its leases are released when it exits or closes us."""
        args: dict[str, Any] = {}
        if name is not None:
            args["name"] = name
        if killpath is not None:
            args["killpath"] = list(killpath)
        return self.call("register", args)

    def killpath(self, argv: Sequence[str]) -> dict[str, Any]:
        return self.call("killpath", {"argv": list(argv)})

    def add_lockspace(self, lockspace: str, host_id: int, path: str, offset: int = 0, *, io_timeout: int = 0,
                      wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        return self.call("add_lockspace", {"lockspace": lockspace, "host_id": host_id, "path": path,
                                           "offset": offset, "io_timeout": io_timeout, "wait": wait},
                         timeout=timeout)

    def inq_lockspace(self, lockspace: str) -> dict[str, Any]:
        return self.call("inq_lockspace", {"lockspace": lockspace})

    def rem_lockspace(self, lockspace: str, *, unused: bool = False) -> dict[str, Any]:
        return self.call("rem_lockspace", {"lockspace": lockspace, "unused": unused})

    def acquire(self, resources: Sequence[ResourceArg], *, pid: int | None = None, nowait: bool = False,
                timeout: float | None = None, num_hosts: int = 0) -> dict[str, Any]:
        args: dict[str, Any] = {"resources": [resource_arg(r) for r in resources], "nowait": nowait}
        if pid is not None:
            args["pid"] = pid
        if num_hosts:
            args["num_hosts"] = num_hosts
        return self.call("acquire", args, timeout=timeout)

    def release(self, resources: Sequence[ResourceArg] | None = None, *, pid: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"all": True} if resources is None else {"resources": [resource_arg(r) for r in resources]}
        if pid is not None:
            args["pid"] = pid
        return self.call("release", args)

    def inquire(self, pid: int | None = None) -> list[str]:
        result = self.call("inquire", {} if pid is None else {"pid": pid})
        return list(result.get("resources", []))

    def request(self, resource: ResourceArg, force_mode: str | int = "force", lver: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"resource": resource_arg(resource), "force_mode": force_mode}
        if lver is not None:
            args["lver"] = lver
        return self.call("request", args)

    def examine(self, lockspace: str) -> dict[str, Any]:
        return self.call("examine", {"lockspace": lockspace})

    def status(self, detail: bool = False) -> dict[str, Any]:
        return self.call("status", {"detail": detail})

    def gets(self, hosts: bool = False) -> dict[str, Any]:
        return self.call("gets", {"hosts": hosts})

    def host_status(self, lockspace: str) -> dict[str, Any]:
        return self.call("host_status", {"lockspace": lockspace})

    def renewal(self, lockspace: str) -> dict[str, Any]:
        return self.call("renewal", {"lockspace": lockspace})

    def log_dump(self) -> list[str]:
        return list(self.call("log_dump").get("lines", []))

    def set_event(self, lockspace: str, host_id: int, event: int, data: int = 0, generation: int = 0) -> dict[str, Any]:
        return self.call("set_event", {"lockspace": lockspace, "host_id": host_id, "generation": generation,
                                       "event": event, "data": data})

    def get_events(self, lockspace: str) -> list[dict[str, Any]]:
        return list(self.call("get_events", {"lockspace": lockspace}).get("events", []))

    def shutdown(self, force: bool = False) -> dict[str, Any]:
        return self.call("shutdown", {"force": force})
