"""Convert a held resource lease between exclusive and shared, on disk as sanlock 3.8 does (facts from
sanlock's resource code; checked against the real sanlock in tests/system/test_sanlock_convert.py).

* exclusive -> shared: our sector gets the SHARED mode block (with our dblock flagged RELEASED) before
  the leader is freed, so at every moment the lease is ours exclusively or shared by us on disk;
* shared -> exclusive: a ballot run while every write of our sector keeps our SHARED mode block
  (``PaxosLease.keep_mode``), so we stay a sharer on disk whatever happens to the ballot. Won with no
  other live sharer: our mode block is cleared and we hold the lease exclusively. Another live
  sharer: the leader is released again and EAGAIN; we still hold the lease shared. Any other failure
  (IDLIVE, an I/O error): we still hold it shared.

Built on PaxosLease's public methods: ``release`` and ``acquire`` do the writes, ``keep_mode`` keeps
the mode block; only the final clear of our own mode block is written here.
"""

from __future__ import annotations

import contextlib
import threading

from .errors import LockError
from .ondisk import MBLOCK_SHARED, ModeBlock, decode_dblock, host_sector
from .paxos import PaxosLease


def to_shared(lease: PaxosLease) -> None:
    """Exclusive -> shared. On failure the lease is still held exclusively in memory (and may be
    shared on disk too: the next release clears both)."""
    held = lease.leader
    if held is None or lease.shared:
        raise LockError("EINVAL", f"{lease.resource_name} is not held exclusively by this host")
    lease.keep_mode = ModeBlock(MBLOCK_SHARED, lease.generation)
    try:
        lease.release()  # our dblock RELEASED with the SHARED mode block, then the leader freed
    finally:
        lease.keep_mode = None
    lease.leader, lease.shared = held, True


def to_exclusive(lease: PaxosLease, *, nowait: bool = False, abort: threading.Event | None = None) -> None:
    """Shared -> exclusive; raises (EAGAIN when another live host shares it) with the lease still
    held shared, on disk and in memory."""
    shared = lease.leader
    if shared is None or not lease.shared:
        raise LockError("EINVAL", f"{lease.resource_name} is not held shared by this host")
    lease.keep_mode = ModeBlock(MBLOCK_SHARED, lease.generation)
    try:
        lease.acquire(shared=False, nowait=nowait, abort=abort)
    except BaseException:
        lease.leader, lease.shared = shared, True
        raise
    finally:
        lease.keep_mode = None
    # Held exclusively whatever this write does (as sanlock): a release clears the mode block anyway.
    with contextlib.suppress(LockError, OSError):
        clear_own_mode_block(lease)


def clear_own_mode_block(lease: PaxosLease) -> None:
    """Rewrite our sector with its dblock and an empty mode block (only we write our sector)."""
    off = lease.offset + lease.geometry.dblock_offset(lease.host_id)
    sector = lease.geometry.sector_size
    dblock = decode_dblock(lease.storage.read(off, sector, lease.io_timeout), 0)
    lease.storage.write(off, host_sector(dblock, ModeBlock(), sector), lease.io_timeout)
