"""``lockengine direct ...``: straight to the disk, no daemon (docs/cli.md).

The verbs and their letters are sanlock's, so ``sanlock direct`` commands paste unchanged; output
without --json looks like sanlock's.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..dump import DEFAULT_TIMEOUT, dump
from ..errors import InputError, LockError
from ..init import choose_geometry, init_lockspace, init_resource
from ..ondisk import (
    DEFAULT_IO_TIMEOUT,
    Geometry,
    Leader,
    decode_delta_sector,
    decode_leader,
    geometry_from_flags,
    parse_size,
    verify_delta_leader,
    verify_paxos_leader,
)
from ..storage import DirectStorage
from ..strings import LockspaceSpec, ResourceSpec, parse_dump_target, parse_lockspace, parse_resource
from .output import emit, format_dump, format_leader, json_parent

PROBE = 4096  # covers the first record of either sector size


# --------------------------------------------------------------------------- argument helpers


# Option values stay strings in argparse and are checked here, so a bad value is an InputError
# (exit 1, a JSON error naming the field) rather than a usage error.


def int_opt(text: str | None, field: str, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InputError(field, text, f"give a whole number from {low} to {high}")
    return int(text)


def int_req(text: str, field: str, low: int, high: int) -> int:
    value = int_opt(text, field, low, high)
    assert value is not None
    return value


def sector_size_opt(text: str | None) -> int | None:
    if text is None:
        return None
    if text not in ("512", "4096", "4K", "4k"):
        raise InputError("sector_size", text, "use 512 or 4096")
    return 4096 if text.lower() == "4k" else int(text)


def align_size_opt(text: str | None) -> int | None:
    if text is None:
        return None
    value = parse_size(text, "align_size") if text.isascii() and text[:1].isdigit() else 0
    if value not in (1 << 20, 2 << 20, 4 << 20, 8 << 20):
        raise InputError("align_size", text, "use 1M, 2M, 4M or 8M")
    return value


def io_timeout_opt(args: argparse.Namespace) -> int:
    return int_opt(args.io_timeout, "io_timeout", 1, 255) or DEFAULT_IO_TIMEOUT


def _one_disk(res: ResourceSpec) -> None:
    if len(res.disks) != 1:
        raise InputError("RESOURCE", str(res), "lockengine uses one disk per resource; give a single path:offset")


@contextmanager
def _open(path: str, readonly: bool = False) -> Iterator[DirectStorage]:
    storage = DirectStorage(path, readonly=readonly)
    try:
        yield storage
    finally:
        storage.close()


def our_host_name(args: argparse.Namespace) -> str:
    """--host-name, else the name lockengined would use (config file, else derived from machine-id),
    so a host id taken here is the daemon's own slot and it rejoins on the fast path."""
    if args.host_name:
        return str(args.host_name)
    from ..config import load_config

    return load_config().host_name


# --------------------------------------------------------------------------- init


def cmd_init(args: argparse.Namespace) -> int:
    if args.lockspace:
        ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
        with _open(ls.path) as storage:
            geom = choose_geometry(storage, sector_size_opt(args.sector_size), align_size_opt(args.align_size))
            if ls.host_id:
                geom.check_host_id(ls.host_id, "-s LOCKSPACE host_id")
            result = init_lockspace(
                storage, ls.name, ls.offset, geom, io_timeout=io_timeout_opt(args), force=args.force
            )
    else:
        res = parse_resource(args.resource, "-r RESOURCE")
        _one_disk(res)
        if res.lver is not None or res.shared:
            raise InputError("-r RESOURCE", args.resource, "init takes no :lver or :SH suffix")
        with _open(res.path) as storage:
            geom = choose_geometry(storage, sector_size_opt(args.sector_size), align_size_opt(args.align_size))
            result = init_resource(
                storage, res.lockspace, res.name, res.offset, geom,
                num_hosts=int_opt(args.num_hosts, "num_hosts", 1, 2000) or 0,
                clear=bool(int_opt(args.clear, "clear", 0, 1)), force=args.force,
            )
    emit(args, result.as_dict(), "init done 0")
    return 0


# --------------------------------------------------------------------------- dump


def cmd_dump(args: argparse.Namespace) -> int:
    path, offset, size = parse_dump_target(args.target)
    level = int_opt(args.level, "-f", 0, 2) or 0
    with _open(path, readonly=True) as storage:
        doc = dump(storage, offset, size, dblocks=level >= 2, timeout=DEFAULT_TIMEOUT)
    emit(args, doc, format_dump(doc, level))
    return 0


# --------------------------------------------------------------------------- read_leader


def _leader_doc(kind: str, path: str, offset: int, ld: Leader, bitmap: bytes | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": kind, "path": path, "offset": offset}
    doc.update(ld.as_dict())
    if bitmap is not None:
        doc["bitmap"] = [h for h in range(1, 8 * len(bitmap) + 1) if bitmap[(h - 1) >> 3] & (1 << ((h - 1) & 7))]
    return doc


def read_delta(storage: DirectStorage, ls: LockspaceSpec, timeout: float) -> tuple[Geometry, int, bytes, Leader]:
    """(geometry, record offset, sector, validated leader) of ls.host_id's record (host 1 when 0)."""
    head = storage.read(ls.offset, max(PROBE, storage.sector_size), timeout)
    first = verify_delta_leader(head, 0, ls.name)
    geom = geometry_from_flags(first.sector_size, first.flags)
    host_id = ls.host_id or 1
    geom.check_host_id(host_id, "LOCKSPACE host_id")
    at = ls.offset + geom.host_offset(host_id)
    sector = storage.read(at, max(geom.sector_size, storage.sector_size), timeout)[: geom.sector_size]
    return geom, at, sector, verify_delta_leader(sector, 0, ls.name)


def read_paxos(storage: DirectStorage, res: ResourceSpec, timeout: float) -> tuple[Geometry, Leader]:
    head = storage.read(res.offset, max(PROBE, storage.sector_size), timeout)
    ld = verify_paxos_leader(head, res.lockspace, res.name)
    return geometry_from_flags(ld.sector_size, ld.flags), ld


def cmd_read_leader(args: argparse.Namespace) -> int:
    if args.lockspace:
        ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
        with _open(ls.path, readonly=True) as storage:
            _, at, sector, ld = read_delta(storage, ls, io_timeout_opt(args))
        doc = _leader_doc("lockspace", ls.path, at, ld, decode_delta_sector(sector, 0).bitmap)
    else:
        res = parse_resource(args.resource, "-r RESOURCE")
        _one_disk(res)
        with _open(res.path, readonly=True) as storage:
            _, ld = read_paxos(storage, res, io_timeout_opt(args))
        doc = _leader_doc("resource", res.path, res.offset, ld)
    emit(args, doc, format_leader(doc) + "read_leader done 0")
    return 0


# --------------------------------------------------------------------------- delta leases


def _delta_lease(storage: DirectStorage, ls: LockspaceSpec, args: argparse.Namespace) -> Any:
    from ..delta import DeltaLease

    if ls.host_id == 0:
        raise InputError("-s LOCKSPACE host_id", 0, "give this host's id (1 or more)")
    return DeltaLease(
        storage, ls.name, ls.host_id, ls.offset,
        host_name=our_host_name(args), io_timeout=io_timeout_opt(args),
    )


def _adopt_delta(lease: Any, storage: DirectStorage) -> Leader:
    """Take over a slot this host acquired in an earlier process (release/renew from the command line).
    Refuses a slot that names another host: only its holder may write it."""
    try:
        ld: Leader = lease.adopt()
    except LockError as exc:
        raise LockError(exc.name, f"{exc.message}; give --host-name to act as that host") from None
    return ld


def _delta_doc(ls: LockspaceSpec, lease: Any, ld: Leader) -> dict[str, Any]:
    return {
        "ok": True, "lockspace": ls.name, "host_id": ls.host_id, "path": ls.path, "offset": ls.offset,
        "generation": ld.owner_generation, "timestamp": ld.timestamp, "host_name": ld.resource_name,
        "io_timeout": ld.io_timeout,
    }


def cmd_acquire_id(args: argparse.Namespace) -> int:
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    with _open(ls.path) as storage:
        lease = _delta_lease(storage, ls, args)
        ld = lease.acquire()
        doc = _delta_doc(ls, lease, ld)
    emit(args, doc, f"host_id {ls.host_id} generation {doc['generation']}\nacquire_id done 0")
    return 0


def cmd_renew_id(args: argparse.Namespace) -> int:
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    with _open(ls.path) as storage:
        lease = _delta_lease(storage, ls, args)
        _adopt_delta(lease, storage)
        lease.renew()
        _, _, _, ld = read_delta(storage, ls, lease.io_timeout)
        doc = _delta_doc(ls, lease, ld)
    emit(args, doc, f"host_id {ls.host_id} generation {doc['generation']} timestamp {doc['timestamp']}\nrenew_id done 0")
    return 0


def cmd_release_id(args: argparse.Namespace) -> int:
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    with _open(ls.path) as storage:
        lease = _delta_lease(storage, ls, args)
        _adopt_delta(lease, storage)
        lease.release()
        _, _, _, ld = read_delta(storage, ls, lease.io_timeout)
        doc = _delta_doc(ls, lease, ld)
    emit(args, doc, "release_id done 0")
    return 0


# --------------------------------------------------------------------------- paxos leases


def _liveness(args: argparse.Namespace, res: ResourceSpec, io_timeout: int) -> tuple[Any, DirectStorage | None]:
    """The owner-liveness judge from ``-s LS:0:PATH:OFF``; without it a held lease is refused at once."""
    if not args.lockspace:
        return None, None
    from ..liveness import DeltaOwnerLiveness

    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    if ls.name != res.lockspace:
        raise InputError("-s LOCKSPACE name", ls.name, f"give the resource's lockspace {res.lockspace!r}")
    storage = DirectStorage(ls.path)
    try:
        head = storage.read(ls.offset, max(PROBE, storage.sector_size), io_timeout)
        first = verify_delta_leader(head, 0, ls.name)
        geom = geometry_from_flags(first.sector_size, first.flags)
    except BaseException:
        storage.close()
        raise
    return DeltaOwnerLiveness(storage, ls.offset, ls.name, geom, io_timeout=io_timeout), storage


def _paxos_lease(storage: DirectStorage, res: ResourceSpec, args: argparse.Namespace, liveness: Any = None) -> Any:
    from ..paxos import PaxosLease

    return PaxosLease(
        storage, res.lockspace, res.name, res.offset,
        host_id=int_req(args.host_id, "host_id", 1, 2000), generation=int_req(args.generation, "generation", 1, 2**63 - 1),
        io_timeout=io_timeout_opt(args), liveness=liveness,
    )


def _resource_doc(res: ResourceSpec, ld: Leader) -> dict[str, Any]:
    return {
        "ok": True, "lockspace": res.lockspace, "resource": res.name, "path": res.path, "offset": res.offset,
        "owner_id": ld.owner_id, "owner_generation": ld.owner_generation, "lver": ld.lver,
        "timestamp": ld.timestamp, "shared": res.shared,
    }


def cmd_acquire(args: argparse.Namespace) -> int:
    res = parse_resource(args.resource, "-r RESOURCE")
    _one_disk(res)
    io_timeout = io_timeout_opt(args)
    liveness, ls_storage = _liveness(args, res, io_timeout)
    try:
        with _open(res.path) as storage:
            lease = _paxos_lease(storage, res, args, liveness)
            ld = lease.acquire(shared=res.shared, lver=res.lver or 0, nowait=args.nowait)
    finally:
        if ls_storage is not None:
            ls_storage.close()
    doc = _resource_doc(res, ld)
    emit(args, doc, f"owner_id {ld.owner_id} owner_generation {ld.owner_generation} lver {ld.lver}\nacquire done 0")
    return 0


def _adopt_paxos(lease: Any, storage: DirectStorage, res: ResourceSpec) -> None:
    """Take over a lease this host acquired in an earlier process, from what is on disk."""
    lease.adopt()
    if res.shared and not lease.shared:
        raise LockError("RELEASE_OWNER", f"{res.name}: host {lease.host_id} holds no shared lease")


def cmd_release(args: argparse.Namespace) -> int:
    res = parse_resource(args.resource, "-r RESOURCE")
    _one_disk(res)
    with _open(res.path) as storage:
        lease = _paxos_lease(storage, res, args)
        _adopt_paxos(lease, storage, res)
        lease.release()
        ld = decode_leader(storage.read(res.offset, max(PROBE, storage.sector_size), lease.io_timeout), 0)
    emit(args, _resource_doc(res, ld), "release done 0")
    return 0


# --------------------------------------------------------------------------- parser


def add_parser(subparsers: Any) -> None:
    """Register ``direct`` and its verbs on the top-level subparsers."""
    common = json_parent()
    direct = subparsers.add_parser(
        "direct", help="read and write leases on disk without a daemon",
        description="Read and write sanlock-compatible leases on disk, without a daemon.",
    )
    verbs = direct.add_subparsers(dest="verb", metavar="VERB", required=True)

    def sizes(p: argparse.ArgumentParser) -> None:
        p.add_argument("-Z", "--sector-size", help="512 or 4096 (default: the device's)")
        p.add_argument("-A", "--align-size", help="1M, 2M, 4M or 8M (default: 1M for 512, 8M for 4096)")

    def io(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--io-timeout", help="seconds (default 10)")

    p = verbs.add_parser("init", parents=[common], help="write an empty lockspace or resource area")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-s", dest="lockspace", metavar="LS:0:PATH:OFF", help="lockspace to write")
    g.add_argument("-r", dest="resource", metavar="LS:RES:PATH:OFF", help="resource lease to write")
    io(p)
    sizes(p)
    p.add_argument("-z", "--clear", help="1 writes an invalidated (cleared) resource")
    p.add_argument("-n", "--num-hosts", help="dblocks in use (default: max_hosts)")
    p.add_argument("--force", action="store_true", help="overwrite even an area that looks in use")
    p.set_defaults(handler=cmd_init)

    p = verbs.add_parser("dump", parents=[common], help="list the lease areas on a device, like sanlock direct dump")
    p.add_argument("target", metavar="PATH[:OFF[:SIZE]]")
    p.add_argument("-f", dest="level", default="0",
                   help="1 adds request records and bitmaps, 2 also dblocks")
    p.set_defaults(handler=cmd_dump)

    for name, alias in (("read-leader", "read_leader"),):
        p = verbs.add_parser(name, aliases=[alias], parents=[common], help="print one leader record")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("-s", dest="lockspace", metavar="LS:ID:PATH:OFF", help="delta record of host ID (1 if ID is 0)")
        g.add_argument("-r", dest="resource", metavar="LS:RES:PATH:OFF", help="resource leader")
        io(p)
        p.set_defaults(handler=cmd_read_leader)

    for name, handler, text in (
        ("acquire", cmd_acquire, "acquire a resource lease for host ID generation GEN"),
        ("release", cmd_release, "release a resource lease held by host ID generation GEN"),
    ):
        p = verbs.add_parser(name, parents=[common], help=text)
        p.add_argument("-r", dest="resource", metavar="LS:RES:PATH:OFF[:LVER|:SH]", required=True)
        p.add_argument("-i", "--host-id", required=True)
        p.add_argument("-g", "--generation", required=True)
        io(p)
        if name == "acquire":
            p.add_argument("-s", dest="lockspace", metavar="LS:0:PATH:OFF",
                           help="lockspace whose delta leases tell whether the current owner is alive")
            p.add_argument("--nowait", action="store_true",
                           help="fail with ACQUIRE_OWNED_RETRY instead of waiting for a silent owner to die")
        p.set_defaults(handler=handler)

    for name, handler, text in (
        ("acquire-id", cmd_acquire_id, "acquire host id ID (waits 2 io timeouts, longer if another host held it)"),
        ("renew-id", cmd_renew_id, "renew host id ID once"),
        ("release-id", cmd_release_id, "release host id ID"),
    ):
        p = verbs.add_parser(name, aliases=[name.replace("-", "_")], parents=[common], help=text)
        p.add_argument("-s", dest="lockspace", metavar="LS:ID:PATH:OFF", required=True)
        p.add_argument("--host-name", help="name stored in the slot (default: lockengined's, from its config or /etc/machine-id)")
        io(p)
        p.set_defaults(handler=handler)
