"""The sanlock protocol codec against the facts captured on the wire (/work/shared/sanlock-protocol.md)."""

from __future__ import annotations

import errno
import random
import struct

import pytest

from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import (
    Header,
    WireDisk,
    WireError,
    WireLockspace,
    WireOptions,
    WireResource,
    decode_header,
    decode_request,
    payload_needed,
)

M = 1 << 20


def raw_header(*words: int) -> bytes:
    return struct.pack("<8I", *words)


def test_struct_sizes_match_sanlock_3_8() -> None:
    assert len(WireDisk("/d", 0).encode()) == 1040
    assert len(WireResource("LS", "R", disks=()).encode()) == 128
    assert len(WireLockspace("LS").encode()) == 1104
    assert len(WireOptions("").encode()) == 56
    assert len(wire.WireHost(1, 1).encode()) == 32
    assert len(wire.encode_state(1, "x", "")) == 80 + 1


def test_reply_is_the_captured_write_lockspace_reply() -> None:
    req = Header(cmd=wire.WRITE_LOCKSPACE, length=32 + 1104, data=0, data2=2)
    captured = bytes.fromhex("10202804 01000000 12000000 00000000 20000000 00000000 00000000 00000000".replace(" ", ""))
    assert wire.reply(req) == captured


def test_version_reply_words() -> None:
    h = decode_header(raw_header(wire.MAGIC, 0x00050000, wire.VERSION, 0, 32, 0, 0, 0))  # any version for VERSION
    assert h.cmd == wire.VERSION
    assert wire.VERSION_CODE.to_bytes(4, "little") == bytes.fromhex("00050803")


@pytest.mark.parametrize(("words", "text"), [
    ((0xDEADBEEF, 1, 28, 0, 32, 0, 0, 0), "magic 0xdeadbeef"),
    ((wire.MAGIC, 1, 99, 0, 32, 0, 0, 0), "cmd 99"),
    ((wire.MAGIC, 1, 0, 0, 32, 0, 0, 0), "cmd 0"),
    ((wire.MAGIC, 0x00020001, wire.STATUS, 0, 32, 0, 0, 0), "version 0x00020001"),
])
def test_bad_headers_name_the_field(words: tuple[int, ...], text: str) -> None:
    with pytest.raises(WireError) as exc:
        decode_header(raw_header(*words))
    assert exc.value.code == -errno.EINVAL and text in exc.value.message


@pytest.mark.parametrize("version", [0, 1, 2])
def test_versions_sanlock_accepts(version: int) -> None:
    assert decode_header(raw_header(wire.MAGIC, version, wire.STATUS, 0, 32, 0, 0, 0)).version == version


def acquire_message(count: int = 1, num_disks: int = 1) -> tuple[Header, bytes]:
    res = WireResource("LS", "R1", flags=wire.RES_SHARED, disks=tuple(WireDisk("/dev/loop0", M) for _ in range(num_disks)),
                       num_disks=num_disks)
    payload = res.encode() * count + WireOptions("vm1").encode()
    return Header(cmd=wire.ACQUIRE, length=32 + len(payload), data=count, data2=wire.PID_SELF), payload


def test_acquire_framing_grows_as_resources_arrive() -> None:
    h, payload = acquire_message(count=2, num_disks=2)
    assert len(payload) == 2 * (128 + 2 * 1040) + 56
    seen = []
    got = 0
    while True:  # what the listener does: ask again whenever more bytes arrived
        need = payload_needed(h, payload[:got])
        seen.append(need)
        if need <= got:
            break
        got = need
    assert seen[0] == 128 and seen[-1] == len(payload)
    req = decode_request(h, payload)
    assert [r.name for r in req.resources] == ["R1", "R1"] and req.options == WireOptions("vm1")
    assert req.resources[0].disks[1] == WireDisk("/dev/loop0", M) and req.target_pid is None


def test_captured_acquire_length() -> None:
    h, payload = acquire_message()
    assert 32 + payload_needed(h, payload) == 1256  # captured from python3-sanlock


@pytest.mark.parametrize(("count", "num_disks", "code"), [(0, 1, -errno.EINVAL), (9, 1, -errno.E2BIG),
                                                          (1, 0, -errno.ERANGE), (1, 5, -errno.ERANGE)])
def test_acquire_counts_out_of_range(count: int, num_disks: int, code: int) -> None:
    res = WireResource("LS", "R1", num_disks=num_disks).encode()
    h = Header(cmd=wire.ACQUIRE, data=count)
    with pytest.raises(WireError) as exc:
        payload_needed(h, res)
    assert exc.value.code == code


def test_release_set_lvb_and_fixed_sizes() -> None:
    assert payload_needed(Header(cmd=wire.RELEASE, data=1), b"") == 128  # captured len 160: no disks
    assert payload_needed(Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ALL), b"") == 0
    assert payload_needed(Header(cmd=wire.SET_LVB, length=169), b"") == 137  # captured: 9 bytes of LVB
    with pytest.raises(WireError) as exc:
        payload_needed(Header(cmd=wire.SET_LVB, length=32), b"")
    assert exc.value.code == -errno.E2BIG
    assert payload_needed(Header(cmd=wire.REG_EVENT), b"") == 1168 - 32  # captured length 1168
    assert payload_needed(Header(cmd=wire.KILLPATH), b"") == 256
    assert payload_needed(Header(cmd=wire.HOST_STATUS, length=32), b"") == 1104  # length says 32, an LS follows


def test_lockspace_roundtrip_and_strict_fields() -> None:
    ls = WireLockspace("A" * 48, 7, 0x110, WireDisk("/dev/sdb", 3 * M))
    h = Header(cmd=wire.ADD_LOCKSPACE, data=2)
    assert decode_request(h, ls.encode()).lockspace == ls  # a 48-byte name needs no NUL
    raw = bytearray(ls.encode())
    raw[64:64 + 1024] = b"x" * 1024
    with pytest.raises(WireError) as exc:
        decode_request(h, bytes(raw))
    assert "lockspace.host_id_disk.path" in exc.value.message and exc.value.code == -errno.EINVAL
    raw = bytearray(ls.encode())
    raw[0:2] = b"\xff\xfe"
    with pytest.raises(WireError) as exc:
        decode_request(h, bytes(raw))
    assert "lockspace.name is not UTF-8" in exc.value.message
    with pytest.raises(WireError):
        decode_request(h, ls.encode()[:-1])


def test_inquire_string_and_killpath_args() -> None:
    assert wire.inquire_entry("ls1", "res1", [("/dev/loop0", M)], 1, False) == "ls1:res1:/dev/loop0:1048576:1"
    assert wire.inquire_entry("ls1", "res2", [("/a b:c", 0)], 5, True) == "ls1:res2:/a\\ b\\:c:0:SH"
    assert wire.split_args("a\\ b c\\\\d") == ["a b", "c\\d"]  # what python3-sanlock sends for ["a b", "c\\d"]
    assert wire.split_args("  x   y ") == ["x", "y"]
    payload = b"/bin/stop".ljust(128, b"\0") + b"vm\\ 1".ljust(128, b"\0")
    req = decode_request(Header(cmd=wire.KILLPATH, data2=wire.PID_SELF), payload)
    assert req.killpath == ("/bin/stop", "vm\\ 1")


def test_geometry_flags() -> None:
    assert wire.geometry_flags(0x110) == (512, M)
    assert wire.geometry_flags(0x220) == (4096, 2 * M)
    assert wire.geometry_flags(0) == (None, None)
    with pytest.raises(WireError):
        wire.geometry_flags(0x30)


def test_state_roundtrip() -> None:
    rec = wire.encode_state(wire.STATE_CLIENT, "vm1", "pid=42", 42, 7)
    assert wire.decode_state(rec, 0) == (wire.STATE_CLIENT, 42, 7, "vm1", "pid=42", len(rec))


def test_random_payloads_never_raise_anything_but_wireerror() -> None:
    """Every command, random header words and random payloads: WireError or a Request, nothing else."""
    rng = random.Random(1313)
    for _ in range(5000):
        cmd = rng.choice(list(wire.CMD_NAMES))
        words = [wire.MAGIC, rng.choice([0, 1, 2, rng.getrandbits(32)]), cmd, rng.getrandbits(32),
                 rng.choice([32, rng.getrandbits(16), rng.getrandbits(32)]), 0, rng.choice([0, 1, 2, 8, 9, rng.getrandbits(32)]),
                 rng.getrandbits(32)]
        try:
            h = decode_header(raw_header(*words))
            blob = rng.randbytes(rng.choice([0, 64, 200, 1200]))
            if rng.random() < 0.5:  # mostly small numbers, NULs and ASCII: plausible counts, names, paths
                blob = bytes(rng.choices([0, 1, 2, 0x2F, 0x41, 0xFF], k=rng.choice([128, 1104, 1300, 3000])))
            need = payload_needed(h, blob)
            if need <= len(blob):
                decode_request(h, blob[:need])
        except WireError as exc:
            assert exc.code < 0 and exc.message


def test_event_message_is_the_captured_one() -> None:
    msg = wire.encode_event(wire.WireHostEvent(1, 0, 0x1122, 0x3344), 2, 1)
    assert len(msg) == 80
    assert msg[:20] == bytes.fromhex("10202804" "01000000" "01000000" "00000000" "50000000")
    assert wire.decode_event(msg) == (wire.WireHostEvent(1, 0, 0x1122, 0x3344), 2, 1)
    ls = WireLockspace("LS")
    req = decode_request(Header(cmd=wire.SET_EVENT, cmd_flags=1, length=1168),
                         ls.encode() + wire.WireHostEvent(3, 0, 5, 7).encode())
    assert req.host_event == wire.WireHostEvent(3, 0, 5, 7) and req.lockspace == ls
