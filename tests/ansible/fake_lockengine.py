"""A stand-in for the `lockengine` executable, for the collection's module-logic tests ONLY.

An extra seam, not a replacement for the engine: it answers from a JSON scenario file
($FAKE_LOCKENGINE_SCENARIO) the way docs/cli.md says the engine answers, and records every call
($FAKE_LOCKENGINE_CALLS, one JSON argv per line) so tests can see what a module asked for. The real
engine and daemon are tested by the molecule scenarios on test hosts.

Scenario keys: "dump" (the `direct dump --json` document), "dump_after_init" (served after an init),
"status" (`client status`), "host_status" ({lockspace: document}), "replies" ({verb: document}),
"errors" ({verb: {"name", "code", "message"}}). A verb is "direct init", "client add_lockspace", ...
A successful `direct release --audit-log PATH` appends its record the way the engine does (lockengine.audit).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's engine, for its audit format


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_LOCKENGINE_CALLS"], "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    with open(os.environ["FAKE_LOCKENGINE_SCENARIO"]) as handle:
        scenario = json.load(handle)
    if "--json" not in argv or len(argv) < 3:
        print("usage: lockengine {direct,client} VERB ... --json", file=sys.stderr)
        return 2
    verb = " ".join(argv[:2])
    error = scenario.get("errors", {}).get(verb)
    if error:
        print(json.dumps({"ok": False, "error": error}))
        return 1
    state_file = os.environ["FAKE_LOCKENGINE_SCENARIO"] + ".initialized"
    if verb == "direct init":
        open(state_file, "w").close()
    if verb == "direct dump":
        key = "dump_after_init" if os.path.exists(state_file) and "dump_after_init" in scenario else "dump"
        doc = scenario[key]
    elif verb == "client status":
        doc = scenario["status"]
    elif verb == "client host_status":
        doc = scenario["host_status"][argv[argv.index("-s") + 1]]
    else:
        doc = scenario.get("replies", {}).get(verb, {"ok": True})
    if verb == "direct release" and "--audit-log" in argv:
        doc = dict(doc, audit=_record(argv))
    print(json.dumps(doc))
    return 0


def _record(argv: list[str]) -> str:
    from lockengine.audit import AuditLog, parse_context
    from lockengine.strings import parse_resource

    def opt(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    context = parse_context([argv[i + 1] for i, a in enumerate(argv) if a == "--context"])
    res = parse_resource(opt("-r"), "-r")
    fields = {"command": "release", "lockspace": res.lockspace, "resource": res.name, "path": res.path,
              "offset": res.offset, "owner_id": opt("-i"), "owner_generation": opt("-g"),
              "grounds": "forced" if "--force" in argv else "dead", "result": "released", "reason": opt("--reason")}
    with AuditLog(opt("--audit-log")) as log:
        return log.record(fields, context)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
