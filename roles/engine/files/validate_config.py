# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks a lockengine configuration file the way the daemon will read it. The role
lockengine.cluster.engine runs it on the host (template `validate`) before the file replaces
/etc/lockengine/lockengine.conf:

    python3 -I validate_config.py --engine /opt/lockengine/bin/lockengine [--lib /opt/lockengine/lib] FILE

1. `lockengine config check FILE`, when the installed engine has that command;
2. else the engine's own loader, lockengine.config.load_config: the JSON schema shipped in
   lockengine/schema/ plus the checks a schema cannot express.
Exit 0 when valid; else the engine's message (field, value, what is allowed) on stderr.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

USAGE_ERROR = 2  # argparse's exit code: this engine has no `config check` verb


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="the lockengine launcher")
    parser.add_argument("--lib", help="directory that holds the lockengine package (collection install)")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    proc = subprocess.run([args.engine, "config", "check", args.file],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode == 0:
        return 0
    if proc.returncode != USAGE_ERROR:
        sys.stderr.write(proc.stdout + proc.stderr)
        return 1
    if args.lib:
        sys.path.insert(0, args.lib)
    try:
        from lockengine.config import load_config
    except ImportError as exc:
        sys.stderr.write("cannot validate %s: the engine has no `config check` and its loader does not import "
                         "(%s); reinstall the engine\n" % (args.file, exc))
        return 1
    try:
        load_config(args.file)
    except Exception as exc:  # pylint: disable=broad-except  # InputError names the field; report anything
        sys.stderr.write("%s: %s\n" % (args.file, exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
