"""sanlock 3.8's client protocol on the wire: header, payload structs, framing and replies. Pure code.

Facts from /work/shared/sanlock-protocol.md (layouts checked with offsetof, contents on live captures):
every message starts with a 32-byte header of eight little-endian u32 (magic, version, cmd, cmd_flags,
length, seq, data, data2); the payload is fixed-size C structs whose count the command and the header
decide (``length`` is not trusted, as sanlock does not trust it, except by SET_LVB). A reply copies
the request header with version 1, its own length, the result in ``data`` (int32: 0, -errno or a
sanlock code) and an extra value in ``data2``.

Decoding is strict: a bad magic, version, command, count or field is a ``WireError`` carrying the
result code to send back and a message naming the field; nothing else escapes from this module.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

MAGIC = 0x04282010
PROTO = 1  # SM_PROTO; a request's version may be anything with zero upper 16 bits
CB_PROTO = 1
HEADER_SIZE = 32
NAME_LEN = 48
PATH_LEN = 1024
DISK_SIZE = 1040
RESOURCE_SIZE = 128
LOCKSPACE_SIZE = 1104
OPTIONS_SIZE = 56
HOST_SIZE = 32
HOST_EVENT_SIZE = 32
STATE_SIZE = 80
RINDEX_SIZE = 1104
RENTRY_SIZE = 64
HELPER_LEN = 128  # killpath path and args fields
MAX_RESOURCES = 8
MAX_DISKS = 4
MAX_LVB = 4096
VERSION_CODE = 0x03080500  # the sanlock version we answer VERSION with: 3.8.5

# Commands (SM_CMD_*).
REGISTER, ADD_LOCKSPACE, REM_LOCKSPACE, SHUTDOWN, STATUS, LOG_DUMP = 1, 2, 3, 4, 5, 6
ACQUIRE, RELEASE, INQUIRE, RESTRICT, REQUEST, ALIGN = 7, 8, 9, 10, 11, 12
EXAMINE_LOCKSPACE, EXAMINE_RESOURCE, HOST_STATUS, INQ_LOCKSPACE, KILLPATH = 13, 14, 15, 16, 17
WRITE_LOCKSPACE, WRITE_RESOURCE, READ_LOCKSPACE, READ_RESOURCE, GET_LOCKSPACES = 18, 19, 20, 21, 22
GET_HOSTS, READ_RESOURCE_OWNERS, SET_LVB, GET_LVB, CONVERT, VERSION = 23, 24, 25, 26, 27, 28
SHUTDOWN_WAIT, REG_EVENT, END_EVENT, SET_EVENT, SET_CONFIG, RENEWAL = 29, 30, 31, 32, 33, 34
FORMAT_RINDEX, UPDATE_RINDEX, LOOKUP_RINDEX, CREATE_RESOURCE, DELETE_RESOURCE, REBUILD_RINDEX = 35, 36, 37, 38, 39, 40

CMD_NAMES: dict[int, str] = {
    REGISTER: "register", ADD_LOCKSPACE: "add_lockspace", REM_LOCKSPACE: "rem_lockspace", SHUTDOWN: "shutdown",
    STATUS: "status", LOG_DUMP: "log_dump", ACQUIRE: "acquire", RELEASE: "release", INQUIRE: "inquire",
    RESTRICT: "restrict", REQUEST: "request", ALIGN: "align", EXAMINE_LOCKSPACE: "examine_lockspace",
    EXAMINE_RESOURCE: "examine_resource", HOST_STATUS: "host_status", INQ_LOCKSPACE: "inq_lockspace",
    KILLPATH: "killpath", WRITE_LOCKSPACE: "write_lockspace", WRITE_RESOURCE: "write_resource",
    READ_LOCKSPACE: "read_lockspace", READ_RESOURCE: "read_resource", GET_LOCKSPACES: "get_lockspaces",
    GET_HOSTS: "get_hosts", READ_RESOURCE_OWNERS: "read_resource_owners", SET_LVB: "set_lvb", GET_LVB: "get_lvb",
    CONVERT: "convert", VERSION: "version", SHUTDOWN_WAIT: "shutdown_wait", REG_EVENT: "reg_event",
    END_EVENT: "end_event", SET_EVENT: "set_event", SET_CONFIG: "set_config", RENEWAL: "renewal",
    FORMAT_RINDEX: "format_rindex", UPDATE_RINDEX: "update_rindex", LOOKUP_RINDEX: "lookup_rindex",
    CREATE_RESOURCE: "create_resource", DELETE_RESOURCE: "delete_resource", REBUILD_RINDEX: "rebuild_rindex",
}

# Flags (sanlock.h, sanlock_admin.h, sanlock_resource.h).
RES_LVER, RES_NUM_HOSTS, RES_SHARED, RES_PERSISTENT = 0x1, 0x2, 0x4, 0x8
LSF_ADD, LSF_REM = 0x1, 0x2
ALIGN_FLAGS = {0x10: 1 << 20, 0x20: 2 << 20, 0x40: 4 << 20, 0x80: 8 << 20}
SECTOR_FLAGS = {0x100: 512, 0x200: 4096}
ACQUIRE_LVB, ACQUIRE_ORPHAN, ACQUIRE_ORPHAN_ONLY, ACQUIRE_OWNER_NOWAIT = 0x1, 0x2, 0x4, 0x8
CONVERT_OWNER_NOWAIT = 0x8
REL_ALL, REL_RENAME, REL_ORPHAN = 0x1, 0x2, 0x4
CONFIG_USED, CONFIG_UNUSED, CONFIG_USED_BY_ORPHANS, CONFIG_UNUSED_BY_ORPHANS = 1, 2, 4, 8  # SET_CONFIG data
REQUEST_NEXT_LVER = 0x1
RESTRICT_ALL, RESTRICT_SIGKILL, RESTRICT_SIGTERM = 0x1, 0x2, 0x4
KILLPATH_PID = 0x1
ADD_ASYNC = REM_ASYNC = INQ_WAIT = 0x1
REM_UNUSED = 0x2
WRITE_CLEAR = 0x1
HOST_UNKNOWN, HOST_FREE, HOST_LIVE, HOST_FAIL, HOST_DEAD = 1, 2, 3, 4, 5
STATE_DAEMON, STATE_CLIENT, STATE_LOCKSPACE, STATE_RESOURCE, STATE_HOST, STATE_RENEWAL = 1, 2, 3, 4, 5, 6
SETEV_CUR_GENERATION, SETEV_CLEAR_HOSTID, SETEV_CLEAR_EVENT, SETEV_REPLACE_EVENT, SETEV_ALL_HOSTS = 1, 2, 4, 8, 16
CB_GET_EVENT = 1  # SM_CB_GET_EVENT: the cmd of a pushed event message
EVENT_SIZE = 80
MAX_EVENT_FDS = 32  # event connections per lockspace
END_EVENT_MARKER = 1  # the u32 a client writes on its event connection before closing it
PID_SELF = 0xFFFFFFFF  # data2 = -1: "the client registered on this connection"

_HEADER = struct.Struct("<8I")
_DISK = struct.Struct(f"<{PATH_LEN}sQII")
_RESOURCE = struct.Struct(f"<{NAME_LEN}s{NAME_LEN}sQQIIII")
_LOCKSPACE_HEAD = struct.Struct(f"<{NAME_LEN}sQII")
_OPTIONS = struct.Struct(f"<{NAME_LEN}sII")
_HOST = struct.Struct("<QQQII")
_STATE = struct.Struct(f"<IIiIQ{NAME_LEN}sII")
_HOST_EVENT = struct.Struct("<QQQQ")
_EVENT_FROM = struct.Struct("<QQ")
assert _DISK.size == DISK_SIZE and _RESOURCE.size == RESOURCE_SIZE and _OPTIONS.size == OPTIONS_SIZE
assert _LOCKSPACE_HEAD.size + DISK_SIZE == LOCKSPACE_SIZE and _HOST.size == HOST_SIZE and _STATE.size == STATE_SIZE


class WireError(Exception):
    """A request that cannot be served as sent: ``code`` goes back in the reply's ``data``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def einval(message: str) -> WireError:
    return WireError(-errno.EINVAL, message)


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class Header:
    magic: int = MAGIC
    version: int = PROTO
    cmd: int = 0
    cmd_flags: int = 0
    length: int = HEADER_SIZE
    seq: int = 0
    data: int = 0
    data2: int = 0

    def encode(self) -> bytes:
        return _HEADER.pack(self.magic, self.version, self.cmd, self.cmd_flags, self.length & 0xFFFFFFFF,
                            self.seq, self.data & 0xFFFFFFFF, self.data2 & 0xFFFFFFFF)

    @property
    def name(self) -> str:
        return CMD_NAMES.get(self.cmd, f"cmd {self.cmd}")

    @property
    def data_signed(self) -> int:
        return self.data - (1 << 32) if self.data & 0x80000000 else self.data


def decode_raw_header(buf: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """The eight header words, unchecked (to echo a malformed request's header in the error reply)."""
    return tuple(_HEADER.unpack_from(buf, 0))


def decode_header(buf: bytes | bytearray | memoryview) -> Header:
    """The first 32 bytes of ``buf`` as a request header; WireError for a magic, version or command
    this protocol does not have."""
    if len(buf) < HEADER_SIZE:
        raise einval(f"header: {len(buf)} bytes, a header is {HEADER_SIZE}")
    h = Header(*_HEADER.unpack_from(buf, 0))
    if h.magic != MAGIC:
        raise einval(f"header magic 0x{h.magic:08x} is not sanlock's 0x{MAGIC:08x}: not a sanlock client")
    if h.version >> 16 and h.cmd != VERSION:
        raise einval(f"header version 0x{h.version:08x}: this daemon speaks sanlock protocol {PROTO} (0x{PROTO:08x})")
    if h.cmd not in CMD_NAMES:
        raise einval(f"header cmd {h.cmd} is not a sanlock 3.8 command (1..{max(CMD_NAMES)})")
    return h


def reply(request: Header, result: int = 0, data2: int = 0, payload: bytes = b"", length: int | None = None,
          cmd: int | None = None) -> bytes:
    """A reply: the request header with version 1, ``length`` (default 32 + payload), data = result."""
    h = Header(MAGIC, PROTO, request.cmd if cmd is None else cmd, request.cmd_flags,
               HEADER_SIZE + len(payload) if length is None else length, request.seq, result, data2)
    return h.encode() + payload


# --------------------------------------------------------------------------- framing


def _num_disks(buf: bytes | bytearray | memoryview, off: int, what: str) -> int:
    n: int = struct.unpack_from("<I", buf, off + 124)[0]
    if not 1 <= n <= MAX_DISKS:
        raise WireError(-errno.ERANGE, f"{what}.num_disks {n}: give 1 to {MAX_DISKS} disks")
    return n


def payload_needed(h: Header, payload: bytes | bytearray | memoryview) -> int:
    """How many payload bytes the request ``h`` carries, as far as ``payload`` (what has arrived so
    far) tells: call again while the answer exceeds ``len(payload)``. WireError for counts out of range."""
    c = h.cmd
    if c in (REGISTER, SHUTDOWN, STATUS, LOG_DUMP, INQUIRE, RESTRICT, GET_LOCKSPACES, VERSION, SHUTDOWN_WAIT):
        return 0
    if c in (ADD_LOCKSPACE, REM_LOCKSPACE, EXAMINE_LOCKSPACE, HOST_STATUS, INQ_LOCKSPACE, WRITE_LOCKSPACE,
             READ_LOCKSPACE, GET_HOSTS, END_EVENT, SET_CONFIG, RENEWAL):
        return LOCKSPACE_SIZE
    if c in (REG_EVENT, SET_EVENT):
        return LOCKSPACE_SIZE + HOST_EVENT_SIZE
    if c in (EXAMINE_RESOURCE, GET_LVB, CONVERT):
        return RESOURCE_SIZE
    if c == ALIGN:
        return DISK_SIZE
    if c == KILLPATH:
        return 2 * HELPER_LEN
    if c in (FORMAT_RINDEX, REBUILD_RINDEX):
        return RINDEX_SIZE
    if c in (UPDATE_RINDEX, LOOKUP_RINDEX, CREATE_RESOURCE, DELETE_RESOURCE):
        return RINDEX_SIZE + RENTRY_SIZE
    if c in (REQUEST, WRITE_RESOURCE, READ_RESOURCE, READ_RESOURCE_OWNERS):
        if len(payload) < RESOURCE_SIZE:
            return RESOURCE_SIZE
        return RESOURCE_SIZE + DISK_SIZE * _num_disks(payload, 0, "resource")
    if c == SET_LVB:
        lvb = h.length - HEADER_SIZE - RESOURCE_SIZE
        if not 0 < lvb <= MAX_LVB:
            raise WireError(-errno.E2BIG, f"set_lvb: header length {h.length} gives an LVB of {lvb} bytes; "
                                          f"give 1 to {MAX_LVB}")
        return RESOURCE_SIZE + lvb
    if c == RELEASE:
        if h.cmd_flags & REL_ALL:
            return 0
        if h.cmd_flags & REL_RENAME:
            return 2 * RESOURCE_SIZE
        if h.cmd_flags & REL_ORPHAN:
            return RESOURCE_SIZE
        return RESOURCE_SIZE * _count(h, "release")
    if c == ACQUIRE:
        off = 0
        for i in range(_count(h, "acquire")):
            if len(payload) < off + RESOURCE_SIZE:
                return off + RESOURCE_SIZE
            off += RESOURCE_SIZE + DISK_SIZE * _num_disks(payload, off, f"resources[{i}]")
        return off + OPTIONS_SIZE
    raise einval(f"cmd {c} has no known payload")  # decode_header admits only known commands


def _count(h: Header, what: str) -> int:
    if h.data == 0:
        raise einval(f"{what}: header data (resource count) is 0; give 1 to {MAX_RESOURCES}")
    if h.data > MAX_RESOURCES:
        raise WireError(-errno.E2BIG, f"{what}: {h.data_signed} resources; at most {MAX_RESOURCES} per call")
    return h.data


# --------------------------------------------------------------------------- payload structs


def _name(raw: bytes, what: str) -> str:
    end = raw.find(b"\0")
    try:
        return raw[: end if end >= 0 else NAME_LEN].decode("utf-8")
    except UnicodeDecodeError:
        raise einval(f"{what} is not UTF-8 text") from None


def _path(raw: bytes, what: str) -> str:
    end = raw.find(b"\0")
    if end < 0:
        raise einval(f"{what} has no NUL within {PATH_LEN} bytes: paths are shorter than {PATH_LEN} bytes")
    try:
        return raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise einval(f"{what} is not UTF-8 text") from None


def _fixed(text: str, size: int, what: str, nul: bool) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > size - (1 if nul else 0):
        raise einval(f"{what} {text!r} is longer than {size - (1 if nul else 0)} bytes")
    return raw.ljust(size, b"\0")


@dataclass(frozen=True)
class WireDisk:
    path: str
    offset: int
    pad1: int = 0
    pad2: int = 0

    def encode(self) -> bytes:
        return _DISK.pack(_fixed(self.path, PATH_LEN, "disk path", True), self.offset, self.pad1, self.pad2)


def decode_disk(buf: bytes | bytearray | memoryview, off: int, what: str = "disk") -> WireDisk:
    raw, offset, pad1, pad2 = _DISK.unpack_from(buf, off)
    return WireDisk(_path(raw, f"{what}.path"), offset, pad1, pad2)


@dataclass(frozen=True)
class WireResource:
    lockspace: str
    name: str
    lver: int = 0
    data64: int = 0
    data32: int = 0
    flags: int = 0
    disks: tuple[WireDisk, ...] = ()
    num_disks: int = -1  # as sent; -1: len(disks)

    def encode(self, with_disks: bool = True) -> bytes:
        n = len(self.disks) if self.num_disks < 0 else self.num_disks
        head = _RESOURCE.pack(_fixed(self.lockspace, NAME_LEN, "lockspace name", False),
                              _fixed(self.name, NAME_LEN, "resource name", False),
                              self.lver, self.data64, self.data32, 0, self.flags, n)
        return head + (b"".join(d.encode() for d in self.disks) if with_disks else b"")


def decode_resource(buf: bytes | bytearray | memoryview, off: int, with_disks: bool, what: str = "resource") -> tuple[WireResource, int]:
    """One sanlk_resource (and its disks when ``with_disks``); returns it and the offset after it."""
    ls, name, lver, data64, data32, _unused, flags, n = _RESOURCE.unpack_from(buf, off)
    res_off = off + RESOURCE_SIZE
    disks: list[WireDisk] = []
    if with_disks:
        if not 1 <= n <= MAX_DISKS:
            raise WireError(-errno.ERANGE, f"{what}.num_disks {n}: give 1 to {MAX_DISKS} disks")
        for i in range(n):
            disks.append(decode_disk(buf, res_off, f"{what}.disks[{i}]"))
            res_off += DISK_SIZE
    res = WireResource(_name(ls, f"{what}.lockspace_name"), _name(name, f"{what}.name"), lver, data64, data32,
                       flags, tuple(disks), n)
    return res, res_off


@dataclass(frozen=True)
class WireLockspace:
    name: str
    host_id: int = 0
    flags: int = 0
    disk: WireDisk = field(default_factory=lambda: WireDisk("", 0))

    def encode(self) -> bytes:
        return (_LOCKSPACE_HEAD.pack(_fixed(self.name, NAME_LEN, "lockspace name", False), self.host_id, self.flags, 0)
                + self.disk.encode())


def decode_lockspace(buf: bytes | bytearray | memoryview, off: int = 0, what: str = "lockspace") -> WireLockspace:
    name, host_id, flags, _pad = _LOCKSPACE_HEAD.unpack_from(buf, off)
    disk = decode_disk(buf, off + _LOCKSPACE_HEAD.size, f"{what}.host_id_disk")
    return WireLockspace(_name(name, f"{what}.name"), host_id, flags, disk)


@dataclass(frozen=True)
class WireOptions:
    owner_name: str
    flags: int = 0

    def encode(self) -> bytes:
        return _OPTIONS.pack(_fixed(self.owner_name, NAME_LEN, "owner_name", False), self.flags, 0)


def decode_options(buf: bytes | bytearray | memoryview, off: int) -> WireOptions:
    name, flags, _len = _OPTIONS.unpack_from(buf, off)
    return WireOptions(_name(name, "options.owner_name"), flags)


@dataclass(frozen=True)
class WireHost:
    host_id: int
    generation: int
    timestamp: int = 0
    io_timeout: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        return _HOST.pack(self.host_id, self.generation, self.timestamp, self.io_timeout, self.flags)


def decode_host(buf: bytes | bytearray | memoryview, off: int) -> WireHost:
    return WireHost(*_HOST.unpack_from(buf, off))


@dataclass(frozen=True)
class WireHostEvent:
    host_id: int
    generation: int
    event: int
    data: int = 0

    def encode(self) -> bytes:
        return _HOST_EVENT.pack(self.host_id, self.generation, self.event, self.data)


def decode_host_event(buf: bytes | bytearray | memoryview, off: int) -> WireHostEvent:
    return WireHostEvent(*_HOST_EVENT.unpack_from(buf, off))


def encode_event(he: WireHostEvent, from_host_id: int, from_generation: int) -> bytes:
    """One pushed event (event_cb, 80 bytes): a callback header, the event, and who sent it."""
    head = Header(MAGIC, CB_PROTO, CB_GET_EVENT, 0, EVENT_SIZE, 0, 0, 0).encode()
    return head + he.encode() + _EVENT_FROM.pack(from_host_id, from_generation)


def decode_event(buf: bytes | bytearray | memoryview, off: int = 0) -> tuple[WireHostEvent, int, int]:
    """(event, from_host_id, from_generation) of one pushed event (tests and tools)."""
    he = decode_host_event(buf, off + HEADER_SIZE)
    from_id, from_gen = _EVENT_FROM.unpack_from(buf, off + HEADER_SIZE + HOST_EVENT_SIZE)
    return he, from_id, from_gen


def encode_state(kind: int, name: str, text: str, data32: int = 0, data64: int = 0) -> bytes:
    """One sanlk_state record and its NUL-terminated ``key=value ...`` text (STATUS, HOST_STATUS)."""
    raw = text.encode("utf-8")[:4095] + b"\0"
    return _STATE.pack(kind, 0, data32, 0, data64, name.encode("utf-8")[:NAME_LEN].ljust(NAME_LEN, b"\0"),
                       len(raw), 0) + raw


def decode_state(buf: bytes | bytearray | memoryview, off: int) -> tuple[int, int, int, str, str, int]:
    """(type, data32, data64, name, text, offset after the text) — for tests and tools."""
    kind, _flags, data32, _pad, data64, name, str_len, _pad2 = _STATE.unpack_from(buf, off)
    end = off + STATE_SIZE + str_len
    text = bytes(buf[off + STATE_SIZE : end]).rstrip(b"\0").decode("utf-8", "replace")
    return kind, data32, data64, _name(name, "state.name"), text, end


# --------------------------------------------------------------------------- decoded requests


@dataclass(frozen=True)
class Request:
    """A whole request: its header and its payload decoded as its command says."""

    header: Header
    lockspace: WireLockspace | None = None
    resources: tuple[WireResource, ...] = ()
    options: WireOptions | None = None
    disk: WireDisk | None = None
    killpath: tuple[str, str] | None = None
    host_event: WireHostEvent | None = None
    raw: bytes = b""

    @property
    def cmd(self) -> int:
        return self.header.cmd

    @property
    def target_pid(self) -> int | None:
        """None when the request names this connection's registration (data2 = -1)."""
        return None if self.header.data2 == PID_SELF else self.header.data2


def decode_request(h: Header, payload: bytes) -> Request:
    """Decode a complete payload (exactly ``payload_needed`` bytes) for ``h``."""
    c = h.cmd
    if len(payload) != payload_needed(h, payload):
        raise einval(f"{h.name}: payload of {len(payload)} bytes, expected {payload_needed(h, payload)}")
    if c in (REG_EVENT, SET_EVENT):
        return Request(h, lockspace=decode_lockspace(payload), host_event=decode_host_event(payload, LOCKSPACE_SIZE),
                       raw=payload)
    if c in (ADD_LOCKSPACE, REM_LOCKSPACE, EXAMINE_LOCKSPACE, HOST_STATUS, INQ_LOCKSPACE, WRITE_LOCKSPACE,
             READ_LOCKSPACE, GET_HOSTS, END_EVENT, SET_CONFIG, RENEWAL):
        return Request(h, lockspace=decode_lockspace(payload), raw=payload)
    if c in (EXAMINE_RESOURCE, GET_LVB, CONVERT, SET_LVB):
        res, _ = decode_resource(payload, 0, with_disks=False)
        return Request(h, resources=(res,), raw=payload)
    if c in (REQUEST, WRITE_RESOURCE, READ_RESOURCE, READ_RESOURCE_OWNERS):
        res, _ = decode_resource(payload, 0, with_disks=True)
        return Request(h, resources=(res,), raw=payload)
    if c == RELEASE:
        out = []
        for i in range(len(payload) // RESOURCE_SIZE):
            res, _ = decode_resource(payload, i * RESOURCE_SIZE, False, f"resources[{i}]")
            out.append(res)
        return Request(h, resources=tuple(out), raw=payload)
    if c == ACQUIRE:
        off = 0
        out = []
        for i in range(h.data):
            res, off = decode_resource(payload, off, True, f"resources[{i}]")
            out.append(res)
        return Request(h, resources=tuple(out), options=decode_options(payload, off), raw=payload)
    if c == ALIGN:
        return Request(h, disk=decode_disk(payload, 0), raw=payload)
    if c == KILLPATH:
        path = _path(payload[:HELPER_LEN], "killpath path")
        args = _path(payload[HELPER_LEN:], "killpath args")
        return Request(h, killpath=(path, args), raw=payload)
    return Request(h, raw=payload)


# --------------------------------------------------------------------------- strings


def split_args(text: str) -> list[str]:
    """killpath args as libsanlock sends them: space-separated, a backslash makes the next character literal."""
    out: list[str] = []
    cur: list[str] = []
    started = False
    it = iter(text)
    for ch in it:
        if ch == "\\":
            nxt = next(it, None)
            if nxt is not None:
                cur.append(nxt)
                started = True
        elif ch == " ":
            if started:
                out.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        out.append("".join(cur))
    return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace(" ", "\\ ")


def inquire_entry(lockspace: str, name: str, disks: list[tuple[str, int]], lver: int, shared: bool) -> str:
    """``LS:RES:PATH:OFF[:PATH:OFF...]:LVER`` (``:SH`` for a shared hold), as INQUIRE sends it."""
    parts = [lockspace, name]
    for path, offset in disks:
        parts += [_escape(path), str(offset)]
    parts.append("SH" if shared else str(lver))
    return ":".join(parts)


def geometry_flags(flags: int) -> tuple[int | None, int | None]:
    """(sector size, align size) named by SANLK_RES/LSF align and sector flags; None where not named.
    WireError when more than one of a kind is set."""
    sectors = [v for k, v in SECTOR_FLAGS.items() if flags & k]
    aligns = [v for k, v in ALIGN_FLAGS.items() if flags & k]
    if len(sectors) > 1 or len(aligns) > 1:
        raise einval(f"flags 0x{flags:x} name more than one sector size or align size")
    return (sectors[0] if sectors else None), (aligns[0] if aligns else None)
