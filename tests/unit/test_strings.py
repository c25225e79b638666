"""sanlock's LOCKSPACE / RESOURCE strings (facts §11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockengine.errors import InputError
from lockengine.strings import (
    Disk,
    LockspaceSpec,
    ResourceSpec,
    format_lockspace,
    format_resource,
    parse_dump_target,
    parse_lockspace,
    parse_resource,
    split_fields,
)

NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":\\"), min_size=1, max_size=48)
PATHS = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\0"), min_size=1, max_size=200)


def test_lockspace() -> None:
    assert parse_lockspace("LS:0:/dev/loop0:0") == LockspaceSpec("LS", 0, "/dev/loop0", 0)
    assert parse_lockspace("LS:7:/dev/sdb:1M") == LockspaceSpec("LS", 7, "/dev/sdb", 1 << 20)
    assert parse_lockspace("LS:2000:/d:3145728").host_id == 2000


def test_resource() -> None:
    r = parse_resource("LS:R1:/dev/loop0:1M")
    assert r == ResourceSpec("LS", "R1", (Disk("/dev/loop0", 1 << 20),))
    assert (r.path, r.offset, r.lver, r.shared) == ("/dev/loop0", 1 << 20, None, False)
    assert parse_resource("LS:R1:/d:0:7").lver == 7
    assert parse_resource("LS:R1:/d:0:0").lver == 0
    assert parse_resource("LS:R1:/d:0:SH").shared
    two = parse_resource("LS:R1:/a:0:/b:2M:5")
    assert two.disks == (Disk("/a", 0), Disk("/b", 2 << 20)) and two.lver == 5


def test_escaped_colons_in_paths() -> None:
    r = parse_resource(r"LS:R1:/dev/disk/by-path/pci-0000\:00\:1f.2:1M:SH")
    assert r.path == "/dev/disk/by-path/pci-0000:00:1f.2" and r.offset == 1 << 20 and r.shared
    ls = parse_lockspace(r"LS:1:/weird\\name\:x:0")
    assert ls.path == "/weird\\name:x"
    assert split_fields(r"a\:b:c", "X") == ["a:b", "c"]


def test_dump_target() -> None:
    assert parse_dump_target("/dev/loop0") == ("/dev/loop0", 0, None)
    assert parse_dump_target("/dev/loop0:1M") == ("/dev/loop0", 1 << 20, None)
    assert parse_dump_target("/dev/loop0:1M:2M") == ("/dev/loop0", 1 << 20, 2 << 20)
    assert parse_dump_target(r"/x\:y:0:4096") == ("/x:y", 0, 4096)


def _error(fn: object, text: str) -> InputError:
    assert callable(fn)
    with pytest.raises(InputError) as e:
        fn(text)
    return e.value


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ("LS:0:/d", "LOCKSPACE", "4 fields"),
        ("LS:0:/d:0:5", "LOCKSPACE", "4 fields"),
        ("LS:x:/d:0", "LOCKSPACE host_id", "0 to 2000"),
        ("LS:2001:/d:0", "LOCKSPACE host_id", "0 to 2000"),
        ("LS:-1:/d:0", "LOCKSPACE host_id", "0 to 2000"),
        ("LS:1:/d:", "LOCKSPACE offset", "byte offset"),
        ("LS:1:/d:12Q", "LOCKSPACE offset", "whole number"),
        ("LS:1:/d:²", "LOCKSPACE offset", "byte offset"),
        ("LS:1::0", "LOCKSPACE path", "path"),
        (":1:/d:0", "LOCKSPACE name", "non-empty"),
        ("N" * 49 + ":1:/d:0", "LOCKSPACE name", "48 bytes (49 given)"),
        ("LS:1:/d\\", "LOCKSPACE", "trailing backslash"),
    ],
)
def test_lockspace_errors_name_the_field(text: str, field: str, hint: str) -> None:
    err = _error(parse_lockspace, text)
    assert err.field == field
    assert hint in str(err), str(err)


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ("LS:R1:/d", "RESOURCE", "3 fields given"),
        ("LS:R1", "RESOURCE", "lockspace:resource:path:offset"),
        ("LS:R1:/d:0:xx", "RESOURCE lver", "SH"),
        ("LS:R1:/d:0:-3", "RESOURCE lver", "SH"),
        ("LS:R1:/d:1X", "RESOURCE offset", "whole number"),
        ("LS:" + "R" * 49 + ":/d:0", "RESOURCE resource name", "48"),
        ("L" * 49 + ":R:/d:0", "RESOURCE lockspace name", "48"),
        ("LS:R1:/a:0:/b:0:/c:0:/d:0:/e:0", "RESOURCE", "at most 4"),
        ("LS:R1:" + "p" * 1024 + ":0", "RESOURCE path", "1024"),
    ],
)
def test_resource_errors_name_the_field(text: str, field: str, hint: str) -> None:
    err = _error(parse_resource, text)
    assert err.field == field
    assert hint in str(err), str(err)


def test_dump_target_errors() -> None:
    assert _error(parse_dump_target, "/d:0:0").field == "PATH size"
    assert _error(parse_dump_target, "/d:x").field == "PATH offset"
    assert _error(parse_dump_target, "/d:0:1M:9").field == "PATH"


def test_48_byte_names_are_accepted() -> None:
    r = parse_resource("L" * 48 + ":" + "R" * 48 + ":/d:0")
    assert (len(r.lockspace), len(r.name)) == (48, 48)


@given(NAMES, st.integers(0, 2000), PATHS, st.integers(0, 2**50))
def test_lockspace_round_trip(name: str, host_id: int, path: str, offset: int) -> None:
    ls = LockspaceSpec(name, host_id, path, offset)
    assert parse_lockspace(format_lockspace(ls)) == ls


@given(
    NAMES, NAMES, st.lists(st.tuples(PATHS, st.integers(0, 2**50)), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(0, 2**63), st.just("SH")),
)
def test_resource_round_trip(ls: str, res: str, disks: list[tuple[str, int]], suffix: int | str | None) -> None:
    spec = ResourceSpec(
        ls, res, tuple(Disk(p, o) for p, o in disks),
        lver=suffix if isinstance(suffix, int) else None, shared=suffix == "SH",
    )
    text = format_resource(spec)
    assert parse_resource(text) == spec
    assert str(spec) == text


def test_max_host_id_is_the_largest_max_hosts_of_any_geometry() -> None:
    """strings.MAX_HOST_ID is a constant (the CLI does not import ondisk); it must match ondisk's table."""
    from lockengine.ondisk import ALIGN_FLAGS, Geometry
    from lockengine.strings import MAX_HOST_ID

    assert max(Geometry(4096, align).max_hosts for align in ALIGN_FLAGS) == MAX_HOST_ID
