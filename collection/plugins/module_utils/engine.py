# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calls the lockengine CLI with --json and reads its one JSON document (docs/cli.md).

The modules are thin: everything about the on-disk format and the daemon lives in the engine. This file
only finds the executable, runs it, and turns its error document into a failure that names the engine
error (sanlock's names and codes) and, for bad input, the field.
"""

from __future__ import annotations

import json
import os

from ansible_collections.lockengine.cluster.plugins.module_utils.common import (
    FALLBACK_BIN,
    MIB,
    RUN_DIR_ENV,
    SOCKET_NAME,
    escape_path,
)


class EngineError(Exception):
    """The engine answered {"ok": false, "error": {...}}."""

    def __init__(self, name, code, message, field=None, argv=None):
        super(EngineError, self).__init__("%s (%s): %s" % (name, code, message))
        self.name = name
        self.code = code
        self.message = message
        self.field = field
        self.argv = argv or []

    def as_dict(self):
        out = {"name": self.name, "code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


def find_lockengine(module, required=True):
    """lockengine_bin if given; else PATH (and the sbin dirs); else the engine role's install path."""
    given = module.params.get("lockengine_bin")
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given
        module.fail_json(
            msg="lockengine_bin: %s does not exist or is not executable; point it at the lockengine "
            "executable or leave it unset to search PATH and %s" % (given, FALLBACK_BIN)
        )
    found = module.get_bin_path("lockengine")
    if found:
        return found
    if os.path.isfile(FALLBACK_BIN) and os.access(FALLBACK_BIN, os.X_OK):
        return FALLBACK_BIN
    if required:
        module.fail_json(
            msg="lockengine executable not found in PATH nor at %s: install the engine (role "
            "lockengine.cluster.engine) or set lockengine_bin" % FALLBACK_BIN
        )
    return None


class Engine(object):
    """One module's handle on the engine CLI."""

    def __init__(self, module, required=True):
        self.module = module
        self.run_dir = module.params.get("run_dir")
        self.bin = find_lockengine(module, required=required)
        self.calls = []

    @property
    def socket_path(self):
        return os.path.join(self.run_dir, SOCKET_NAME)

    def run(self, *args):
        """Run `lockengine ARGS --json`; return its document, raise EngineError on an engine error."""
        argv = [self.bin] + [str(a) for a in args] + ["--json"]
        self.calls.append(argv)
        # expand_user_and_vars=False: a '$' or '~' in a device path is part of the path.
        rc, out, err = self.module.run_command(
            argv,
            environ_update={RUN_DIR_ENV: self.run_dir},
            expand_user_and_vars=False,
        )
        if rc == 2:
            self.module.fail_json(
                msg="lockengine rejected the command line (usage error): the installed engine does not "
                "match this collection's CLI contract; install the engine from this collection",
                cmd=argv, rc=rc, stdout=out, stderr=err,
            )
        try:
            doc = json.loads(out)
        except ValueError:
            self.module.fail_json(
                msg="lockengine printed no JSON document (rc %d); see stderr" % rc,
                cmd=argv, rc=rc, stdout=out, stderr=err,
            )
        if isinstance(doc, dict) and doc.get("ok") is False:
            error = doc.get("error") or {}
            raise EngineError(
                error.get("name", "ERROR"), error.get("code", rc), error.get("message", err.strip()),
                field=error.get("field"), argv=argv,
            )
        if rc != 0:
            raise EngineError("ERROR", rc, "lockengine exited with %d: %s" % (rc, err.strip()), argv=argv)
        return doc

    def fail(self, exc, msg, **extra):
        """Fail the module for an EngineError: our sentence first, then the engine's own words."""
        text = "%s: %s" % (msg, exc)
        if exc.field:
            text += " (option or field: %s)" % exc.field
        self.module.fail_json(msg=text, engine_error=exc.as_dict(), cmd=exc.argv, **extra)

    def daemon_status(self):
        """(status document or None, reason). An absent daemon is a state to report, not an error."""
        if not os.path.exists(self.socket_path):
            return None, "lockengined is not running: no socket at %s" % self.socket_path
        try:
            return self.run("client", "status"), None
        except EngineError as exc:
            return None, "lockengined did not answer on %s: %s" % (self.socket_path, exc)

    def require_daemon(self, purpose):
        status, reason = self.daemon_status()
        if status is None:
            self.module.fail_json(
                msg="%s needs the lockengine daemon on this host: %s. Start it (role "
                "lockengine.cluster.engine, or systemctl start lockengined) or set run_dir to where "
                "it listens" % (purpose, reason)
            )
        return status

    def dump(self, path, offset=None, size=None, dblocks=False):
        target = escape_path(path) if offset is None else "%s:%d" % (escape_path(path), offset)
        if offset is not None and size is not None:
            target += ":%d" % size
        args = ["direct", "dump", target]
        if dblocks:
            args += ["-f", "2"]
        return self.run(*args)


def area_at(dump, offset):
    """The area of a `direct dump --json` document that starts at offset (None when there is none)."""
    for area in dump.get("areas") or []:
        if area.get("offset") == offset:
            return area
    return None


def geometry_of(area):
    """sector_size/align_size/max hosts of a dumped area, for return values and comparisons."""
    if not area:
        return {}
    out = {
        "sector_size": area.get("sector_size"),
        "align_size": area.get("align_size"),
    }
    if area.get("kind") == "lockspace":
        out["max_hosts"] = area.get("max_hosts")
    else:
        out["num_hosts"] = area.get("num_hosts")
    return out


def lockspace_entry(status, name):
    """This host's entry for a lockspace in `client status` (None when not joined or joining)."""
    for entry in (status or {}).get("lockspaces") or []:
        if entry.get("lockspace") == name:
            return entry
    return None


def init_area(engine, args, params, options, offset, align, what):
    """``lockengine direct init ARGS`` with the module's geometry options, then the new area's geometry.

    ``options`` pairs a CLI flag with the module parameter it comes from, e.g. ("-Z", "sector_size");
    unset parameters are left out so the engine picks them from the device.
    """
    args = list(args)
    for flag, key in options:
        if params.get(key):
            args += [flag, params[key]]
    if params.get("force"):
        args.append("--force")
    try:
        engine.run(*args)
        dump = engine.dump(params["path"], offset, size=align or MIB)
    except EngineError as exc:
        engine.fail(exc, what)
    return geometry_of(area_at(dump, offset))
