"""``lockengine client ...``: talk to lockengined over its socket (docs/cli.md).

Verbs and letters are sanlock's (``-s LS:ID:PATH:OFF``, ``-r LS:RES:PATH:OFF[:LVER|:SH]``, ``-p PID``),
so ``sanlock client`` commands paste unchanged. The socket is $LOCKENGINE_RUN_DIR/lockengined.sock
(default /run/lockengine), or ``--run-dir``. With --json stdout is exactly one JSON document:
``{"ok": true, ...result}`` or ``{"ok": false, "error": {...}}``.
"""

from __future__ import annotations

import os
import sys
import time

from ..client import Client, DaemonError, run_dir
from ..errors import InputError
from ..states import LockspaceState
from .args import Namespace, parse_options
from .output import JSON_FLAG, emit, json_parent

# `client status` loads only what it needs (tests/unit/test_cli_imports.py): argparse when argparse
# must read the words (cli/args.py), lockengine.strings (dataclasses) in the verbs that parse -s/-r,
# threading in the verbs that wait, typing never.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from ..strings import ResourceSpec
    from .args import Args, Option

    Handler = Callable[[Args], int]
FORCE_MODES: dict[str, str | int] = {"1": "force", "2": "graceful", "force": "force", "graceful": "graceful", "0": 0}


def _client(args: Args) -> Client:
    return Client(run_directory=args.run_dir or run_dir())


def _lockspace_name(text: str) -> str:
    """``LS`` or a whole ``LS:ID:PATH:OFF``: only the name matters for queries."""
    from ..strings import split_fields

    return split_fields(text, "LOCKSPACE")[0]


def _pid(text: str | None, required: bool = True) -> int | None:
    if text is None:
        if required:
            raise InputError("pid", None, "give -p PID of a registered process (or use `client command`)")
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError("pid", text, "give a process id, a whole number above 0")
    return int(text)


def _int(text: str | None, field: str, default: int = 0, low: int = 0, high: int = 2**63 - 1) -> int:
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InputError(field, text, f"give a whole number from {low} to {high}")
    return int(text)


def _ok(args: Args, result: dict[str, Any], text: str) -> int:
    emit(args, {"ok": True, **result}, text)
    return 0


# --------------------------------------------------------------------------- progress of long waits

PROGRESS_FIRST = 2.0  # a wait shorter than this stays silent
PROGRESS_EVERY = 5.0  # then a line at least this often (and whenever the daemon's message changes)
PROGRESS_POLL = 1.0
_WAITING = r"waiting (\d+) s for (host id \d+)(.*)"


def join_progress(message: str, elapsed: float) -> str:
    """The daemon's join progress (``waiting 20 s for host id 3``) as ``waiting for host id 3: 12 s of 20 s``;
    ``elapsed`` counts from when the message was first seen."""
    import re

    m = re.fullmatch(_WAITING, message, re.DOTALL)
    if m is None:
        return message
    return f"waiting for {m[2]}: {int(elapsed)} s of {m[1]} s{m[3]}"


class Progress:
    """A wait reported as it goes, by a background thread: a line on stderr (unless --quiet) once the wait
    passes PROGRESS_FIRST seconds, then every PROGRESS_EVERY seconds or when ``look`` says something new.
    The lines and the seconds waited also go into the verb's reply (``progress``, ``waited``).

    ``look`` returns what is being waited for now (None: nothing to say); ``describe`` turns it and the
    seconds since it was first seen into the line."""

    def __init__(self, args: Args, what: str, look: Callable[[], str | None],
                 describe: Callable[[str, float], str] = lambda msg, elapsed: f"{msg}: {int(elapsed)} s") -> None:
        self.quiet = bool(getattr(args, "quiet", False))
        self.what = what
        self.look = look
        self.describe = describe
        self.lines: list[str] = []
        import threading

        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def reply(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "waited": round(time.monotonic() - self.started, 1), "progress": list(self.lines)}

    def _run(self) -> None:
        seen: str | None = None
        seen_at = said_at = self.started
        said: str | None = None
        while not self._done.wait(PROGRESS_POLL):
            now = time.monotonic()
            try:
                message = self.look()
            except (DaemonError, OSError):
                continue  # not there yet, or the daemon is busy: the wait itself reports failures
            if message != seen:
                # The first thing to wait for began with the verb (up to a poll before we saw it).
                seen, seen_at = message, (self.started if seen is None else now)
            if message is None or now - self.started < PROGRESS_FIRST:
                continue
            if message != said or now - said_at >= PROGRESS_EVERY:
                said, said_at = message, now
                self._say(self.describe(message, now - seen_at))

    def _say(self, text: str) -> None:
        line = f"{self.what}: {text}"
        self.lines.append(line)
        if not self.quiet and not self._done.is_set():
            sys.stderr.write(f"lockengine: {line}\n")
            sys.stderr.flush()


def _join_look(args: Args, name: str) -> Callable[[], str | None]:
    """The join's progress as the daemon reports it (inq_lockspace, on a connection of its own)."""
    def look() -> str | None:
        with Client(run_directory=args.run_dir or run_dir(), timeout=PROGRESS_EVERY) as c:
            st = c.inq_lockspace(name)
        return str(st["progress"]) if st.get("state") == LockspaceState.ADD and st.get("progress") else None
    return look


# --------------------------------------------------------------------------- verbs


def cmd_metrics(args: Args) -> int:
    """Always exits 0 with lockengine_up 0 when the daemon does not answer: that is a metric, not an error."""
    from .. import metrics

    c = _client(args)  # not `with`: connecting is part of what is measured
    try:
        text = metrics.render(metrics.collect(c, args.audit_log))
    finally:
        c.close()
    if args.output:
        metrics.write_textfile(args.output, text)
        return _ok(args, {"output": args.output}, "")
    if getattr(args, "json", False):
        return _ok(args, {"text": text}, "")
    sys.stdout.write(text)
    return 0


def cmd_status(args: Args) -> int:
    with _client(args) as c:
        st = c.status(detail=args.detail)
    lines = [f"daemon {st['daemon']['host_name']}"]
    if args.detail:
        d = st["daemon"]
        wd = d["watchdog"]
        lines.append(f"    pid={d['pid']} version={d['version']} io_timeout={d['io_timeout']} "
                     f"fire_timeout={d['fire_timeout']} kill_grace={d['kill_grace']} monotime={d['monotime']} "
                     f"watchdog={wd['backend']}:{wd['device']} petting={int(bool(wd['petting']))}")
    for cl in st["clients"]:
        lines.append(f"p {cl['pid']} {cl['name']}")
    for ls in st["lockspaces"]:
        state = "" if ls["state"] == LockspaceState.JOINED else f" {ls['state']}"
        lines.append(f"s {ls['lockspace']}:{ls['host_id']}:{ls['path']}:{ls['offset']}{state}")
        if args.detail:
            lines.append(f"    generation={ls['generation']} io_timeout={ls['io_timeout']} "
                         f"renewal_last_success={ls['renewal_last_success']}")
    for r in st["resources"]:
        tail = "SH" if r["shared"] else str(r["lver"])
        lines.append(f"r {r['lockspace']}:{r['resource']}:{r['path']}:{r['offset']}:{tail} p {r['pid']}")
    return _ok(args, st, "\n".join(lines))


def cmd_add_lockspace(args: Args) -> int:
    from ..strings import parse_lockspace

    ls = parse_lockspace(args.lockspace, "-s")
    if ls.host_id < 1:
        raise InputError("-s host_id", ls.host_id, "give this host's id, 1 or more")
    io = _int(args.io_timeout, "io_timeout", 0, 0, 255)
    if args.async_:
        with _client(args) as c:
            result = c.add_lockspace(ls.name, ls.host_id, ls.path, ls.offset, io_timeout=io, wait=False)
        return _ok(args, result, "add_lockspace started 0")
    with _client(args) as c, Progress(args, f"add_lockspace {ls.name}", _join_look(args, ls.name),
                                      join_progress) as progress:
        result = c.add_lockspace(ls.name, ls.host_id, ls.path, ls.offset, io_timeout=io, wait=True)
    return _ok(args, progress.reply(result), "add_lockspace done 0")


def cmd_inq_lockspace(args: Args) -> int:
    with _client(args) as c:
        result = c.inq_lockspace(_lockspace_name(args.lockspace))
    extra = f" ({result['progress']})" if result.get("progress") else ""
    return _ok(args, result, f"inq_lockspace {result['state']}{extra}")


def cmd_rem_lockspace(args: Args) -> int:
    with _client(args) as c:
        result = c.rem_lockspace(_lockspace_name(args.lockspace), unused=args.unused)
    return _ok(args, result, "rem_lockspace done 0")


def cmd_gets(args: Args) -> int:
    with _client(args) as c:
        result = c.gets(hosts=args.hosts == "1")
    lines = []
    for ls in result["lockspaces"]:
        state = "" if ls["state"] == LockspaceState.JOINED else f" {ls['state']}"
        lines.append(f"s {ls['lockspace']}:{ls['host_id']}:{ls['path']}:{ls['offset']}{state}")
        for h in ls.get("hosts", []):
            lines.append(f"h {h['host_id']} gen {h['generation']} timestamp {h['timestamp']} {h['state']}")
    return _ok(args, result, "\n".join(lines))


def cmd_host_status(args: Args) -> int:
    with _client(args) as c:
        result = c.host_status(_lockspace_name(args.lockspace))
    lines = []
    for h in result["hosts"]:
        lines.append(f"{h['host_id']} timestamp {h['timestamp']} {h['state']}")
        if args.detail:
            lines.append(f"    last_check={h['last_check']} last_live={h['last_live']} owner_id={h['owner_id']} "
                         f"owner_generation={h['generation']} io_timeout={h['io_timeout']} "
                         f"owner_name={h['host_name']}")
    return _ok(args, result, "\n".join(lines))


def cmd_renewal(args: Args) -> int:
    with _client(args) as c:
        result = c.renewal(_lockspace_name(args.lockspace))
    lines = [f"timestamp={r['timestamp']} read_ms={r['read_ms']} write_ms={r['write_ms']} result={r['result']}"
             + (f" error={r['error']}" if r.get("error") else "") for r in result["renewals"]]
    return _ok(args, result, "\n".join(lines))


def cmd_log_dump(args: Args) -> int:
    with _client(args) as c:
        lines = c.log_dump()
    return _ok(args, {"lines": lines}, "\n".join(lines))


def _num_hosts(text: str | None) -> int:
    """-n N (the daemon checks the range against the resource's geometry and our host id)."""
    if text is None:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise InputError("num_hosts", text, "give -n a whole number, 1 to the resource's max_hosts (2000 at 512/1M)")
    return int(text)


def cmd_acquire(args: Args) -> int:
    from ..strings import parse_resource

    specs = [parse_resource(r, "-r") for r in args.resource]
    with _client(args) as c, _acquire_progress(args, specs) as progress:
        result = c.acquire(specs, pid=_pid(args.pid), nowait=args.nowait, num_hosts=_num_hosts(args.num_hosts))
    return _ok(args, progress.reply(result), f"acquire pid {result['pid']} done 0")


def _acquire_progress(args: Args, specs: list[ResourceSpec]) -> Progress:
    """An acquire waits inside the daemon (for an owner that stopped renewing to count as dead): say so."""
    names = ", ".join(f"{s.lockspace}:{s.name}" for s in specs)
    return Progress(args, f"acquire {names}", lambda: "still acquiring", lambda msg, elapsed: f"{msg}: {int(elapsed)} s")


def cmd_release(args: Args) -> int:
    from ..strings import parse_resource

    if not args.resource and not args.all:
        raise InputError("-r", None, "give -r RESOURCE (repeatable) or --all")
    specs = None if args.all else [parse_resource(r, "-r") for r in args.resource]
    with _client(args) as c:
        result = c.release(specs, pid=_pid(args.pid))
    return _ok(args, result, f"release pid {result['pid']} done 0")


def cmd_inquire(args: Args) -> int:
    pid = _pid(args.pid)
    with _client(args) as c:
        resources = c.inquire(pid)
    return _ok(args, {"pid": pid, "resources": resources}, " ".join(f'"{r}"' for r in resources))


def cmd_request(args: Args) -> int:
    from ..strings import format_resource, parse_resource

    spec = parse_resource(args.resource, "-r")
    if args.force_mode not in FORCE_MODES:
        raise InputError("-f", args.force_mode, "use graceful (2), force (1) or 0 (clear)")
    with _client(args) as c:
        result = c.request(format_resource(spec), FORCE_MODES[args.force_mode], spec.lver)
    if result.get("free"):
        text = "request: the lease is free; nothing to do"
    else:
        text = f"request lver {result['lver']} to host {result['owner_id']} done 0"
    return _ok(args, result, text)


def cmd_examine(args: Args) -> int:
    with _client(args) as c:
        result = c.examine(_lockspace_name(args.lockspace))
    return _ok(args, result, f"examine done {len(result['acted'])}")


def cmd_set_event(args: Args) -> int:
    from ..strings import MAX_HOST_ID

    with _client(args) as c:
        result = c.set_event(_lockspace_name(args.lockspace), _int(args.host_id, "host_id", 0, 1, MAX_HOST_ID),
                             _int(args.event, "event", 0, 1), _int(args.data, "data"),
                             _int(args.generation, "generation"))
    return _ok(args, result, "set_event done 0")


def cmd_get_events(args: Args) -> int:
    with _client(args) as c:
        events = c.get_events(_lockspace_name(args.lockspace))
    text = "\n".join(f"host {e['host_id']} gen {e['generation']} event {e['event']} data {e['data']}" for e in events)
    return _ok(args, {"events": events}, text)


def cmd_shutdown(args: Args) -> int:
    with _client(args) as c:
        result = c.shutdown(force=args.force == "1")
    return _ok(args, result, "shutdown started")


def cmd_command(args: Args) -> int:
    """Register, acquire, then exec the command: it *is* the registered pid, so the leases last exactly
    as long as it runs, its signals come from the daemon, and its exit code is ours."""
    import shlex

    from ..strings import parse_resource

    argv = list(args.command_argv or args.argv or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise InputError("command", None, "give the command after --, e.g. client command -r RES -- /bin/prog args")
    specs = [parse_resource(r, "-r") for r in args.resource]
    killpath = shlex.split(args.killpath) if args.killpath else None
    c = _client(args)
    c.connect()
    c.register(name=os.path.basename(argv[0])[:64], killpath=killpath)
    with _acquire_progress(args, specs):
        c.acquire(specs)
    os.set_inheritable(c.fileno(), True)  # the connection must live exactly as long as the command
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        c.close()
        raise InputError("command", argv[0], f"cannot run it ({exc.strerror}); give an existing program") from None


# --------------------------------------------------------------------------- verbs and their options

# Each option as (option strings, argparse keywords): add_parser builds argparse's parsers from these,
# and fast_args reads the plain forms of the same (cli/args.py).
RUN_DIR: Option = (("--run-dir",), {"help": "the daemon's run dir (default: $LOCKENGINE_RUN_DIR or /run/lockengine)"})
COMMON: tuple[Option, ...] = (JSON_FLAG, RUN_DIR)  # every verb's
REMAINDER = "..."  # argparse.REMAINDER (argparse is not imported to build this table)
_DETAIL: Option = (("-D",), {"dest": "detail", "action": "store_true", "help": "more detail"})
_LOCKSPACE: Option = (("-s",), {"dest": "lockspace", "metavar": "LS[:ID:PATH:OFF]", "required": True})
_PID: Option = (("-p",), {"dest": "pid", "required": True})


def _quiet(waiting: str) -> Option:
    return (("-q", "--quiet"), {"action": "store_true", "help": f"no progress lines on stderr while {waiting}"})


def _resources(metavar: str, **kw: Any) -> Option:
    return (("-r",), {"dest": "resource", "metavar": metavar, "action": "append", **kw})


# name: (handler, help, argparse's -h/--help added, options), in the order `client --help` lists them.
VERBS: dict[str, tuple[Handler, str, bool, tuple[Option, ...]]] = {
    "status": (cmd_status, "the daemon, its clients, lockspaces and leases", True, (_DETAIL,)),
    "add_lockspace": (cmd_add_lockspace, "join a lockspace (waits 2 io timeouts when the slot is free)", True, (
        (("-s",), {"dest": "lockspace", "metavar": "LS:ID:PATH:OFF", "required": True}),
        (("-o", "--io-timeout"), {"help": "seconds (default: the daemon's)"}),
        (("--async",), {"dest": "async_", "action": "store_true", "help": "return at once; see inq_lockspace"}),
        _quiet("waiting"),
    )),
    "inq_lockspace": (cmd_inq_lockspace, "state of a lockspace (and join progress)", True, (_LOCKSPACE,)),
    "rem_lockspace": (cmd_rem_lockspace, "leave a lockspace (SIGKILLs its holders)", True, (
        _LOCKSPACE,
        (("--unused",), {"action": "store_true", "help": "refuse (EBUSY) if the lockspace has holders"}),
    )),
    # sanlock spells "list hosts" -h 1, so help is --help only here.
    "gets": (cmd_gets, "lockspaces, and with -h 1 every host seen in them", False, (
        (("-h",), {"dest": "hosts", "default": "0", "help": "1: list hosts"}),
        (("--help",), {"action": "help"}),
    )),
    "host_status": (cmd_host_status, "every host of a lockspace and its liveness", True, (_LOCKSPACE, _DETAIL)),
    "renewal": (cmd_renewal, "renewal history (180 entries)", True, (_LOCKSPACE,)),
    "examine": (cmd_examine, "act now on requests for leases held here", True, (_LOCKSPACE,)),
    "get_events": (cmd_get_events, "events other hosts sent us", True, (_LOCKSPACE,)),
    "log_dump": (cmd_log_dump, "the daemon's in-memory log", True, ()),
    "metrics": (cmd_metrics, "Prometheus metrics (text format; node_exporter's textfile collector)", True, (
        (("--audit-log",), {"default": "/var/log/lockengine/force-release.log",
                            "help": "force-release log to count (absent: none counted)"}),
        (("-o", "--output"), {"metavar": "FILE", "help": "write FILE atomically instead of stdout (*.prom)"}),
    )),
    "acquire": (cmd_acquire, "acquire leases for registered process PID", True, (
        _resources("LS:RES:PATH:OFF[:LVER|:SH]", default=[], required=True),
        _PID,
        (("--nowait",), {"action": "store_true",
                         "help": "fail with ACQUIRE_OWNED_RETRY instead of waiting for a silent owner to die"}),
        _quiet("waiting"),
        (("-n", "--num-hosts"), {"dest": "num_hosts", "metavar": "N",
                                 "help": "write num_hosts N into the leader when this host wins (sanlock's -n)"}),
    )),
    "release": (cmd_release, "release leases of registered process PID", True, (
        _resources("LS:RES:PATH:OFF[:LVER|:SH]", default=[], required=False),
        _PID,
        (("--all",), {"action": "store_true", "help": "release every lease of PID"}),
    )),
    "inquire": (cmd_inquire, "leases held by registered process PID", True, (_PID,)),
    "request": (cmd_request, "ask the owner of a lease to release it", True, (
        (("-r",), {"dest": "resource", "metavar": "LS:RES:PATH:OFF[:LVER]", "required": True}),
        (("-f",), {"dest": "force_mode", "required": True, "metavar": "graceful|force|2|1",
                   "help": "graceful: killpath or SIGTERM; force: SIGKILL"}),
    )),
    "set_event": (cmd_set_event, "send an event to a host through the bitmap", True, (
        _LOCKSPACE,
        (("-i",), {"dest": "host_id", "required": True}),
        (("-g",), {"dest": "generation"}),
        (("-e",), {"dest": "event", "required": True}),
        (("-d",), {"dest": "data"}),
    )),
    "shutdown": (cmd_shutdown, "stop the daemon (refused while lockspaces are joined, unless -f 1)", True, (
        (("-f",), {"dest": "force", "default": "0", "help": "1: kill holders and leave every lockspace first"}),
    )),
    "command": (cmd_command, "hold leases for the lifetime of a command", True, (
        _resources("LS:RES:PATH:OFF[:LVER|:SH]", required=True),
        (("--killpath",), {"metavar": "'PROG ARGS'",
                           "help": "run this (once) instead of SIGTERM on a graceful request or lease loss"}),
        _quiet("acquiring"),
        (("-c",), {"dest": "command_argv", "nargs": REMAINDER, "help": "the command (sanlock style)"}),
        (("argv",), {"nargs": REMAINDER, "help": "-- the command and its arguments"}),
    )),
}


def fast_args(words: Sequence[str]) -> Namespace | None:
    """``client VERB OPTIONS`` read without argparse when cli/args.py handles its form, else None."""
    if len(words) < 2 or words[0] != "client" or words[1] not in VERBS:
        return None
    handler, _, _, options = VERBS[words[1]]
    return parse_options(words[2:], COMMON + options, {"command": "client", "verb": words[1], "handler": handler})


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``client`` and its verbs on the top-level subparsers."""
    import argparse

    common = argparse.ArgumentParser(add_help=False, parents=[json_parent()])
    common.add_argument(*RUN_DIR[0], **RUN_DIR[1])
    client: argparse.ArgumentParser = subparsers.add_parser("client", help="talk to lockengined", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = client.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, (handler, text, add_help, options) in VERBS.items():
        p = verbs.add_parser(name, parents=[common], help=text, add_help=add_help)
        p.set_defaults(handler=handler)
        for flags, kw in options:
            p.add_argument(*flags, **kw)
    return client
