"""Enter cgroups, then exec a command: ``python3 cgexec.py PROCS_FILE... -- ARGV...``.

The harness starts each host's systemd-nspawn through this wrapper so that the host lives in the
blkio, freezer, name=systemd and unified cgroups made for it, from its first instruction on.
(subprocess's preexec_fn would do the same but is unsafe in a process with threads, e.g. paramiko's.)
Standard library only: it is run by path, not imported.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: cgexec.py CGROUP_PROCS_FILE... -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    procs_files, command = argv[:split], argv[split + 1:]
    pid = str(os.getpid())
    for procs in procs_files:
        with open(procs, "w") as f:
            f.write(pid)
    os.execv(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
