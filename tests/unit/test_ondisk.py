"""On-disk records: round-trips, the geometry table and validation (facts §0-§3)."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockengine import ondisk
from lockengine.errors import InputError, LockError
from lockengine.ondisk import (
    BITMAP_OFFSET,
    DELTA_DISK_MAGIC,
    LEADER_CHECKSUM_LEN,
    LEADER_SIZE,
    MBLOCK_OFFSET,
    PAXOS_DISK_CLEAR,
    PAXOS_DISK_MAGIC,
    DBlock,
    DeltaRecord,
    Geometry,
    Leader,
    ModeBlock,
    RequestRecord,
)

M = 1 << 20
U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)
U16 = st.integers(0, 2**16 - 1)
# Names as sanlock stores them: 1..48 bytes, no NUL; ASCII keeps the byte count obvious.
NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=48)


leaders = st.builds(
    Leader,
    magic=U32, version=U32, flags=U32, sector_size=U32, num_hosts=U64, max_hosts=U64,
    owner_id=U64, owner_generation=U64, lver=U64, space_name=NAMES, resource_name=NAMES | st.just(""),
    timestamp=U64, io_timeout=U16, write_id=U64, write_generation=U64, write_timestamp=U64,
    unused1=U64, unused2=U16,
)


# --------------------------------------------------------------------------- round trips


@given(leaders)
def test_leader_round_trip(ld: Leader) -> None:
    raw = ld.encode()
    assert len(raw) == LEADER_SIZE
    back = ondisk.decode_leader(raw)
    assert back == replace(ld, checksum=back.checksum)
    assert ondisk.leader_checksum_ok(raw)
    assert struct.unpack_from("<I", raw, LEADER_CHECKSUM_LEN)[0] == back.checksum


@given(leaders, st.sets(st.integers(1, 2000), max_size=40), st.sampled_from([512, 4096]))
def test_delta_sector_round_trip(ld: Leader, hosts: set[int], sector_size: int) -> None:
    rec = DeltaRecord(ld, ondisk.bitmap_with(hosts))
    sector = rec.encode_sector(sector_size)
    assert len(sector) == sector_size
    assert not any(sector[BITMAP_OFFSET + 256 :]), "bytes after the bitmap are zero"
    back = ondisk.decode_delta_sector(sector, 0)
    assert back.bitmap == rec.bitmap
    assert {h for h in range(1, 2049) if back.bit_set(h)} == hosts


@given(U64, U64, U64, U64, U64, U64, st.sampled_from([0, 1]))
def test_dblock_round_trip(mbal: int, bal: int, inp: int, inp2: int, inp3: int, lver: int, flags: int) -> None:
    db = DBlock(mbal, bal, inp, inp2, inp3, lver, flags=flags)
    raw = db.encode()
    back = ondisk.decode_dblock(raw, 0)
    assert (back.mbal, back.bal, back.inp, back.inp2, back.inp3, back.lver, back.flags) == (
        mbal, bal, inp, inp2, inp3, lver, flags,
    )
    assert ondisk.dblock_checksum_ok(raw, 0, back)
    assert back.released == bool(flags)


def test_dblock_released_flag_is_outside_the_checksum() -> None:
    db = DBlock(mbal=2, bal=2, inp=2, inp2=1, inp3=354, lver=1)
    assert db.encode()[:52] == replace(db, flags=ondisk.DBLOCK_FL_RELEASED).encode()[:52]
    # the dblock sanlock 3.8.5 wrote for host 2 at lver 1 (dump: "sum 37f4c35c")
    assert ondisk.decode_dblock(db.encode(), 0).checksum == 0x37F4C35C


@given(U32, U64, st.sampled_from([512, 4096]))
def test_mode_block_round_trip(flags: int, gen: int, sector_size: int) -> None:
    sector = ondisk.host_sector(DBlock(mbal=1), ModeBlock(flags, gen), sector_size)
    assert len(sector) == sector_size
    back = ondisk.decode_mblock(sector, 0)
    assert (back.flags, back.generation) == (flags, gen)
    assert back.shared == bool(flags & 1)


def test_shared_mode_block_bytes_match_sanlock() -> None:
    sector = ondisk.host_sector(DBlock(), ModeBlock(ondisk.MBLOCK_SHARED, 1), 512)
    assert sector[MBLOCK_OFFSET : MBLOCK_OFFSET + 16] == bytes.fromhex("01000000 00000000 01000000 00000000")


@given(U64, st.sampled_from([0, 1, 2]))
def test_request_round_trip(lver: int, mode: int) -> None:
    raw = RequestRecord(lver, mode).encode()
    assert len(raw) == ondisk.REQUEST_SIZE
    back = ondisk.decode_request(raw, 0)
    assert (back.lver, back.force_mode, back.magic, back.version) == (lver, mode, 0x08292011, 0x00010001)


@given(NAMES, NAMES)
def test_names_round_trip(space: str, res: str) -> None:
    ld = ondisk.new_paxos_leader(space, res, Geometry(512, M))
    back = ondisk.decode_leader(ld.encode())
    assert (back.space_name, back.resource_name) == (space, res)


# --------------------------------------------------------------------------- geometry


GEOMETRIES = [
    (512, 1 * M, 2000, 0x10),
    (4096, 1 * M, 250, 0x10),
    (4096, 2 * M, 500, 0x20),
    (4096, 4 * M, 1000, 0x40),
    (4096, 8 * M, 2000, 0x80),
]


@pytest.mark.parametrize(("sector", "align", "max_hosts", "flag"), GEOMETRIES)
def test_geometry_table(sector: int, align: int, max_hosts: int, flag: int) -> None:
    g = Geometry(sector, align)
    assert (g.max_hosts, g.align_flag) == (max_hosts, flag)
    assert ondisk.geometry_from_flags(sector, flag) == g
    assert g.host_offset(max_hosts) + sector <= align, "every host record fits in the area"
    assert g.dblock_offset(max_hosts) + sector <= align, "every dblock fits in the area"
    g.check_host_id(1)
    g.check_host_id(max_hosts)
    with pytest.raises(InputError) as e:
        g.check_host_id(max_hosts + 1)
    assert e.value.field == "host_id" and e.value.value == max_hosts + 1
    assert str(max_hosts) in str(e.value)


def test_record_offsets_match_sanlock() -> None:
    g = Geometry(512, M)
    assert g.host_offset(2000) == 1023488 == 0xF9E00
    assert g.dblock_offset(1) == 0x400 and g.dblock_offset(2) == 0x600 and g.dblock_offset(2000) == 0xFA200


@pytest.mark.parametrize(("sector", "align"), [(512, 2 * M), (512, 8 * M), (4096, 3 * M), (1024, M), (4096, 16 * M)])
def test_unknown_geometry_is_refused(sector: int, align: int) -> None:
    with pytest.raises(InputError) as e:
        Geometry(sector, align)
    assert e.value.field == "sector_size/align_size"
    assert f"{sector}/{align}" in str(e.value)


def test_records_without_align_flag_use_old_defaults() -> None:
    assert ondisk.geometry_from_flags(512, 0) == Geometry(512, M)
    assert ondisk.geometry_from_flags(4096, 0) == Geometry(4096, 8 * M)


def test_two_align_flags_are_refused() -> None:
    with pytest.raises(LockError) as e:
        ondisk.geometry_from_flags(4096, 0x30)
    assert e.value.name == "LEADER_SECTORSIZE" and "0x30" in e.value.message


# --------------------------------------------------------------------------- validation


def _delta_sector(name: str = "LS") -> bytearray:
    return bytearray(DeltaRecord(ondisk.new_delta_leader(name, Geometry(512, M), 10)).encode_sector(512))


def _paxos_sector(ls: str = "LS", res: str = "R1", num_hosts: int = 0) -> bytearray:
    out = bytearray(512)
    enc = ondisk.new_paxos_leader(ls, res, Geometry(512, M), num_hosts).encode()
    out[: len(enc)] = enc
    return out


def _raises(name: str, fn: object, *args: object) -> LockError:
    assert callable(fn)
    with pytest.raises(LockError) as e:
        fn(*args)
    assert e.value.name == name, e.value
    return e.value


def test_delta_validation() -> None:
    ok = _delta_sector()
    assert ondisk.verify_delta_leader(bytes(ok), 0, "LS").space_name == "LS"

    bad = bytearray(ok)
    bad[0:4] = struct.pack("<I", PAXOS_DISK_MAGIC)
    err = _raises("LEADER_MAGIC", ondisk.verify_delta_leader, bytes(bad), 0, "LS")
    assert "0x06152010" in err.message and "0x12212010" in err.message

    err = _raises("LEADER_LOCKSPACE", ondisk.verify_delta_leader, bytes(ok), 0, "OTHER")
    assert "'LS'" in err.message and "'OTHER'" in err.message

    bad = bytearray(ok)
    bad[4:8] = struct.pack("<I", 0x00040004)
    _raises("LEADER_VERSION", ondisk.verify_delta_leader, bytes(bad), 0, "LS")

    bad = bytearray(ok)
    bad[152] ^= 1  # timestamp changed behind the checksum's back
    _raises("LEADER_CHECKSUM", ondisk.verify_delta_leader, bytes(bad), 0, "LS")


def test_delta_minor_version_is_accepted() -> None:
    raw = bytearray(_delta_sector())
    ld = replace(ondisk.decode_leader(bytes(raw)), version=0x00030009)
    raw[:LEADER_SIZE] = ld.encode()
    assert ondisk.verify_delta_leader(bytes(raw), 0, "LS").version == 0x00030009


def test_paxos_validation() -> None:
    ok = bytes(_paxos_sector(num_hosts=8))
    assert ondisk.verify_paxos_leader(ok, "LS", "R1", 8).num_hosts == 8

    _raises("LEADER_LOCKSPACE", ondisk.verify_paxos_leader, ok, "LX", "R1")
    err = _raises("LEADER_RESOURCE", ondisk.verify_paxos_leader, ok, "LS", "R2")
    assert "'R1'" in err.message and "'R2'" in err.message
    _raises("LEADER_NUMHOSTS", ondisk.verify_paxos_leader, ok, "LS", "R1", 9)

    delta = bytes(_delta_sector())
    _raises("LEADER_MAGIC", ondisk.verify_paxos_leader, delta, "LS", "R1")

    cleared = bytearray(ok)
    cleared[0:4] = struct.pack("<I", PAXOS_DISK_CLEAR)
    err = _raises("LEADER_MAGIC", ondisk.verify_paxos_leader, bytes(cleared), "LS", "R1")
    assert "cleared" in err.message

    bad = bytearray(ok)
    bad[40] ^= 0xFF  # owner_generation
    _raises("LEADER_CHECKSUM", ondisk.verify_paxos_leader, bytes(bad), "LS", "R1")


def test_bad_dblock_checksum_is_reported_never_taken_as_empty() -> None:
    area = bytearray(ondisk.resource_area("LS", "R1", Geometry(512, M)))
    off = Geometry(512, M).dblock_offset(3)
    area[off : off + 56] = DBlock(mbal=3, bal=3, inp=3, inp2=1, inp3=9, lver=1).encode()
    area[off + 8] ^= 1  # bal flipped: checksum no longer matches
    slots = ondisk.decode_paxos_slots(bytes(area), 512, 2000)
    assert set(slots) == {3}
    assert slots[3].checksum_ok is False
    assert slots[3].dblock.bal == 2


def test_all_zero_dblock_is_valid() -> None:
    assert ondisk.dblock_checksum_ok(bytes(56), 0, DBlock())


# --------------------------------------------------------------------------- whole areas


@pytest.mark.parametrize(("sector", "align"), [(s, a) for s, a, _, _ in GEOMETRIES])
def test_lockspace_area_layout(sector: int, align: int) -> None:
    g = Geometry(sector, align)
    area = ondisk.lockspace_area("LS", g, 10)
    assert len(area) == align
    first = ondisk.decode_leader(area, 0)
    assert first.magic == 0, "record 0 stays invalid until the commit write"
    assert ondisk.leader_checksum_ok(area, 0)
    for h in (2, g.max_hosts):
        ld = ondisk.verify_delta_leader(area, g.host_offset(h), "LS")
        assert (ld.magic, ld.max_hosts, ld.owner_id, ld.timestamp, ld.io_timeout) == (DELTA_DISK_MAGIC, 1, 0, 0, 10)
        assert ld.flags == g.align_flag and ld.sector_size == sector
    assert not any(area[g.host_offset(g.max_hosts) + sector :]), "after the last record the area is zero"


def test_fresh_delta_record_matches_sanlock_bytes() -> None:
    raw = ondisk.new_delta_leader("LS", Geometry(512, M), 10).encode()
    assert raw[0:16] == bytes.fromhex("10202112 04000300 10000000 00020000")
    assert struct.unpack_from("<I", raw, 0xA8)[0] == 0xB0F174C0
    assert raw[0xAE:0xB0] == b"\x0a\x00"


@pytest.mark.parametrize(("sector", "align"), [(s, a) for s, a, _, _ in GEOMETRIES])
def test_resource_area_layout(sector: int, align: int) -> None:
    g = Geometry(sector, align)
    area = ondisk.resource_area("LS", "R1", g)
    ld = ondisk.verify_paxos_leader(area, "LS", "R1", g.max_hosts)
    assert (ld.num_hosts, ld.max_hosts, ld.timestamp, ld.lver, ld.io_timeout) == (g.max_hosts, g.max_hosts, 0, 0, 0)
    req = ondisk.decode_request(area, sector)
    assert (req.magic, req.version, req.lver, req.force_mode) == (0x08292011, 0x00010001, 0, 0)
    assert not any(area[2 * sector :]), "every dblock starts zeroed"


def test_resource_area_refuses_bad_num_hosts_and_names() -> None:
    g = Geometry(4096, M)
    with pytest.raises(InputError) as e:
        ondisk.resource_area("LS", "R1", g, num_hosts=251)
    assert e.value.field == "num_hosts" and "1..250" in str(e.value)
    with pytest.raises(InputError) as e:
        ondisk.resource_area("LS", "R" * 49, g)
    assert e.value.field == "resource name" and "48" in str(e.value)


def test_names_up_to_48_bytes() -> None:
    assert ondisk.encode_name("x" * 48, "lockspace name") == b"x" * 48
    for bad, why in (("x" * 49, "48"), ("", "non-empty"), ("a:b", "':'"), ("é" * 25, "48")):
        with pytest.raises(InputError) as e:
            ondisk.encode_name(bad, "lockspace name")
        assert e.value.field == "lockspace name" and why in str(e.value), bad


def test_48_byte_name_has_no_nul_and_decodes() -> None:
    ld = ondisk.new_delta_leader("N" * 48, Geometry(512, M), 10)
    raw = ld.encode()
    assert raw[56:104] == b"N" * 48
    assert ondisk.decode_leader(raw).space_name == "N" * 48


def test_paxos_read_span_is_a_power_of_two_of_sectors() -> None:
    assert ondisk.paxos_read_span(2000, 512) == 2048 * 512
    assert ondisk.paxos_read_span(8, 512) == 16 * 512
    assert ondisk.paxos_read_span(250, 4096) == 256 * 4096


# --------------------------------------------------------------------------- the fast ballot scan


@given(
    st.dictionaries(st.integers(1, 2000), st.tuples(U64, U64, U64, U64, U64, U64, st.sampled_from([0, 1])), max_size=30),
    st.sets(st.integers(1, 2000), max_size=5),
    st.sets(st.integers(1, 2000), max_size=5),
)
def test_fast_scan_agrees_with_a_sector_by_sector_decode(
    dblocks: dict[int, tuple[int, int, int, int, int, int, int]], shared: set[int], corrupt: set[int]
) -> None:
    """scan_paxos_sectors skips zero runs and unpacks in bulk: it must find exactly what decoding
    every one of the 2000 sectors one by one finds."""
    g = Geometry(512, M)
    area = bytearray(ondisk.resource_area("LS", "R1", g))
    for h in set(dblocks) | shared:
        vals = dblocks.get(h, (0, 0, 0, 0, 0, 0, 0))
        sector = ondisk.host_sector(DBlock(*vals[:6], flags=vals[6]), ModeBlock(int(h in shared), h), 512)
        area[g.dblock_offset(h) : g.dblock_offset(h) + 512] = sector
    for h in corrupt & set(dblocks):
        area[g.dblock_offset(h) + 16] ^= 0x40
    buf = bytes(area)
    want = {}
    for h in range(1, 2001):
        off = g.dblock_offset(h)
        if any(buf[off : off + 144]):
            db, mb = ondisk.decode_dblock(buf, off), ondisk.decode_mblock(buf, off)
            want[h] = (db, mb, ondisk.dblock_checksum_ok(buf, off, db))
    got = ondisk.scan_paxos_sectors(buf, 512, 2000)
    assert [h for h, _ in got] == sorted(want)
    for h, f in got:
        db, mb, ok = want[h]
        F = ondisk.SlotField
        assert (f[F.MBAL], f[F.BAL], f[F.INP], f[F.INP2], f[F.INP3], f[F.LVER], f[F.CHECKSUM], f[F.FLAGS]) == (
            db.mbal, db.bal, db.inp, db.inp2, db.inp3, db.lver, db.checksum, db.flags)
        assert (f[F.MODE_FLAGS], f[F.MODE_PAD], f[F.GENERATION]) == (mb.flags, 0, mb.generation)
        assert (ondisk.slot_dblock(f), ondisk.slot_mode_block(f)) == (db, mb)
        assert ondisk.slot_checksum_ok(buf, 512, h, f) == ok
