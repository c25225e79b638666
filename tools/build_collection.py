#!/usr/bin/env python3
"""Build the collection tarball from an assembled copy with real directories.

The repository keeps the collection's ``plugins`` and ``meta`` as symlinks into ``collection/``; a
tarball built from the repository carries those links, and ``ansible-galaxy collection install`` then
warns that the collection "does not have requires_ansible metadata" (it reads meta/runtime.yml from the
tarball before the link exists). This tool copies what the collection ships into
``<dir>/ansible_collections/lockengine/cluster`` with every link dereferenced, then builds there:

    python tools/build_collection.py --output-path build            # -> build/lockengine-cluster-X.tar.gz
    python tools/build_collection.py --assemble-only /tmp/coll       # the copy only (ansible-test sanity)
    python tools/build_collection.py --assemble-only /tmp/coll --no-engine

The tarball holds galaxy.yml, docs/, roles/, plugins/, meta/, playbooks/, changelogs/ and the engine payload
``lockengine/`` (the engine role installs it on hosts); never devkit/, tests/, molecule/ or bytecode.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMESPACE, NAME = "lockengine", "cluster"
# (source in the repository, path in the collection)
CONTENT = (
    ("galaxy.yml", "galaxy.yml"),
    ("docs", "docs"),
    ("roles", "roles"),
    ("collection/plugins", "plugins"),
    ("collection/meta", "meta"),
    ("collection/playbooks", "playbooks"),
    ("changelogs", "changelogs"),
    ("CHANGELOG.rst", "CHANGELOG.rst"),
    ("LICENSE", "LICENSE"),
)
ENGINE = ("lockengine", "lockengine")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", "images")


def assemble(dest: Path, engine: bool = True) -> Path:
    """Copy the collection into dest/ansible_collections/lockengine/cluster (links dereferenced)."""
    root = dest / "ansible_collections" / NAMESPACE / NAME
    if root.exists():
        raise SystemExit(f"{root} exists; give an empty directory")
    root.mkdir(parents=True)
    for src, dst in CONTENT + ((ENGINE,) if engine else ()):
        path = REPO / src
        if path.is_dir():
            shutil.copytree(path, root / dst, symlinks=False, ignore=IGNORE)
        elif path.is_file():
            shutil.copy2(path, root / dst)
    links = [str(p) for p in root.rglob("*") if p.is_symlink()]
    if links:
        raise SystemExit(f"symlinks left in the assembled copy: {links}")
    return root


def build(output: Path, galaxy: str = "ansible-galaxy") -> Path:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lockengine-collection.") as tmp:
        root = assemble(Path(tmp))
        proc = subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(output.resolve()),
                               str(root)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"ansible-galaxy collection build failed:\n{proc.stdout}{proc.stderr}")
    version = _version()
    tarball = output / f"{NAMESPACE}-{NAME}-{version}.tar.gz"
    if not tarball.is_file():
        raise SystemExit(f"no {tarball} after the build")
    return tarball


def _version() -> str:
    for line in (REPO / "galaxy.yml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    raise SystemExit("galaxy.yml has no version")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-path", type=Path, default=REPO / "build")
    parser.add_argument("--assemble-only", type=Path, metavar="DIR", help="only assemble the copy under DIR")
    parser.add_argument("--no-engine", action="store_true", help="leave lockengine/ out (with --assemble-only)")
    parser.add_argument("--galaxy", default=str(Path(sys.executable).parent / "ansible-galaxy"),
                        help="the ansible-galaxy executable")
    args = parser.parse_args(argv)
    if args.assemble_only:
        print(assemble(args.assemble_only, engine=not args.no_engine))
    else:
        print(build(args.output_path, args.galaxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
