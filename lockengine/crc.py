"""sanlock's CRC-32C variant: Castagnoli, reflected, register seeded 0xFFFFFFFE, no final xor.

The C implementation from the ``crc32c`` package is used when installed (it is on the hot path:
every ballot checksums up to 2000 dblocks). A table-driven fallback keeps the engine working on
hosts where only the standard library exists; it is correct but ~100x slower.
"""

from __future__ import annotations

from collections.abc import Callable

_POLY = 0x82F63B78


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def _checksum_python(data: bytes | bytearray | memoryview) -> int:
    crc = 0xFFFFFFFE
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _load_c() -> Callable[[bytes | bytearray | memoryview], int] | None:
    try:
        import crc32c as _c  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    fn = _c.crc32c

    # crc32c(data, 1) starts the register at ~1 = 0xFFFFFFFE and returns the complement.
    def _checksum_c(data: bytes | bytearray | memoryview) -> int:
        return int(fn(data, 1)) ^ 0xFFFFFFFF

    return _checksum_c


# The C implementation is looked up at the first checksum, not at import: importing the crc32c
# package costs ~100 ms (it loads importlib.metadata), which CLI verbs that never checksum
# (``lockengine client status``) must not pay. The daemon pays it once, at its first read.
_impl: Callable[[bytes | bytearray | memoryview], int] | None = None


def _resolve() -> Callable[[bytes | bytearray | memoryview], int]:
    global _impl
    if _impl is None:
        _impl = _load_c() or _checksum_python
    return _impl


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Checksum of ``data`` as sanlock stores it (little-endian u32 on disk)."""
    return (_impl or _resolve())(data)


def __getattr__(name: str) -> str:
    if name == "IMPLEMENTATION":  # "c" or "python"
        return "python" if _resolve() is _checksum_python else "c"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


checksum_python = _checksum_python
