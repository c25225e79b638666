"""sanlock's LOCKSPACE and RESOURCE strings (sanlock-facts §11), so a sanlock user's arguments paste unchanged.

    LOCKSPACE = name:host_id:path:offset
    RESOURCE  = lockspace:resource:path:offset[:path2:offset2 ... up to 4 disks][:lver | :SH]

A backslash makes the next character literal (``\\:`` is a colon inside a path). Offsets take an ``M``
suffix (``1M`` = 1048576). Every error is an ``InputError`` naming the field and the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

# The largest max_hosts of any geometry (facts §0). A constant, so that the CLI's client verbs do not
# import ondisk (and its checksum code); tests/unit/test_strings.py checks it against ondisk's table.
MAX_HOST_ID = 2000
MAX_DISKS = 4
PATH_MAX = 1024


@dataclass(frozen=True)
class Disk:
    path: str
    offset: int


@dataclass(frozen=True)
class LockspaceSpec:
    name: str
    host_id: int
    path: str
    offset: int

    def __str__(self) -> str:
        return format_lockspace(self)


@dataclass(frozen=True)
class ResourceSpec:
    lockspace: str
    name: str
    disks: tuple[Disk, ...]
    lver: int | None = None
    shared: bool = False

    @property
    def path(self) -> str:
        return self.disks[0].path

    @property
    def offset(self) -> int:
        return self.disks[0].offset

    def __str__(self) -> str:
        return format_resource(self)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def split_fields(text: str, field_name: str) -> list[str]:
    """Split on unescaped colons; a backslash keeps the next character literally."""
    fields: list[str] = []
    cur: list[str] = []
    it = iter(text)
    for ch in it:
        if ch == "\\":
            nxt = next(it, None)
            if nxt is None:
                raise InputError(field_name, text, "a trailing backslash escapes nothing; write '\\:' for a colon in a path")
            cur.append(nxt)
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def escape_path(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:")


def parse_offset(text: str, field_name: str) -> int:
    # isdigit() alone accepts digits such as '²' that int() refuses.
    if not text.isascii() or not text[:-1].isdigit() and not text.isdigit():
        raise InputError(field_name, text, "give a byte offset, e.g. 0 or 1048576 or 1M")
    from .ondisk import parse_size

    return parse_size(text, field_name)


def parse_host_id(text: str, field_name: str, allow_zero: bool = True) -> int:
    low = 0 if allow_zero else 1
    if not _is_number(text):
        raise InputError(field_name, text, f"give a whole number from {low} to {MAX_HOST_ID}")
    value = int(text)
    if not low <= value <= MAX_HOST_ID:
        raise InputError(field_name, value, f"give a whole number from {low} to {MAX_HOST_ID}")
    return value


def check_path(path: str, field_name: str) -> str:
    if not path:
        raise InputError(field_name, path, "give the path of a block device or file")
    if len(path.encode("utf-8")) >= PATH_MAX:
        raise InputError(field_name, path, f"paths are shorter than {PATH_MAX} bytes")
    return path


def check_name(name: str, field_name: str) -> str:
    from .ondisk import encode_name

    encode_name(name, field_name)
    return name


def parse_lockspace(text: str, field_name: str = "LOCKSPACE") -> LockspaceSpec:
    """``name:host_id:path:offset``; host_id 0 means "not needed" (init, dump)."""
    f = split_fields(text, field_name)
    if len(f) != 4:
        raise InputError(
            field_name, text,
            f"write name:host_id:path:offset (4 fields, {len(f)} given; escape a colon in the path as '\\:')",
        )
    name, host_id, path, offset = f
    return LockspaceSpec(
        name=check_name(name, f"{field_name} name"),
        host_id=parse_host_id(host_id, f"{field_name} host_id"),
        path=check_path(path, f"{field_name} path"),
        offset=parse_offset(offset, f"{field_name} offset"),
    )


def parse_resource(text: str, field_name: str = "RESOURCE") -> ResourceSpec:
    """``lockspace:resource:path:offset[:path2:offset2...][:lver|:SH]``."""
    f = split_fields(text, field_name)
    if len(f) < 4:
        raise InputError(
            field_name, text,
            f"write lockspace:resource:path:offset[:lver|:SH] ({len(f)} fields given; escape a colon in the path as '\\:')",
        )
    rest = f[2:]
    suffix = rest.pop() if len(rest) % 2 else None
    if len(rest) // 2 > MAX_DISKS:
        raise InputError(field_name, text, f"at most {MAX_DISKS} path:offset pairs")
    disks = tuple(
        Disk(check_path(rest[i], f"{field_name} path"), parse_offset(rest[i + 1], f"{field_name} offset"))
        for i in range(0, len(rest), 2)
    )
    lver: int | None = None
    shared = False
    if suffix is not None:
        if suffix == "SH":
            shared = True
        elif _is_number(suffix):
            lver = int(suffix)
        else:
            raise InputError(f"{field_name} lver", suffix, "the last field is a lease version (a whole number) or SH")
    return ResourceSpec(
        lockspace=check_name(f[0], f"{field_name} lockspace name"),
        name=check_name(f[1], f"{field_name} resource name"),
        disks=disks,
        lver=lver,
        shared=shared,
    )


def parse_dump_target(text: str, field_name: str = "PATH") -> tuple[str, int, int | None]:
    """``path[:offset[:size]]`` as ``sanlock direct dump`` takes it; size None = to the first gap."""
    f = split_fields(text, field_name)
    if len(f) > 3:
        raise InputError(field_name, text, "write path[:offset[:size]] (escape a colon in the path as '\\:')")
    path = check_path(f[0], f"{field_name} path")
    offset = parse_offset(f[1], f"{field_name} offset") if len(f) > 1 else 0
    size = parse_offset(f[2], f"{field_name} size") if len(f) > 2 else None
    if size == 0:
        raise InputError(f"{field_name} size", f[2], "give a size above 0, or leave it out to scan to the first gap")
    return path, offset, size


def format_lockspace(ls: LockspaceSpec) -> str:
    return f"{ls.name}:{ls.host_id}:{escape_path(ls.path)}:{ls.offset}"


def format_resource(res: ResourceSpec) -> str:
    parts = [res.lockspace, res.name]
    for d in res.disks:
        parts += [escape_path(d.path), str(d.offset)]
    if res.shared:
        parts.append("SH")
    elif res.lver is not None:
        parts.append(str(res.lver))
    return ":".join(parts)
