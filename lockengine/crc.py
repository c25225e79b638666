"""sanlock's CRC-32C variant: Castagnoli, reflected, register seeded 0xFFFFFFFE, no final xor.

The C implementation from the ``crc32c`` package is used when installed (it is on the hot path:
every ballot checksums up to 2000 dblocks). A table-driven fallback keeps the engine working on
hosts where only the standard library exists; it is correct but ~100x slower.
"""

from __future__ import annotations

import types
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


def _load_extension() -> types.ModuleType | None:
    """The package's C extension alone: the package's ``__init__`` imports ``importlib.metadata``
    (with email, zipfile, datetime...: ~0.9 MiB of RSS in the daemon) only to set ``__version__``."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    try:
        spec = importlib.util.find_spec("crc32c")  # finds the package without running it
    except (ImportError, ValueError):
        return None
    name = "crc32c._crc32c"
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_crc32c" + suffix)
            if os.path.exists(path):
                loader = importlib.machinery.ExtensionFileLoader(name, path)
                ext_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if ext_spec is None:
                    return None
                module = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(module)
                sys.modules.setdefault(name, module)  # a later ``import crc32c`` reuses it
                return module
    return None


def _load_c() -> Callable[[bytes | bytearray | memoryview], int] | None:
    try:
        module = _load_extension()
    except (ImportError, OSError):
        module = None
    if module is not None:
        fn = module.crc32c
    else:
        try:
            import crc32c as _c  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
        fn = _c.crc32c

    # crc32c(data, 1) starts the register at ~1 = 0xFFFFFFFE and returns the complement.
    def _checksum_c(data: bytes | bytearray | memoryview) -> int:
        return int(fn(data, 1)) ^ 0xFFFFFFFF

    return _checksum_c


# The C implementation is looked up at the first checksum, not at import: CLI verbs that never
# checksum (``lockengine client status``) do not load it at all.
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
