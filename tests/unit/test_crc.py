"""sanlock's CRC-32C variant against values read off disks written by the real sanlock (facts §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockengine import crc
from lockengine.ondisk import LEADER_CHECKSUM_LEN, Geometry, new_delta_leader, new_paxos_leader

GEOM_512_1M = Geometry(512, 1 << 20)
IMPLEMENTATIONS = {"c": crc.checksum, "python": crc.checksum_python}


def fresh_delta_body() -> bytes:
    return new_delta_leader("LS", GEOM_512_1M, 10).encode()[:LEADER_CHECKSUM_LEN]


def fresh_paxos_body() -> bytes:
    return new_paxos_leader("LS", "R1", GEOM_512_1M).encode()[:LEADER_CHECKSUM_LEN]


KNOWN = [
    ("fresh 512/1M delta record LS", fresh_delta_body, 0xB0F174C0),
    ("fresh paxos leader LS/R1", fresh_paxos_body, 0x2073A773),
    ("48 zero bytes (an empty dblock)", lambda: bytes(48), 0xCB5AD842),
]


def test_c_implementation_is_in_use() -> None:
    # The crc32c package is a dependency; without it every ballot would be ~100x slower.
    assert crc.IMPLEMENTATION == "c"


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize(("what", "body", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_sanlock_values(impl: str, what: str, body: object, expected: int) -> None:
    assert callable(body)
    assert IMPLEMENTATIONS[impl](body()) == expected, what


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_not_the_standard_crc32c(impl: str) -> None:
    # RFC 3720 CRC-32C of "123456789" is 0xE3069283; sanlock's seed and missing final xor differ.
    assert IMPLEMENTATIONS[impl](b"123456789") != 0xE3069283


@given(st.binary(max_size=4096))
def test_c_and_python_agree(data: bytes) -> None:
    assert crc.checksum(data) == crc.checksum_python(data)


def test_accepts_memoryview_and_bytearray() -> None:
    data = fresh_delta_body()
    for impl in IMPLEMENTATIONS.values():
        assert impl(memoryview(data)) == impl(bytearray(data)) == 0xB0F174C0
