# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks a lockengine configuration file the way the daemon will read it: the JSON Schema the engine ships
(lockengine/schema/lockengine.schema.json, the one source of the rules) and the checks a schema cannot express,
both through the engine's own loader lockengine.config.load_config.

On the host (the role lockengine.cluster.engine, template `validate`, before the file replaces
/etc/lockengine/lockengine.conf; the lockspace role likewise):

    python3 -I validate_config.py --engine /opt/lockengine/bin/lockengine [--lib /opt/lockengine/lib] FILE

1. `lockengine config check FILE`, when the installed engine has that command;
2. else the loader from --lib (or the engine's import path).
Exit 0 when valid; else the engine's message (field, value, what is allowed) on stderr.

On the controller (the roles' preflights, before anything on a host changes), with the collection's copy:

    python3 -I validate_config.py --controller --lib <collection root> FILE|-

prints one JSON line: {"ok": true} or {"ok": false, "field": ..., "message": ...} (exit 1), or exits 3 when
this Python cannot run the loader (no jsonschema, or older than the engine's floor), saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

USAGE_ERROR = 2  # argparse's exit code: this engine has no `config check` verb
CANNOT_RUN = 3


def _load_config(lib):
    if lib:
        sys.path.insert(0, lib)
    from lockengine.config import load_config  # pylint: disable=import-outside-toplevel
    import jsonschema  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import

    return load_config


def controller_check(lib, path):
    try:
        load_config = _load_config(lib)
    except (ImportError, SyntaxError) as exc:
        sys.stdout.write(json.dumps({"ok": None, "reason": "%s on Python %s" % (exc, sys.version.split()[0])}) + "\n")
        return CANNOT_RUN
    # The host's default name comes from the host's machine id, which the controller does not have: a stand-in
    # lets the rest of the file be checked.
    with tempfile.NamedTemporaryFile("w", suffix=".machine-id") as machine_id, \
            tempfile.NamedTemporaryFile("w", suffix=".json") as stdin_copy:
        machine_id.write("0" * 31 + "1\n")
        machine_id.flush()
        if path == "-":
            stdin_copy.write(sys.stdin.read())
            stdin_copy.flush()
            path = stdin_copy.name
        try:
            load_config(path, environ={}, machine_id_paths=(machine_id.name,), nodename="preflight")
        except ValueError as exc:  # InputError: field, value, what is allowed
            sys.stdout.write(json.dumps({"ok": False, "field": getattr(exc, "field", "config"),
                                         "message": str(exc)}) + "\n")
            return 1
    sys.stdout.write(json.dumps({"ok": True}) + "\n")
    return 0


def host_check(engine, lib, path):
    proc = subprocess.run([engine, "config", "check", path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode == 0:
        return 0
    if proc.returncode != USAGE_ERROR:
        sys.stderr.write(proc.stdout + proc.stderr)
        return 1
    try:
        load_config = _load_config(lib)
    except ImportError as exc:
        sys.stderr.write("cannot validate %s: the engine has no `config check` and its loader does not import "
                         "(%s); reinstall the engine\n" % (path, exc))
        return 1
    try:
        load_config(path)
    except Exception as exc:  # pylint: disable=broad-except  # InputError names the field; report anything
        sys.stderr.write("%s: %s\n" % (path, exc))
        return 1
    return 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", help="the lockengine launcher (on the host)")
    parser.add_argument("--lib", help="directory that holds the lockengine package")
    parser.add_argument("--controller", action="store_true", help="check on the controller; print JSON")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    if args.controller:
        return controller_check(args.lib, args.file)
    if not args.engine:
        parser.error("--engine is required unless --controller is given")
    return host_check(args.engine, args.lib, args.file)


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1:]))
