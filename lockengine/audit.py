"""The force-release audit log: where it lives and what one record looks like (docs/cli.md).

Every release the engine performs on behalf of another host — forced by an operator (``--force
--reason``), or for a host the lockspace shows dead — appends one line here. The Ansible module
``lockengine.cluster.lease`` writes its force-releases through the engine's CLI, so this file is the
only definition of the log's location and record format.

A record is one line: an ISO-8601 UTC time, then ``key=value`` fields in a fixed order, then any
context fields the caller added. A value that is not a plain token is written as a JSON string, so a
record is always exactly one line and parses back with ``parse_record``.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from .errors import InputError

DEFAULT_LOG = "/var/log/lockengine/force-release.log"
DIR_MODE = 0o750
FILE_MODE = 0o640

# The engine's fields, in the order they are written. Context keys may not reuse them.
FIELDS = (
    "host", "user", "pid", "command", "lockspace", "resource", "path", "offset", "owner_id", "owner_generation",
    "lver", "grounds", "result", "reason",
)
GROUNDS = ("forced", "dead")  # --force --reason, or judged dead from the lockspace
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PLAIN = re.compile(r"[A-Za-z0-9._:/@+,-]+")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def quote(value: object) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return f"uid{os.getuid()}"


def parse_context(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs a caller adds to its record (e.g. what it checked); names the bad one."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _KEY.fullmatch(key) or key in FIELDS or key in out:
            raise InputError(
                "--context", item,
                "give KEY=VALUE with a new lower-case key (letters, digits, _), not one of " + ", ".join(FIELDS),
            )
        out[key] = value
    return out


def format_record(fields: Mapping[str, object], context: Mapping[str, str], when: datetime.datetime) -> str:
    """One audit line: the time, the engine's fields in FIELDS order, then the context fields."""
    parts = [when.astimezone(datetime.UTC).strftime(_TIME_FORMAT)]
    parts += [f"{k}={quote(fields[k])}" for k in FIELDS if k in fields]
    parts += [f"{k}={quote(v)}" for k, v in context.items()]
    return " ".join(parts)


def parse_record(line: str) -> dict[str, str]:
    """The fields of one record (``time`` for the leading timestamp); the inverse of format_record."""
    when, _, rest = line.rstrip("\n").partition(" ")
    out = {"time": when}
    decoder = json.JSONDecoder()
    i = 0
    while i < len(rest):
        key, _, _ = rest[i:].partition("=")
        i += len(key) + 1
        if rest[i : i + 1] == '"':
            value, end = decoder.raw_decode(rest, i)
            out[key] = str(value)
            i = end
        else:
            end = rest.find(" ", i)
            end = len(rest) if end < 0 else end
            out[key] = rest[i:end]
            i = end
        i += 1  # the space between fields
    return out


@dataclass
class AuditLog:
    """The log opened for appending *before* anything is written to a lease, so a release that could
    not be recorded is never done. Use as a context manager; ``record`` writes and fsyncs one line."""

    path: str = DEFAULT_LOG

    def __post_init__(self) -> None:
        self._fd: int | None = None

    def __enter__(self) -> AuditLog:
        if not os.path.isabs(self.path):
            raise InputError("--audit-log", self.path, "give an absolute path")
        try:
            os.makedirs(os.path.dirname(self.path), DIR_MODE, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise InputError(
                "--audit-log", self.path,
                f"the audit log cannot be opened ({exc.strerror}); nothing was written to the lease. Fix its "
                "directory or permissions, or give another --audit-log",
            ) from None
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def record(self, fields: Mapping[str, object], context: Mapping[str, str] | None = None) -> str:
        """Append one record (host, user and pid filled in) and return the line."""
        if self._fd is None:
            raise RuntimeError("AuditLog.record outside its with block")
        full = {"host": socket.gethostname(), "user": _user(), "pid": os.getpid(), **fields}
        line = format_record(full, context or {}, datetime.datetime.now(datetime.UTC))
        os.write(self._fd, (line + "\n").encode("utf-8"))
        os.fsync(self._fd)
        return line
