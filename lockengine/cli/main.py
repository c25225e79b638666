"""Entry point of the ``lockengine`` command: ``direct`` (straight to disk) and ``client`` (via the daemon).

Only the module of the command given is imported (``lockengine client status`` never loads the lease
code); ``--help``, ``--version`` and a missing or unknown command load both, so argparse lists them.
The client verbs' plain forms are read without argparse (cli/args.py, ``client.fast_args``); every
other form, help and error goes through argparse.
"""

from __future__ import annotations

import sys

from .. import __version__
from ..errors import is_expected, storage_error
from .output import render_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .args import Args

COMMANDS = ("direct", "client")


def _add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    if name == "direct":
        from . import direct

        direct.add_parser(sub)
    else:
        from . import client

        client.add_parser(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` (one of COMMANDS), or for all of them."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="lockengine",
        description="Storage-lease fencing engine, on-disk compatible with sanlock 3.8.",
    )
    parser.add_argument("--version", action="version", version=f"lockengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if command in (None, name):
            _add_command(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args: Args | None = None
    if words and words[0] == "client":
        from . import client

        args = client.fast_args(words)
    if args is None:
        args = build_parser(words[0] if words and words[0] in COMMANDS else None).parse_args(words)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, OSError):  # a failed I/O, named after its record when the verb knows it
            areas = getattr(args, "storage_areas", None)
            exc = storage_error(exc, areas(args) if callable(areas) else ())
        if not is_expected(exc):
            import traceback  # only for a bug

            traceback.print_exc(file=sys.stderr)  # a bug: keep the evidence (stdout stays one JSON document)
        return render_error(exc, bool(getattr(args, "json", False)) or "--json" in words)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
