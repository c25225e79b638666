"""Command handlers: check a request's arguments, call the daemon, shape the result.

Each handler is ``(daemon, ctx, args) -> dict | Future[dict]``. HANDLERS marks which run inline on
the socket thread (memory only, microseconds) and which go to the worker pool (disk I/O or waits).
Resources and lockspaces travel as JSON objects with named fields, so errors can name the field;
a resource may also be given as sanlock's string ``LS:RES:PATH:OFF[:LVER|:SH]``.

This is where a storage failure becomes an answer: every handler in HANDLERS is wrapped so an OSError
(a failed read or write below paxos or delta) leaves as a LockError that keeps its errno — named after the
record when the command knows its lease areas (LEADER_READ, DBLOCK_WRITE, ...), else after the errno —
and never reaches the daemon's "a bug" branch.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

from .. import __version__
from ..errors import Area, InputError, LockError, storage_error
from ..ondisk import REQ_FORCE, REQ_GRACEFUL
from ..strings import MAX_HOST_ID, Disk, LockspaceSpec, ResourceSpec, check_name, check_path, parse_resource
from . import authz, paths
from .clients import process_name
from .protocol import ALIGN, CONTROL, VERSION, arg_bool, arg_int, arg_list, arg_offset, arg_str, arg_str_list

if TYPE_CHECKING:
    from .clients import Client
    from .engine import CallContext, Daemon

Result = Union[dict[str, Any], "concurrent.futures.Future[dict[str, Any]]"]
Handler = Callable[["Daemon", "CallContext", dict[str, Any]], Result]

MAX_OFFSET = 2**62
FORCE_MODES = {"force": REQ_FORCE, "graceful": REQ_GRACEFUL, "1": REQ_FORCE, "2": REQ_GRACEFUL, "0": 0,
               REQ_FORCE: REQ_FORCE, REQ_GRACEFUL: REQ_GRACEFUL, 0: 0}


# --------------------------------------------------------------------------- argument shapes


def lockspace_spec(args: dict[str, Any]) -> LockspaceSpec:
    return LockspaceSpec(
        name=check_name(arg_str(args, "lockspace", max_len=64), "lockspace"),
        host_id=arg_int(args, "host_id", low=1, high=MAX_HOST_ID),
        path=check_path(arg_str(args, "path"), "path"),
        offset=arg_offset(args, "offset", MAX_OFFSET),
    )


def resource_spec(item: object, field: str = "resources[]") -> ResourceSpec:
    if isinstance(item, str):
        spec = parse_resource(item, field)
        arg_str({field: spec.lockspace}, field, max_len=64)  # no control characters in names or paths
        arg_str({field: spec.name}, field, max_len=64)
        for disk in spec.disks:
            arg_str({field: disk.path}, field)
            if disk.offset % ALIGN:
                raise InputError(f"{field} offset", disk.offset, f"give a multiple of 1 MiB ({ALIGN}), e.g. 1M")
        return spec
    if not isinstance(item, dict):
        raise InputError(field, item, "give an object {lockspace, resource, path, offset[, lver][, shared]} or "
                                      "a string LS:RES:PATH:OFF[:LVER|:SH]")
    lver = item.get("lver")
    return ResourceSpec(
        lockspace=check_name(arg_str(item, "lockspace", max_len=64), "lockspace"),
        name=check_name(arg_str(item, "resource", max_len=64), "resource"),
        disks=(Disk(check_path(arg_str(item, "path"), "path"), arg_offset(item, "offset", MAX_OFFSET)),),
        lver=None if lver is None else arg_int(item, "lver"),
        shared=arg_bool(item, "shared"),
    )


def resource_specs(args: dict[str, Any]) -> list[ResourceSpec]:
    return [resource_spec(r, f"resources[{i}]") for i, r in enumerate(arg_list(args, "resources", 8))]


def killpath_argv(args: dict[str, Any], name: str) -> list[str] | None:
    argv = arg_str_list(args, name, 32)
    if argv is None:
        return None
    if not argv or not os.path.isabs(argv[0]):
        raise InputError(name, argv, "give [\"/absolute/program\", args...]")
    arg_str({f"{name}[0]": argv[0]}, f"{name}[0]")  # the program's name appears in the log
    return argv


def authorize_path(d: Daemon, ctx: CallContext, path: str, field: str) -> None:
    """The caller may use ``path`` (paths.py), and the daemon's own handle is that same file."""
    checked = paths.authorize_path(path, ctx.cred, d.config.path_prefixes, field)
    stat = getattr(d.storages.get(path), "stat", None)
    if callable(stat):
        paths.check_same(path, checked, stat(), field)


def authorize_specs(d: Daemon, ctx: CallContext, specs: list[ResourceSpec], field: str = "resources") -> None:
    seen = set()
    for i, spec in enumerate(specs):
        for disk in spec.disks:
            if disk.path not in seen:
                seen.add(disk.path)
                authorize_path(d, ctx, disk.path, f"{field}[{i}].path" if field == "resources" else f"{field}.path")


def target_client(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Client:
    """The caller's own registration, or the registered process ``pid`` if the caller may act on it."""
    client = d.client_for(ctx, args)
    authz.check_target(ctx.cred, client, d.config)
    return client


# --------------------------------------------------------------------------- storage failures


def resource_areas(specs: Sequence[ResourceSpec]) -> list[Area]:
    return [Area(disk.path, disk.offset, "resource") for spec in specs for disk in spec.disks]


def lockspace_areas(spec: LockspaceSpec) -> list[Area]:
    return [Area(spec.path, spec.offset, "lockspace")]


@contextlib.contextmanager
def storage_errors(areas: Sequence[Area] = ()) -> Iterator[None]:
    """An OSError inside becomes a LockError keeping its errno, named after the record in ``areas``."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, areas) from exc


def _mapped_future(result: concurrent.futures.Future[dict[str, Any]],
                   areas: Sequence[Area]) -> concurrent.futures.Future[dict[str, Any]]:
    out: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def done(f: concurrent.futures.Future[dict[str, Any]]) -> None:
        if f.cancelled():
            out.cancel()
            return
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
        else:
            out.set_exception(storage_error(exc, areas) if isinstance(exc, OSError) else exc)

    result.add_done_callback(done)
    return out


def at_boundary(fn: Handler) -> Handler:
    """The handler, with no OSError leaving it (nor its Future) unmapped."""

    @functools.wraps(fn)
    def run(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
        with storage_errors():
            result = fn(d, ctx, args)
        if isinstance(result, concurrent.futures.Future):
            return _mapped_future(result, ())
        return result

    return run


# --------------------------------------------------------------------------- handlers


def cmd_hello(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    return {"protocol": VERSION, "version": __version__, "host_name": d.config.host_name, "pid": os.getpid(),
            "peer_pid": ctx.cred.pid}


def cmd_register(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    # No control characters: names appear in status and the log. Without one, the process's comm,
    # which the process sets itself (PR_SET_NAME), made printable.
    name = (arg_str(args, "name", max_len=128) if args.get("name") is not None
            else CONTROL.sub("?", process_name(ctx.cred.pid)))
    client = d.register(ctx, name, killpath_argv(args, "killpath"))
    return {"pid": client.pid, "name": client.name}


def cmd_killpath(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    client = d.client_for(ctx, {})
    client.killpath = killpath_argv(args, "argv")
    return {"pid": client.pid, "killpath": client.killpath}


def cmd_add_lockspace(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    spec = lockspace_spec(args)
    authorize_path(d, ctx, spec.path, "path")
    io = args.get("io_timeout")
    with storage_errors(lockspace_areas(spec)):
        ls = d.add_lockspace(spec, None if io in (None, 0) else arg_int(args, "io_timeout", low=1, high=255))
    if arg_bool(args, "wait", True):
        return _mapped_future(ls.joined, lockspace_areas(spec))
    return ls.describe()


def cmd_inq_lockspace(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    host_id = arg_int(args, "host_id", 0, 0, MAX_HOST_ID)
    if host_id and host_id != ls.host_id:
        raise LockError("ENOENT", f"lockspace {ls.name} is joined with host id {ls.host_id}, not {host_id}")
    return ls.describe(detail=True)


def cmd_rem_lockspace(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    d.rem_lockspace(ls, arg_bool(args, "unused"))
    return {"lockspace": ls.name, "state": "REMOVED"}


def cmd_acquire(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    specs = resource_specs(args)
    client = target_client(d, ctx, args)
    authorize_specs(d, ctx, specs)
    num_hosts = arg_int(args, "num_hosts", 0, 0, MAX_HOST_ID)  # 0 keeps it; PaxosLease.acquire checks the rest
    with storage_errors(resource_areas(specs)):
        held = d.resources.acquire(client, specs, nowait=arg_bool(args, "nowait"),
                                   num_hosts=dict.fromkeys(range(len(specs)), num_hosts) if num_hosts else None)
    return {"pid": client.pid, "lver": held[0].lver,
            "resources": [{"resource": h.label, "lver": h.lver, "shared": h.spec.shared} for h in held]}


def cmd_release(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    client = target_client(d, ctx, args)
    specs = None if arg_bool(args, "all") else resource_specs(args)
    with storage_errors(resource_areas(specs or [h.spec for h in d.resources.of_client(client)])):
        done = d.resources.release(client, specs)
    return {"pid": client.pid, "released": [h.label for h in done]}


def cmd_inquire(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    client = target_client(d, ctx, args)
    return {"pid": client.pid, "resources": [h.label for h in d.resources.of_client(client)]}


def cmd_request(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    spec = resource_spec(args.get("resource"), "resource")
    mode = args.get("force_mode", REQ_FORCE)
    if not isinstance(mode, (int, str)) or isinstance(mode, bool) or mode not in FORCE_MODES:
        raise InputError("force_mode", mode, "use \"graceful\" (2), \"force\" (1) or 0 (clear the request)")
    lver = args.get("lver", spec.lver)
    if lver is not None:
        lver = arg_int({"lver": lver}, "lver")
    holders = [h.client for h in d.resources.all() if h.key == (spec.lockspace, spec.name)]
    authz.check_request(ctx.cred, f"{spec.lockspace}:{spec.name}", holders, d.config)
    authorize_specs(d, ctx, [spec], "resource")
    with storage_errors(resource_areas([spec])):
        return d.request(spec, lver, FORCE_MODES[mode])


def cmd_examine(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    return {"acted": [{"resource": a.held.label, "pid": a.held.client.pid, "force_mode": a.force_mode,
                       "request_lver": a.req_lver} for a in d.examine(ls)]}


def cmd_status(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    return d.status(arg_bool(args, "detail"))


def cmd_gets(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    with_hosts = arg_bool(args, "hosts")
    out = []
    for ls in d.lockspace_list():
        item = ls.describe()
        if with_hosts:
            try:
                item["hosts"] = ls.hosts()
            except LockError:  # not joined yet: no host table
                item["hosts"] = []
        out.append(item)
    return {"lockspaces": out}


def cmd_host_status(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    return {"lockspace": ls.name, "host_id": ls.host_id, "hosts": ls.hosts()}


def cmd_renewal(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    return {"lockspace": ls.name, "renewals": ls.renewals()}


def cmd_log_dump(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    """The newest lines that fit in half a connection's output bound (the whole ring is ~2 MB)."""
    lines = d.ring.dump() if d.ring is not None else []
    budget = d.config.max_output_bytes // 2
    keep = len(lines)
    while keep:
        cost = len(json.dumps(lines[keep - 1])) + 1  # as the reply will encode it, with its comma
        if cost > budget:
            break
        budget -= cost
        keep -= 1
    return {"lines": lines[keep:], "omitted": keep}


def cmd_set_event(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    host_id = arg_int(args, "host_id", low=1, high=MAX_HOST_ID)
    generation = arg_int(args, "generation", 0)
    event = arg_int(args, "event", low=1)
    data = arg_int(args, "data", 0)
    generation = ls.set_event(host_id, generation, event, data)
    return {"lockspace": ls.name, "host_id": host_id, "generation": generation, "event": event, "data": data}


def cmd_get_events(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    ls = d.lockspace(arg_str(args, "lockspace"))
    return {"lockspace": ls.name, "events": ls.recent_events()}


def cmd_shutdown(d: Daemon, ctx: CallContext, args: dict[str, Any]) -> Result:
    return d.shutdown(arg_bool(args, "force"))


_HANDLERS: dict[str, tuple[Handler, bool]] = {
    "hello": (cmd_hello, True),
    "register": (cmd_register, True),
    "killpath": (cmd_killpath, True),
    "add_lockspace": (cmd_add_lockspace, False),
    "inq_lockspace": (cmd_inq_lockspace, True),
    "rem_lockspace": (cmd_rem_lockspace, False),
    "acquire": (cmd_acquire, False),
    "release": (cmd_release, False),
    "inquire": (cmd_inquire, True),
    "request": (cmd_request, False),
    "examine": (cmd_examine, False),
    "status": (cmd_status, True),
    "gets": (cmd_gets, True),
    "host_status": (cmd_host_status, True),
    "renewal": (cmd_renewal, True),
    "log_dump": (cmd_log_dump, True),
    "set_event": (cmd_set_event, True),
    "get_events": (cmd_get_events, True),
    "shutdown": (cmd_shutdown, True),
}

HANDLERS: dict[str, tuple[Handler, bool]] = {name: (at_boundary(fn), inline) for name, (fn, inline) in _HANDLERS.items()}

# What a stopping daemon still answers.
WHILE_STOPPING = frozenset({"hello", "status", "gets", "host_status", "renewal", "log_dump", "inquire",
                            "inq_lockspace", "release", "shutdown"})
