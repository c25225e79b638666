"""Test users and a daemon they can reach, for the authorization tests.

``TestUsers`` creates groups and users with ``groupadd``/``useradd`` (no home, no login shell) and
removes exactly those at the end. ``as_user(user, fn)`` runs ``fn`` in a forked child that has become
that user (uid, primary gid and supplementary groups): no exec, so the child needs no access to this
interpreter's files, which may live under root's home. ``UserProcess`` is such a child that stays
alive (a lease holder) until it is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockengine.client import DaemonError


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


class TestUsers:
    __test__ = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.groups: list[str] = []
        self.users: list[str] = []

    def group(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        self.groups.append(name)
        return name

    def user(self, suffix: str, groups: list[str]) -> User:
        name = f"{self.prefix}{suffix}"
        args = ["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent"]
        if groups:
            args += ["-G", ",".join(groups)]
        subprocess.run([*args, name], check=True, capture_output=True)
        self.users.append(name)
        self.groups.append(name)  # useradd -U made it; userdel removes it with the user
        pw = pwd.getpwnam(name)
        return User(name, pw.pw_uid, pw.pw_gid)

    def remove(self) -> None:
        errors = []
        for name in reversed(self.users):
            proc = subprocess.run(["userdel", name], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(f"userdel {name}: {proc.stderr.strip()}")
        for name in reversed(self.groups):
            if name in self.users:
                continue
            proc = subprocess.run(["groupdel", name], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(f"groupdel {name}: {proc.stderr.strip()}")
        if errors:
            raise AssertionError("; ".join(errors))


def _become(user: User) -> None:
    os.initgroups(user.name, user.gid)
    os.setgid(user.gid)
    os.setuid(user.uid)
    os.environ.clear()
    os.environ["PATH"] = "/usr/bin:/bin"


def _run_child(user: User, fn: Callable[[], Any], w: int) -> None:
    try:
        _become(user)
        result = {"ok": True, "value": fn()}
    except DaemonError as exc:
        result = {"ok": False, "error": exc.as_dict()}
    except BaseException as exc:  # reported to the test, never returned into pytest
        result = {"ok": False, "error": {"name": type(exc).__name__, "message": str(exc)}}
    os.write(w, (json.dumps(result) + "\n").encode())


def _read_line(fd: int) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    doc: dict[str, Any] = json.loads(data) if data else {"ok": False, "error": {"name": "no answer"}}
    return doc


def as_user(user: User, fn: Callable[[], Any]) -> dict[str, Any]:
    """``{"ok": True, "value": fn()}`` or ``{"ok": False, "error": {name, code, message}}``, run as ``user``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _run_child(user, fn, w)
        finally:
            os._exit(0)
    os.close(w)
    try:
        return _read_line(r)
    finally:
        os.close(r)
        os.waitpid(pid, 0)


class UserProcess:
    """A child running as ``user``: ``setup()`` runs, its result is reported, then it waits to be stopped."""

    def __init__(self, user: User, setup: Callable[[], Any]) -> None:
        r, w = os.pipe()
        self._hold_r, self._hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                os.close(self._hold_w)
                _run_child(user, setup, w)
                os.read(self._hold_r, 1)  # until the parent stops us (or dies)
            finally:
                os._exit(0)
        os.close(w)
        os.close(self._hold_r)
        self.pid = pid
        self.result = _read_line(r)
        os.close(r)
        self._done = False

    def alive(self) -> bool:
        if self._done:
            return False
        pid, _ = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self._done = True
        return not self._done

    def stop(self) -> None:
        if not self._done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self._done = True
        if self._hold_w >= 0:
            os.close(self._hold_w)
            self._hold_w = -1

