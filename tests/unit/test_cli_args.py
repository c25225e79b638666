"""The client verbs' fast path (lockengine/cli/args.py) reads a command line exactly as argparse does, or
leaves it to argparse: for every verb and many spellings of its options, the namespace it builds equals
argparse's, and the forms only argparse handles (help, abbreviations, errors) go to argparse. The
comparison is shown to catch a fast path that names an attribute wrongly."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import pytest

from lockengine.cli import args as fast
from lockengine.cli import client
from lockengine.cli.main import build_parser, main

VALUE = "LS:R1:/dev/loop0:1048576"


def argparse_reads(words: list[str]) -> dict[str, Any] | None:
    """argparse's namespace for ``words`` as a dict, or None when it exits (help or an error)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(build_parser("client").parse_args(words))
        except SystemExit:
            return None


def mismatch(words: list[str]) -> str | None:
    """Why the fast path and argparse disagree on ``words`` (None: they agree, or fast leaves it)."""
    ours = client.fast_args(words)
    if ours is None:
        return None
    theirs = argparse_reads(words)
    if theirs is None:
        return f"{words}: fast path read {vars(ours)}, argparse refused it"
    if vars(ours) != theirs:
        return f"{words}: fast path {vars(ours)} != argparse {theirs}"
    return None


def _spellings(options: tuple[fast.Option, ...]) -> Iterator[list[str]]:
    """Ways to write ``options``: each with a value or flag, long with ``=``, repeated, reordered, alone."""
    simple = [o for o in options if o[1].get("action") in (None, "store_true", "append")]
    required = [o for o in simple if o[1].get("required")]

    def words(option: fast.Option, form: int) -> list[str]:
        flags, kw = option
        long = next((f for f in flags if f.startswith("--")), None)
        if kw.get("action") == "store_true":
            return [flags[-1]] if form == 1 else [flags[0]]
        value = [VALUE, "", "x y", "0"][form % 4]
        if form == 2 and long:
            return [f"{long}={value}"]
        return [flags[form % len(flags)], value]

    req_words = [w for o in required for w in words(o, 0)]
    yield req_words
    for form in range(4):
        every = [w for o in simple for w in words(o, form)]
        yield every
        yield [w for o in reversed(simple) for w in words(o, form)]
        yield every + every  # repeated: the last value wins, appends add up
    for option in simple:
        yield words(option, 0)  # alone: a required option may be missing
        yield [*req_words, *words(option, 3)]
        yield [*req_words, option[0][0]]  # a value missing
        yield [*req_words, option[0][0], "-5"]  # a value that looks like an option
    for odd in (["-h"], ["--help"], ["--js"], ["--json=1"], ["--"], ["stray"], ["--run-dir", "--json"], ["-DD"]):
        yield [*req_words, *odd]


def command_lines() -> Iterator[list[str]]:
    for verb, (_, _, _, options) in client.VERBS.items():
        for spelling in _spellings(client.COMMON + options):
            yield ["client", verb, *spelling]


def test_fast_path_reads_every_verb_as_argparse_does() -> None:
    lines = list(command_lines())
    assert len(lines) > 500
    problems = [p for p in map(mismatch, lines) if p]
    assert not problems, "\n".join(problems[:10])
    # ... and it is the path actually taken for the plain forms of every verb but `command`:
    taken = {w[1] for w in lines if client.fast_args(w) is not None}
    assert taken == set(client.VERBS) - {"command"}


@pytest.mark.parametrize("words", [
    ["client", "status"], ["client", "status", "-D", "--json"], ["client", "status", "--run-dir", "/tmp/x"],
    ["client", "status", "--run-dir=/tmp/x", "-D"], ["client", "gets", "-h", "1"],
    ["client", "inq_lockspace", "-s", "LS"], ["client", "acquire", "-r", VALUE, "-r", VALUE, "-p", "7", "-q"],
    ["client", "release", "-p", "7", "--all", "--json"], ["client", "metrics", "--output=/tmp/m.prom"],
])
def test_plain_forms_take_the_fast_path(words: list[str]) -> None:
    ours = client.fast_args(words)
    assert ours is not None and vars(ours) == argparse_reads(words)


@pytest.mark.parametrize("words", [
    ["client", "status", "-h"], ["client", "status", "--help"], ["client", "gets", "--help"],
    ["client", "status", "--js"], ["client", "status", "--json=1"], ["client", "status", "-D", "extra"],
    ["client", "status", "--run-dir"], ["client", "status", "--run-dir", "-D"], ["client", "status", "--"],
    ["client", "inq_lockspace"], ["client", "acquire", "-p", "1"], ["client", "inquire", "-p1"],
    ["client", "command", "-r", VALUE, "--", "true"], ["client", "nope"], ["client"], ["client", "--json", "status"],
    ["direct", "dump", "/dev/null"],
])
def test_other_forms_are_left_to_argparse(words: list[str]) -> None:
    assert client.fast_args(words) is None


def test_help_is_argparses(capsys: pytest.CaptureFixture[str]) -> None:
    """Help still comes whole from argparse: every verb and option is listed."""
    with pytest.raises(SystemExit):
        main(["client", "--help"])
    out = capsys.readouterr().out
    assert all(verb in out for verb in client.VERBS)
    with pytest.raises(SystemExit):
        main(["client", "acquire", "--help"])
    out = capsys.readouterr().out
    assert all(s in out for s in ("--json", "--run-dir", "-r LS:RES:PATH:OFF[:LVER|:SH]", "-p PID", "--nowait",
                                  "-q, --quiet"))


def test_the_comparison_catches_a_misnamed_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mismatch(["client", "metrics", "--audit-log", "/x"]) is None
    monkeypatch.setattr(fast, "dest", lambda option: option[1].get("dest") or option[0][-1].lstrip("-"))
    assert mismatch(["client", "metrics", "--audit-log", "/x"]) is not None  # audit-log, not audit_log


def test_namespace_compares_and_prints_like_argparses() -> None:
    import argparse

    ours = fast.Namespace(verb="status", detail=True)
    assert ours == argparse.Namespace(verb="status", detail=True) and ours != fast.Namespace(verb="status")
    assert repr(ours) == "Namespace(verb='status', detail=True)" == repr(argparse.Namespace(verb="status", detail=True))
