"""How every verb prints: one JSON document with --json, sanlock-like text otherwise (docs/cli.md)."""

from __future__ import annotations

import json
import sys

from ..errors import EXIT_FAILURE, error_document

TYPE_CHECKING = False  # argparse and typing stay unloaded on the client verbs' fast path (cli/args.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any, TextIO

    from .args import Args

__all__ = ["emit", "error_document", "format_dump", "format_leader", "json_parent", "render_error"]


# The --json flag every verb has: option strings and argparse keywords (cli/args.py reads them too).
JSON_FLAG: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--json",), {"action": "store_true", "help": "print exactly one JSON document on stdout"})


def json_parent() -> argparse.ArgumentParser:
    """A parent parser giving a verb the --json flag (use ``parents=[json_parent()]``)."""
    import argparse

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(*JSON_FLAG[0], **JSON_FLAG[1])
    return p


def emit(args: Args, doc: dict[str, Any], text: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if getattr(args, "json", False):
        stream.write(json.dumps(doc, sort_keys=False) + "\n")
    elif text:
        stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def render_error(exc: BaseException, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print a failure as docs/cli.md says and return the exit code (EXIT_FAILURE, 1)."""
    doc = error_document(exc)  # the daemon's replies come from the same mapping (protocol.error_dict)
    if as_json:
        stream = out or sys.stdout
        stream.write(json.dumps({"ok": False, "error": doc}) + "\n")
        stream.flush()
    else:
        stream = err or sys.stderr
        stream.write(f"lockengine: {doc['name']} ({doc['code']}): {doc['message']}\n")
        stream.flush()
    return EXIT_FAILURE


# --------------------------------------------------------------------------- dump table

# The column widths of `sanlock direct dump`, so scripts and eyes used to it read ours unchanged.
_HEADER = "{:>8} {:>36} {:>48} {:>10} {:>4} {:>4} {}"
_SH_INDENT = " " * 106


def format_dump(doc: dict[str, Any], level: int = 0) -> str:
    """``sanlock direct dump`` text: level 1 adds /req/mode and bitmaps, level 2 dblocks."""
    head = _HEADER.format("offset", "lockspace", "resource", "timestamp", "own", "gen", "lver")
    lines = [head + ("/req/mode" if level else "")]
    for area in doc["areas"]:
        lines += _format_area(area, level)
    return "\n".join(lines) + "\n"


def _row(offset: int, lockspace: str, name: str, ts: int, own: int, gen: int) -> str:
    return f"{offset:08d} {lockspace:>36} {name:>48} {ts:010d} {own:04d} {gen:04d}"


def _format_area(area: dict[str, Any], level: int) -> list[str]:
    off = area["offset"]
    if "error" in area and "hosts" not in area and "resource" not in area:
        return [f"{off:08d} {area['kind']} area INVALID {_err(area['error'])}"]
    lines: list[str] = []
    if area["kind"] == "lockspace":
        for h in area["hosts"]:
            at = off + (h["host_id"] - 1) * area["sector_size"]
            line = _row(at, area["lockspace"], h["host_name"], h["timestamp"], h["owner_id"], h["generation"])
            if not h["valid"]:
                line += f" INVALID {_err(h['error'])}"
            elif level and h["bitmap"]:
                line += "".join(f" {b}" for b in h["bitmap"])
            lines.append(line)
        if area.get("truncated"):
            lines.append(f"{off:08d} {area['lockspace']:>36} area truncated by the end of the device")
        return lines
    line = _row(off, area["lockspace"], area["resource"], area["timestamp"], area["owner_id"], area["owner_generation"])
    line += f" {area['lver']}"
    if level:
        line += f"/{area['request']['lver']}/{area['request']['force_mode']}"
    if area.get("cleared"):
        line += " CLEARED"
    if not area.get("valid", True):
        line += f" INVALID {_err(area['error'])}"
    lines.append(line)
    # sanlock interleaves dblock and SH lines in host order.
    shared = {s["host_id"]: s for s in area["shared"]}
    dblocks = {d["host_id"]: d for d in area.get("dblocks", [])} if level > 1 else {}
    for host_id in sorted(set(shared) | set(dblocks)):
        d = dblocks.get(host_id)
        if d is not None:
            lines.append(
                f"dblock[{host_id - 1:04d}] mbal {d['mbal']} bal {d['bal']} inp {d['inp']} inp2 {d['inp2']} "
                f"inp3 {d['inp3']} lver {d['lver']} sum {d['checksum']:x}"
                + ("" if d["valid"] else " BAD_CHECKSUM")
            )
        s = shared.get(host_id)
        if s is not None:
            lines.append(f"{_SH_INDENT}{host_id:04d} {s['generation']:04d} SH")
    if area.get("truncated"):
        lines.append(f"{off:08d} {area['lockspace']:>36} area truncated by the end of the device")
    return lines


def _err(e: dict[str, Any]) -> str:
    return f"{e['name']} ({e['code']}): {e['message']}"


# --------------------------------------------------------------------------- read_leader

_DELTA_EXTRA = ("extra1", "extra2", "extra3")
_PAXOS_EXTRA = ("write_id", "write_generation", "write_timestamp")


def format_leader(doc: dict[str, Any]) -> str:
    """``sanlock direct read_leader`` text: one ``name value`` per line."""
    hexes = {"magic", "version", "flags", "checksum"}
    keys = ["magic", "version", "flags", "sector_size", "num_hosts", "max_hosts", "owner_id",
            "owner_generation", "lver", "space_name", "resource_name", "timestamp", "checksum", "io_timeout"]
    lines = [f"{k} 0x{doc[k]:x}" if k in hexes else f"{k} {doc[k]}" for k in keys]
    # sanlock names the delta record's write_* fields extra1..3 (they carry events).
    names = _DELTA_EXTRA if doc["kind"] == "lockspace" else _PAXOS_EXTRA
    lines += [f"{n} {doc[k]}" for n, k in zip(names, _PAXOS_EXTRA, strict=False)]
    return "\n".join(lines) + "\n"
