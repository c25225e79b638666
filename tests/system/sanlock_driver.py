"""Run python3-sanlock calls in one process and print each result as a JSON line.

Runs under Debian's /usr/bin/python3 (the binding is visible only there), so: stdlib only, Python
3.11, no lockengine imports. Takes a JSON list of steps:

    {"op": "add_lockspace", "args": ["LS", 1, "/dev/loop0"], "kwargs": {"wait": false}}

``op`` is a ``sanlock`` function, or ``register`` (keeps the fd), ``close`` (closes it), ``restrict``
(RESTRICT with the given flags on the fd; the binding lacks it), ``wait`` (for a line on stdin) or
``sleep``. The steps come as the first argument, or on stdin when there is none.
The strings "$fd" and "$pid" in args/kwargs become the registered fd and this process's pid; a disk
list is given as [[path, offset], ...]; "$evfd" is the fd ``reg_event`` returned. ``until`` repeats a step
(every 0.2 s, at most ``tries`` times) until its value equals it, ``until_nonempty`` until it is not empty.
Output per step: {"op", "ok": true, "value"} or
{"op", "ok": false, "errno", "message"}.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from typing import Any

import sanlock  # type: ignore[import-not-found]

NAMED = frozenset({"convert", "write_lockspace", "add_lockspace", "inq_lockspace", "rem_lockspace", "get_hosts", "write_resource",
                   "acquire", "release", "request", "read_resource_owners", "set_lvb", "get_lvb", "set_event", "reg_event"})
WITH_RESOURCE = frozenset({"write_resource", "acquire", "release", "request", "read_resource_owners", "set_lvb",
                           "get_lvb"})


def plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def main() -> None:
    steps = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    fd: int | None = None
    evfd: int | None = None
    for step in steps:
        op = step["op"]

        def sub(v: Any, fd: int | None = fd, evfd: int | None = evfd) -> Any:
            if v == "$fd":
                return fd
            if v == "$evfd":
                return evfd
            if v == "$pid":
                return os.getpid()
            if isinstance(v, list):
                return [sub(x) for x in v]
            return v

        args = [sub(a) for a in step.get("args", [])]
        kwargs = {k: sub(v) for k, v in step.get("kwargs", {}).items()}
        # The binding takes names as bytes (as VDSM passes them) and paths as str.
        if op in NAMED and args and isinstance(args[0], str):
            args[0] = args[0].encode()
        if op == "end_event" and len(args) == 2 and isinstance(args[1], str):
            args[1] = args[1].encode()
        if op == "set_lvb" and len(args) >= 4 and isinstance(args[3], str):
            args[3] = args[3].encode()
        if op in WITH_RESOURCE and len(args) >= 3:
            args[1] = args[1].encode() if isinstance(args[1], str) else args[1]
            args[2] = [tuple(d) for d in args[2]]
        tries = int(step.get("tries", 300 if "until" in step or step.get("until_nonempty") else 1))
        out: dict[str, Any] = {"op": op}
        for _ in range(tries):
            try:
                if op == "register":
                    fd = sanlock.register()
                    value: Any = fd
                elif op == "reg_event":
                    evfd = sanlock.reg_event(*args)
                    value = evfd
                elif op == "close":
                    assert fd is not None
                    os.close(fd)
                    fd = None
                    value = None
                elif op == "restrict":  # not in the binding: what libsanlock's sanlock_restrict() sends
                    assert fd is not None
                    os.write(fd, struct.pack("<8I", 0x04282010, 1, 10, int(args[0]), 32, 0, 0, 0xFFFFFFFF))
                    value = struct.unpack("<8i", os.read(fd, 32))[6]
                elif op == "convert":  # not in the binding: what libsanlock's sanlock_convert() sends
                    assert fd is not None
                    ls, res, shared = args[0], args[1], bool(args[2])
                    body = struct.pack("<48s48sQQIIII", ls, res.encode(), 0, 0, 0, 0, 4 if shared else 0, 0)
                    os.write(fd, struct.pack("<8I", 0x04282010, 1, 27, 0, 32 + len(body), 0, 0, 0xFFFFFFFF) + body)
                    value = struct.unpack("<8i", os.read(fd, 32))[6]
                elif op == "wait":  # for the test's go-ahead: one line on stdin
                    value = sys.stdin.readline().strip()
                elif op == "sleep":
                    time.sleep(float(args[0]))
                    value = None
                else:
                    value = getattr(sanlock, op)(*args, **kwargs)
                out = {"op": op, "ok": True, "value": plain(value)}
            except sanlock.SanlockException as exc:
                out = {"op": op, "ok": False, "errno": exc.errno, "message": str(exc)}
            if step.get("until_nonempty") and out["ok"] and out["value"]:
                break
            if "until" not in step and not step.get("until_nonempty") or (
                    out["ok"] and "until" in step and out["value"] == step["until"]):
                break
            time.sleep(0.2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
