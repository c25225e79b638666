"""Decoding lease areas for dump, and scanning real devices (per-area geometry, clean stop at the end)."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from lockengine import dump as dump_mod
from lockengine import ondisk
from lockengine.init import init_lockspace, init_resource
from lockengine.ondisk import DBlock, DeltaRecord, Geometry, ModeBlock, RequestRecord
from lockengine.storage import DirectStorage
from tests.conftest import LoopFactory

M = 1 << 20
G512 = Geometry(512, M)
G4K2 = Geometry(4096, 2 * M)


def acquired_lockspace(geom: Geometry, hosts: dict[int, tuple[int, int, str]], bits: dict[int, set[int]] | None = None) -> bytearray:
    """A committed lockspace area with ``hosts`` {host_id: (generation, timestamp, name)} written in."""
    area = bytearray(ondisk.lockspace_area("LS", geom, 10))
    first = ondisk.new_delta_leader("LS", geom, 10)
    area[: ondisk.LEADER_SIZE] = first.encode()
    for host_id, (gen, ts, name) in hosts.items():
        ld = replace(first, owner_id=host_id, owner_generation=gen, timestamp=ts, resource_name=name,
                     write_id=1, write_generation=5, write_timestamp=7)
        bitmap = ondisk.bitmap_with((bits or {}).get(host_id, set()))
        off = geom.host_offset(host_id)
        area[off : off + geom.sector_size] = DeltaRecord(ld, bitmap).encode_sector(geom.sector_size)
    return area


def test_lockspace_area_lists_only_acquired_slots() -> None:
    area = acquired_lockspace(G512, {2: (3, 100, "host-two"), 2000: (1, 0, "last")}, {2: {1, 7}})
    out = dump_mod.decode_lockspace_area(bytes(area), 0, G512)
    assert (out["kind"], out["lockspace"], out["sector_size"], out["align_size"], out["max_hosts"]) == (
        "lockspace", "LS", 512, M, 2000,
    )
    hosts = out["hosts"]
    assert [h["host_id"] for h in hosts] == [2, 2000]
    two = hosts[0]
    assert (two["owner_id"], two["generation"], two["timestamp"], two["host_name"], two["io_timeout"]) == (
        2, 3, 100, "host-two", 10,
    )
    assert two["bitmap"] == [1, 7]
    assert two["event"] == {"generation": 1, "event": 5, "data": 7}
    assert two["valid"] is True
    assert hosts[1]["timestamp"] == 0, "a released slot is still listed, with timestamp 0"


def test_corrupt_delta_record_is_listed_as_invalid_not_free() -> None:
    area = acquired_lockspace(G512, {3: (1, 50, "h3")})
    area[G512.host_offset(3) + 152] ^= 0xFF  # timestamp no longer matches the checksum
    area[G512.host_offset(5) : G512.host_offset(5) + 4] = struct.pack("<I", ondisk.PAXOS_DISK_MAGIC)
    out = dump_mod.decode_lockspace_area(bytes(area), 0, G512)
    by_id = {h["host_id"]: h for h in out["hosts"]}
    assert by_id[3]["valid"] is False and by_id[3]["error"]["name"] == "LEADER_CHECKSUM"
    assert by_id[5]["valid"] is False and by_id[5]["error"]["name"] == "LEADER_MAGIC"
    assert dump_mod.area_is_busy(out) is not None


def resource_with_slots(geom: Geometry) -> bytearray:
    area = bytearray(ondisk.resource_area("LS", "R1", geom))
    s = geom.sector_size
    leader = replace(
        ondisk.decode_leader(bytes(area)), owner_id=2, owner_generation=4, lver=9, timestamp=321,
        write_id=2, write_generation=4, write_timestamp=322, flags=geom.align_flag | ondisk.LFL_SHORT_HOLD,
    )
    area[: ondisk.LEADER_SIZE] = leader.encode()
    area[s : s + ondisk.REQUEST_SIZE] = RequestRecord(lver=10, force_mode=2).encode()
    db = DBlock(mbal=2002, bal=2002, inp=2, inp2=4, inp3=321, lver=9, flags=ondisk.DBLOCK_FL_RELEASED)
    off = geom.dblock_offset(2)
    area[off : off + s] = ondisk.host_sector(db, ModeBlock(), s)
    off = geom.dblock_offset(geom.max_hosts)  # the very last dblock of the area
    area[off : off + s] = ondisk.host_sector(DBlock(), ModeBlock(ondisk.MBLOCK_SHARED, 6), s)
    return area


@pytest.mark.parametrize("geom", [G512, G4K2], ids=["512/1M", "4K/2M"])
def test_resource_area_fields(geom: Geometry) -> None:
    out = dump_mod.decode_resource_area(bytes(resource_with_slots(geom)), 5 * M, geom, dblocks=True)
    expect = {
        "offset": 5 * M, "kind": "resource", "lockspace": "LS", "resource": "R1", "sector_size": geom.sector_size,
        "align_size": geom.align_size, "num_hosts": geom.max_hosts, "owner_id": 2, "owner_generation": 4,
        "lver": 9, "timestamp": 321, "short_hold": True, "write_id": 2, "write_generation": 4,
        "write_timestamp": 322, "cleared": False, "valid": True, "request": {"lver": 10, "force_mode": 2},
        "shared": [{"host_id": geom.max_hosts, "generation": 6}],
    }
    assert {k: out[k] for k in expect} == expect
    (d,) = out["dblocks"]
    assert (d["host_id"], d["mbal"], d["bal"], d["inp"], d["inp2"], d["inp3"], d["lver"], d["released"], d["valid"]) == (
        2, 2002, 2002, 2, 4, 321, 9, True, True,
    )
    assert d["checksum"] == ondisk.decode_dblock(DBlock(2002, 2002, 2, 4, 321, 9).encode(), 0).checksum
    assert dump_mod.area_is_busy(out) is not None
    assert "dblocks" not in dump_mod.decode_resource_area(bytes(resource_with_slots(geom)), 0, geom)


def test_resource_with_bad_leader_checksum_is_invalid_and_busy() -> None:
    area = bytearray(ondisk.resource_area("LS", "R1", G512))
    area[48] = 3  # lver changed without a new checksum: the leader fails validation
    out = dump_mod.decode_resource_area(bytes(area), 0, G512)
    assert out["valid"] is False and out["error"]["name"] == "LEADER_CHECKSUM"
    assert out["timestamp"] == 0
    assert "LEADER_CHECKSUM" in (dump_mod.area_is_busy(out) or "")


def test_free_and_cleared_resources_are_not_busy() -> None:
    free = dump_mod.decode_resource_area(ondisk.resource_area("LS", "R1", G512), 0, G512)
    assert dump_mod.area_is_busy(free) is None
    cleared = dump_mod.decode_resource_area(ondisk.resource_area("LS", "R1", G512, clear=True), 0, G512)
    assert cleared["cleared"] is True and dump_mod.area_is_busy(cleared) is None


def test_shared_holder_alone_makes_a_resource_busy() -> None:
    area = bytearray(ondisk.resource_area("LS", "R1", G512))
    off = G512.dblock_offset(4)
    area[off : off + 512] = ondisk.host_sector(DBlock(), ModeBlock(ondisk.MBLOCK_SHARED, 2), 512)
    out = dump_mod.decode_resource_area(bytes(area), 0, G512)
    assert out["timestamp"] == 0
    assert "shared holders (host ids 4)" in (dump_mod.area_is_busy(out) or "")


def test_unknown_geometry_area_is_reported() -> None:
    head = bytearray(ondisk.new_delta_leader("LS", G512, 10).encode())
    head[12:16] = struct.pack("<I", 1024)  # sector_size 1024 exists in no geometry
    with pytest.raises(Exception) as e:
        dump_mod.area_geometry(bytes(head))
    assert "1024" in str(e.value)


# --------------------------------------------------------------------------- devices


def test_dump_scans_areas_of_different_geometries(loop_device: LoopFactory) -> None:
    dev = loop_device(size=16 * M)
    with DirectStorage(dev.path) as st:
        init_lockspace(st, "LS", 0, G512, io_timeout=10)
        init_resource(st, "LS", "R1", M, G512)
        init_resource(st, "LS", "R4K", 2 * M, G4K2)
        init_resource(st, "LS", "R3", 4 * M, G512)
        st.write(5 * M + 3 * M, ondisk.resource_area("LS", "AFTERGAP", G512), 10)
        doc = dump_mod.dump(st)
        assert [(a["offset"], a["kind"], a.get("resource")) for a in doc["areas"]] == [
            (0, "lockspace", None), (M, "resource", "R1"), (2 * M, "resource", "R4K"), (4 * M, "resource", "R3"),
        ], "without a size the scan stops at the first gap, as sanlock's does"
        assert doc["areas"][2]["sector_size"] == 4096 and doc["areas"][2]["num_hosts"] == 500
        whole = dump_mod.dump(st, 0, 16 * M)
        assert [a.get("resource") for a in whole["areas"]][-1] == "AFTERGAP"
        part = dump_mod.dump(st, M, M)
        assert [a["resource"] for a in part["areas"]] == ["R1"]


def test_dump_stops_cleanly_at_the_end_of_the_device(loop_device: LoopFactory) -> None:
    dev = loop_device(size=3 * M)
    with DirectStorage(dev.path) as st:
        init_resource(st, "LS", "LAST", 2 * M, G512)
        doc = dump_mod.dump(st, 2 * M)
        assert [a["resource"] for a in doc["areas"]] == ["LAST"]
        assert dump_mod.dump(st, 0, 100 * M)["areas"][-1]["resource"] == "LAST"
        # a 4K/2M area whose header sits 1 MiB before the end: decoded as far as the device goes
        st.write(2 * M, ondisk.resource_area("LS", "CUT", G4K2)[: M], 10)
        cut = dump_mod.dump(st, 2 * M)["areas"]
        assert [(a["resource"], a.get("truncated")) for a in cut] == [("CUT", True)]


def test_interior_record_is_not_taken_for_an_area(loop_device: LoopFactory) -> None:
    """Host 257's delta record sits 1 MiB into a 4K/2M lockspace; it must not look like an area start."""
    dev = loop_device(size=8 * M)
    with DirectStorage(dev.path) as st:
        init_lockspace(st, "LS", 0, G4K2, io_timeout=10)
        doc = dump_mod.dump(st, M, 4 * M)
        assert doc["areas"] == []
        assert [a["offset"] for a in dump_mod.dump(st, 0, 4 * M)["areas"]] == [0]


def test_dump_input_errors(loop_device: LoopFactory) -> None:
    dev = loop_device(size=2 * M)
    with DirectStorage(dev.path) as st:
        for kwargs, field in (({"offset": 100}, "offset"), ({"offset": 4 * M}, "offset"), ({"size": -1}, "size")):
            with pytest.raises(Exception) as e:
                dump_mod.dump(st, **kwargs)  # type: ignore[arg-type]
            assert getattr(e.value, "field", None) == field, e.value
