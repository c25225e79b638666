# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack the engine package (SOURCE, a lockengine/ directory) into a deterministic tar.gz (DEST).

Runs on the controller for the role lockengine.cluster.engine. Same sources -> same bytes, so the copy
to the hosts is skipped when nothing changed: sorted entries, root-owned, source mtimes, no gzip name
or time. Bytecode caches are left out (the hosts compile for their own Python).
"""

from __future__ import annotations

import gzip
import os
import sys
import tarfile


def wanted(name: str) -> bool:
    return "__pycache__" not in name.split(os.sep) and not name.endswith((".pyc", ".pyo"))


def entries(source: str):
    base = os.path.basename(os.path.normpath(source))
    yield source, base
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if wanted(d))
        for name in sorted(dirs) + sorted(f for f in files if wanted(f)):
            path = os.path.join(root, name)
            yield path, os.path.join(base, os.path.relpath(path, source))


def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: pack_engine.py SOURCE_DIR DEST.tar.gz", file=sys.stderr)
        return 2
    source, dest = os.path.realpath(argv[1]), argv[2]
    if not os.path.isfile(os.path.join(source, "__init__.py")):
        print("pack_engine.py: %s is not the lockengine package (no __init__.py)" % source, file=sys.stderr)
        return 1
    with open(dest, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for path, arcname in entries(source):
                    info = normalize(tar.gettarinfo(path, arcname))
                    if info.isfile():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
