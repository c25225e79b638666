"""``lockengine direct ...``: straight to the disk, no daemon (docs/cli.md).

The verbs and their letters are sanlock's, so ``sanlock direct`` commands paste unchanged; output
without --json looks like sanlock's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from typing import Any

from ..audit import DEFAULT_LOG, AuditLog, parse_context
from ..config import Overrides, load_config
from ..delta import DeltaLease
from ..dump import DEFAULT_TIMEOUT, dump
from ..errors import Area, InputError, LockError
from ..init import choose_geometry, init_lockspace, init_resource
from ..liveness import DeltaOwnerLiveness, Verdict
from ..ondisk import (
    DEFAULT_IO_TIMEOUT,
    AreaSlots,
    Geometry,
    Leader,
    decode_delta_sector,
    decode_leader,
    geometry_from_flags,
    parse_size,
    verify_delta_leader,
    verify_paxos_leader,
)
from ..paxos import PaxosLease
from ..storage import DirectStorage
from ..strings import (
    MAX_HOST_ID,
    LockspaceSpec,
    ResourceSpec,
    parse_dump_target,
    parse_lockspace,
    parse_resource,
)
from .output import emit, error_document, format_dump, format_leader, json_parent

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
    so a host id taken here is the daemon's own slot."""
    if args.host_name:
        return str(args.host_name)
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
                num_hosts=int_opt(args.num_hosts, "num_hosts", 1, MAX_HOST_ID) or 0,
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


def _delta_lease(storage: DirectStorage, ls: LockspaceSpec, args: argparse.Namespace) -> DeltaLease:
    if ls.host_id == 0:
        raise InputError("-s LOCKSPACE host_id", 0, "give this host's id (1 or more)")
    return DeltaLease(
        storage, ls.name, ls.host_id, ls.offset,
        host_name=our_host_name(args), io_timeout=io_timeout_opt(args),
    )


def _adopt_delta(lease: DeltaLease) -> Leader:
    """Take over a slot this host acquired in an earlier process (release/renew from the command line).
    Refuses a slot that names another host: only its holder may write it."""
    try:
        return lease.adopt()
    except LockError as exc:
        raise LockError(exc.name, f"{exc.message}; give --host-name to act as that host") from None


def _holder(ld: Leader) -> tuple[int, int, str]:
    """Who holds a host id: the same id, generation and name is the same holder (timestamps move)."""
    return ld.owner_id, ld.owner_generation, ld.resource_name


def _delta_doc(ls: LockspaceSpec, ld: Leader) -> dict[str, Any]:
    return {
        "ok": True, "lockspace": ls.name, "host_id": ls.host_id, "path": ls.path, "offset": ls.offset,
        "generation": ld.owner_generation, "timestamp": ld.timestamp, "host_name": ld.resource_name,
        "io_timeout": ld.io_timeout,
    }


def cmd_acquire_id(args: argparse.Namespace) -> int:
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    with _open(ls.path) as storage:
        ld = _delta_lease(storage, ls, args).acquire()
        doc = _delta_doc(ls, ld)
    emit(args, doc, f"host_id {ls.host_id} generation {doc['generation']}\nacquire_id done 0")
    return 0


def cmd_renew_id(args: argparse.Namespace) -> int:
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    with _open(ls.path) as storage:
        lease = _delta_lease(storage, ls, args)
        _adopt_delta(lease)
        lease.renew()
        _, _, _, ld = read_delta(storage, ls, lease.io_timeout)
        doc = _delta_doc(ls, ld)
    emit(args, doc, f"host_id {ls.host_id} generation {doc['generation']} timestamp {doc['timestamp']}\nrenew_id done 0")
    return 0


def cmd_release_id(args: argparse.Namespace) -> int:
    """Free a host id: only one whose holder is dead by its own record, or with --force --reason."""
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    force = _force_reason(args)
    context = parse_context(args.context)
    fire = 0 if force else fire_timeout(args)
    with _open(ls.path) as storage, AuditLog(args.audit_log) as log:
        lease = _delta_lease(storage, ls, args)
        while True:
            held = _adopt_delta(lease)
            if force:
                grounds = "forced"
                break
            liveness = DeltaOwnerLiveness(
                storage, ls.offset, ls.name, lease.geometry, io_timeout=lease.io_timeout, fire_timeout=fire
            )
            what = f"host id {ls.host_id} in {ls.name!r}"
            if wait_until_dead(
                liveness, held, lambda s: _holder(read_delta(storage, ls, lease.io_timeout)[3]) != _holder(s),
                what, args.nowait,
            ):
                grounds = "dead"
                break
        fields: dict[str, object] = {
            "command": "release_id", "lockspace": ls.name, "path": ls.path, "offset": ls.offset,
            "owner_id": ls.host_id, "owner_generation": held.owner_generation, "lver": 0, "grounds": grounds,
            "reason": args.reason or "",
        }
        try:
            if _holder(_adopt_delta(lease)) != _holder(held):
                raise LockError("RENEW_OWNER", f"host id {ls.host_id} changed hands while its holder was judged")
            lease.release()
        except (LockError, OSError) as exc:
            log.record({**fields, "result": f"failed:{error_document(exc)['name']}"}, context)
            raise
        line = log.record({**fields, "result": "released"}, context)
        _, _, _, ld = read_delta(storage, ls, lease.io_timeout)
        doc = {**_delta_doc(ls, ld), "grounds": grounds, "audit_log": log.path, "audit": line}
    emit(args, doc, "release_id done 0")
    return 0


# --------------------------------------------------------------------------- is a host dead?


def fire_timeout(args: argparse.Namespace) -> int:
    """The watchdog fire timeout every host of the lockspace uses: lockengined's, from this host's
    configuration (--config, else /etc/lockengine/lockengine.conf), 60 s when there is none."""
    # The host name plays no part here; giving one skips deriving it (which needs a machine id).
    return load_config(args.config, Overrides(host_name="lockengine-direct")).watchdog_fire_timeout


def wait_until_dead(
    liveness: DeltaOwnerLiveness, subject: Leader, changed: Callable[[Leader], bool], what: str, nowait: bool
) -> bool:
    """Judge ``subject``'s holder (owner_id, owner_generation) with the engine's owner-liveness rule:
    True once it is dead, False when ``changed(subject)`` says the lease moved meanwhile (judge again).
    Raises EBUSY while it renews; with ``nowait``, EAGAIN instead of waiting out host_dead."""
    holder = f"host {subject.owner_id} generation {subject.owner_generation}"
    watch = liveness.begin(subject)
    while True:
        verdict, remaining = liveness.check(subject, watch)
        if verdict == Verdict.RUN:
            return True
        if verdict == Verdict.ALIVE:
            raise LockError(
                "EBUSY",
                f"{what} is held by {holder}, which is alive (its delta lease in {liveness.space_name!r} is "
                "renewed); nothing was written. Only a dead host's lease is released on its behalf: have that "
                "host release it (lockengine client request / rem_lockspace), or, once it is fenced, use "
                "--force --reason TEXT",
            )
        if nowait:
            raise LockError(
                "EAGAIN",
                f"{what}: {holder} has not been seen renewing; it counts as dead in {remaining:.0f} s; "
                "nothing was written. Retry then, or leave out --nowait to wait",
            )
        time.sleep(1.0)
        if changed(subject):
            return False


# --------------------------------------------------------------------------- paxos leases


def _lockspace_liveness(
    args: argparse.Namespace, res: ResourceSpec, io_timeout: int, stack: ExitStack
) -> DeltaOwnerLiveness | None:
    """The owner-liveness judge from ``-s LS:0:PATH:OFF`` (its storage closed by ``stack``); None without -s."""
    if not args.lockspace:
        return None
    ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
    if ls.name != res.lockspace:
        raise InputError("-s LOCKSPACE name", ls.name, f"give the resource's lockspace {res.lockspace!r}")
    storage = stack.enter_context(_open(ls.path))
    head = storage.read(ls.offset, max(PROBE, storage.sector_size), io_timeout)
    first = verify_delta_leader(head, 0, ls.name)
    geom = geometry_from_flags(first.sector_size, first.flags)
    return DeltaOwnerLiveness(
        storage, ls.offset, ls.name, geom, io_timeout=io_timeout, fire_timeout=fire_timeout(args)
    )


def _paxos_lease(
    storage: DirectStorage, res: ResourceSpec, args: argparse.Namespace, liveness: DeltaOwnerLiveness | None = None
) -> PaxosLease:
    return PaxosLease(
        storage, res.lockspace, res.name, res.offset,
        host_id=int_req(args.host_id, "host_id", 1, MAX_HOST_ID), generation=int_req(args.generation, "generation", 1, 2**63 - 1),
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
    with ExitStack() as stack:
        liveness = _lockspace_liveness(args, res, io_timeout, stack)
        storage = stack.enter_context(_open(res.path))
        lease = _paxos_lease(storage, res, args, liveness)
        ld = lease.acquire(shared=res.shared, lver=res.lver or 0, nowait=args.nowait)
    doc = _resource_doc(res, ld)
    emit(args, doc, f"owner_id {ld.owner_id} owner_generation {ld.owner_generation} lver {ld.lver}\nacquire done 0")
    return 0


def _force_reason(args: argparse.Namespace) -> bool:
    """--force needs --reason: a forced release is recorded with who, when, what and why."""
    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise InputError("--reason", args.reason, "--force needs --reason TEXT (a ticket, who and why); it is recorded")
    if reason and ("\n" in reason or len(reason) > 1024):
        raise InputError("--reason", args.reason, "give one line of at most 1024 characters")
    return bool(args.force)


def _held_records(storage: DirectStorage, lease: PaxosLease, res: ResourceSpec) -> Leader:
    """The leader, if (host_id, generation) holds the lease on disk and every record a release rewrites
    passes validation; raises RELEASE_OWNER / LEADER_* / DBLOCK_CHECKSUM otherwise (nothing written)."""
    cur = lease.adopt()  # RELEASE_OWNER unless held by host_id/generation; LEADER_* when invalid
    if res.shared and not lease.shared:
        raise LockError("RELEASE_OWNER", f"{res.name}: host {lease.host_id} holds no shared lease")
    geom = lease.geometry
    area = storage.read(res.offset, geom.align_size, lease.io_timeout)
    if verify_paxos_leader(area, res.lockspace, res.name, lease.host_id) != cur:
        raise LockError("LEADER_DIFF", f"{res.name}: the leader changed while it was read; nothing was written")
    slot = AreaSlots(area, geom.sector_size, cur.num_hosts).get(lease.host_id)
    if slot is not None and not slot.checksum_ok:
        raise LockError(
            "DBLOCK_CHECKSUM",
            f"{res.name}: host {lease.host_id}'s dblock fails its checksum; it is not rewritten (nothing was "
            "written). Inspect it with `direct dump PATH:OFF -f 2`",
        )
    return cur


def cmd_release(args: argparse.Namespace) -> int:
    """Release a lease held by host_id/generation: only a dead host's (judged from -s LOCKSPACE), or
    with --force --reason; every release done this way is recorded in the audit log."""
    res = parse_resource(args.resource, "-r RESOURCE")
    _one_disk(res)
    force = _force_reason(args)
    if not force and not args.lockspace:
        raise InputError(
            "-s LOCKSPACE", None,
            "give the lockspace (LS:0:PATH:OFF) so the holder's liveness can be judged; only a dead host's "
            "lease is released, or use --force --reason TEXT for a fenced host",
        )
    context = parse_context(args.context)
    io_timeout = io_timeout_opt(args)
    with ExitStack() as stack:
        log = stack.enter_context(AuditLog(args.audit_log))
        liveness = None if force else _lockspace_liveness(args, res, io_timeout, stack)
        storage = stack.enter_context(_open(res.path))
        lease = _paxos_lease(storage, res, args)
        while True:
            cur = _held_records(storage, lease, res)
            if liveness is None:
                grounds = "forced"
                break
            subject = replace(cur, owner_id=lease.host_id, owner_generation=lease.generation)
            if wait_until_dead(
                liveness, subject, lambda s: not res.shared and lease.read_leader() != s,
                f"{res.lockspace}:{res.name}", args.nowait,
            ):
                grounds = "dead"
                break
        fields: dict[str, object] = {
            "command": "release", "lockspace": res.lockspace, "resource": res.name, "path": res.path,
            "offset": res.offset, "owner_id": lease.host_id, "owner_generation": lease.generation, "lver": cur.lver,
            "grounds": grounds, "reason": args.reason or "",
        }
        try:
            if _held_records(storage, lease, res) != cur:  # the same holding we judged, still valid
                raise LockError("RELEASE_LVER", f"{res.name}: the lease changed while its holder was judged")
            lease.release()
        except (LockError, OSError) as exc:
            log.record({**fields, "result": f"failed:{error_document(exc)['name']}"}, context)
            raise
        line = log.record({**fields, "result": "released"}, context)
        ld = decode_leader(storage.read(res.offset, max(PROBE, storage.sector_size), lease.io_timeout), 0)
    doc = {**_resource_doc(res, ld), "grounds": grounds, "audit_log": log.path, "audit": line}
    emit(args, doc, "release done 0")
    return 0


# --------------------------------------------------------------------------- parser


def storage_areas(args: argparse.Namespace) -> list[Area]:
    """The lease areas a verb works on (-s, -r), so cli.main names a failed I/O after its record."""
    areas: list[Area] = []
    with suppress(InputError, ValueError):
        if getattr(args, "lockspace", None):
            ls = parse_lockspace(args.lockspace, "-s LOCKSPACE")
            areas.append(Area(ls.path, ls.offset, "lockspace"))
    with suppress(InputError, ValueError):
        if getattr(args, "resource", None):
            res = parse_resource(args.resource, "-r RESOURCE")
            areas += [Area(disk.path, disk.offset, "resource") for disk in res.disks]
    return areas


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``direct`` and its verbs on the top-level subparsers."""
    common = json_parent()
    direct = subparsers.add_parser(
        "direct", help="read and write leases on disk without a daemon",
        description="Read and write sanlock-compatible leases on disk, without a daemon.",
    )
    direct.set_defaults(storage_areas=storage_areas)
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

    def config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH",
                       help="lockengined's configuration, for the watchdog fire timeout every host uses "
                            "(default /etc/lockengine/lockengine.conf; 60 s without one)")

    def on_behalf(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--nowait", action="store_true",
                       help=f"fail with EAGAIN instead of waiting for a silent {what} to count as dead")
        p.add_argument("--force", action="store_true",
                       help=f"release without judging the {what} (only once it is fenced); needs --reason")
        p.add_argument("--reason", help="why (ticket, who); required with --force, recorded in the audit log")
        p.add_argument("--audit-log", default=DEFAULT_LOG, metavar="PATH",
                       help=f"where the release is recorded (default {DEFAULT_LOG})")
        p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                       help="an extra field for the audit record (repeatable)")
        config(p)

    p = verbs.add_parser("acquire", parents=[common], help="acquire a resource lease for host ID generation GEN")
    p.add_argument("-r", dest="resource", metavar="LS:RES:PATH:OFF[:LVER|:SH]", required=True)
    p.add_argument("-i", "--host-id", required=True)
    p.add_argument("-g", "--generation", required=True)
    io(p)
    p.add_argument("-s", dest="lockspace", metavar="LS:0:PATH:OFF",
                   help="lockspace whose delta leases tell whether the current owner is alive")
    p.add_argument("--nowait", action="store_true",
                   help="fail with ACQUIRE_OWNED_RETRY instead of waiting for a silent owner to die")
    config(p)
    p.set_defaults(handler=cmd_acquire)

    p = verbs.add_parser(
        "release", parents=[common],
        help="release the lease of host ID generation GEN once that host is dead (or --force --reason)",
    )
    p.add_argument("-r", dest="resource", metavar="LS:RES:PATH:OFF[:SH]", required=True)
    p.add_argument("-i", "--host-id", required=True)
    p.add_argument("-g", "--generation", required=True)
    io(p)
    p.add_argument("-s", dest="lockspace", metavar="LS:0:PATH:OFF",
                   help="lockspace whose delta leases tell whether the holder is dead (required without --force)")
    on_behalf(p, "holder")
    p.set_defaults(handler=cmd_release)

    for name, handler, text in (
        ("acquire-id", cmd_acquire_id, "acquire host id ID (waits 2 io timeouts, longer if another host held it)"),
        ("renew-id", cmd_renew_id, "renew host id ID once"),
        ("release-id", cmd_release_id, "release host id ID once its holder is dead (or --force --reason)"),
    ):
        p = verbs.add_parser(name, aliases=[name.replace("-", "_")], parents=[common], help=text)
        p.add_argument("-s", dest="lockspace", metavar="LS:ID:PATH:OFF", required=True)
        p.add_argument("--host-name", help="name stored in the slot (default: lockengined's, from its config or /etc/machine-id)")
        io(p)
        if name == "release-id":
            on_behalf(p, "host")
        p.set_defaults(handler=handler)
