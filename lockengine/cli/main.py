"""Entry point of the ``lockengine`` command: ``direct`` (straight to disk) and ``client`` (via the daemon)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import InputError, LockError
from . import direct
from .output import json_parent, render_error


def _add_client(subparsers: Any) -> None:
    """The client verbs live in lockengine.cli.client; `direct` must keep working without it."""
    try:
        from . import client  # type: ignore[attr-defined,unused-ignore]
    except Exception as exc:  # a missing or broken client module must not take `direct` down
        reason = f"{type(exc).__name__}: {exc}"

        def unavailable(_args: argparse.Namespace) -> int:
            raise LockError("ERROR", f"the client commands are not available in this installation ({reason})")

        p = subparsers.add_parser(
            "client", parents=[json_parent()], help="talk to lockengined (unavailable here)", add_help=True
        )
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(handler=unavailable)
        return
    client.add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockengine",
        description="Storage-lease fencing engine, on-disk compatible with sanlock 3.8.",
    )
    parser.add_argument("--version", action="version", version=f"lockengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    direct.add_parser(sub)
    _add_client(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(words)
    # Also honour --json where a verb's parser could not see it (the stand-in for a missing client).
    as_json = bool(getattr(args, "json", False)) or "--json" in words
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not isinstance(exc, (LockError, InputError, OSError)):
            traceback.print_exc(file=sys.stderr)  # a bug: keep the evidence (stdout stays one JSON document)
        return render_error(exc, as_json)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
