"""A command line's options read without argparse, for the plain forms only (the client verbs' fast path).

argparse costs a ``lockengine client ...`` process ~6 ms (its import, gettext, locale, shutil, and a
help formatter per option), a quarter of a bare interpreter's start. A verb's options are declared once,
as ``(option strings, argparse keywords)``: argparse builds its parser from them, and ``parse_options``
reads the plain forms itself — each token an option string spelled out in full, ``--long=VALUE``, or an
option's value that does not start with ``-``. Anything else (``-h``, an abbreviation, ``-sVALUE``, a
stray word, a missing required option, ``--``) returns None, and the caller hands the words to argparse,
so help, usage and errors stay argparse's own. tests/unit/test_cli_args.py holds the two to the same
result.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, TypeAlias

    # A verb's option: its option strings and the keywords argparse's add_argument takes.
    Option: TypeAlias = tuple[tuple[str, ...], dict[str, Any]]
    # What a verb's handler reads: argparse's namespace, or ours from the fast path.
    Args: TypeAlias = "argparse.Namespace | Namespace"

# The actions parse_options handles; an option with another (help, count, ...) or with nargs sends
# the words to argparse.
_SIMPLE = (None, "store", "store_true", "append")


class Namespace:
    """The parsed options as attributes, like argparse.Namespace (equal when their attributes are)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as argparse.Namespace

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def dest(option: Option) -> str:
    """argparse's attribute name for an option: ``dest=``, else its first long option string (else its
    first) without the dashes, ``-`` as ``_``."""
    flags, kw = option
    if "dest" in kw:
        return str(kw["dest"])
    name = next((f for f in flags if f.startswith("--")), flags[0])
    return name.lstrip("-").replace("-", "_")


def parse_options(words: Sequence[str], options: Sequence[Option], fixed: dict[str, object]) -> Namespace | None:
    """``words`` (what follows the verb) read against ``options``, as argparse would read them, with
    ``fixed`` (the verb's set_defaults and the command/verb names) added; None for any form it does not
    handle (then argparse must: it may print help, an error, or read it in a way this does not)."""
    by_flag: dict[str, Option] = {}
    values: dict[str, object] = {}
    for option in options:
        flags, kw = option
        if not flags[0].startswith("-") or "nargs" in kw:
            return None  # positionals and nargs: argparse's matching rules, not repeated here
        if kw.get("action") not in _SIMPLE:
            continue  # e.g. an explicit --help: it has no attribute; its word is not in by_flag
        for flag in flags:
            by_flag[flag] = option
        default = kw.get("default", False if kw.get("action") == "store_true" else None)
        values[dest(option)] = list(default) if isinstance(default, list) else default
    seen: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        flag, eq, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        found = by_flag.get(flag)
        if found is None:
            return None  # a positional, an abbreviation, -h, --, a joined short option: argparse's
        kw = found[1]
        name = dest(found)
        seen.add(name)
        if kw.get("action") == "store_true":
            if eq:
                return None  # argparse's error ("ignored explicit argument")
            values[name] = True
            continue
        if eq:
            value = attached
        elif i < len(words) and not words[i].startswith("-"):
            value = words[i]
            i += 1
        else:
            return None  # a missing value, or one that looks like an option: argparse decides
        if kw.get("action") == "append":
            current = values[name]
            values[name] = [*(current if isinstance(current, list) else ()), value]
        else:
            values[name] = value
    if any(kw.get("required") and dest((flags, kw)) not in seen for flags, kw in options):
        return None  # argparse names what is missing
    return Namespace(**values, **fixed)
