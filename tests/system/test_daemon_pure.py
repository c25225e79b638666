"""The daemon's pure pieces: escalation choices, request parsing, sd_notify — no devices needed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from lockengine.daemon.clients import Client
from lockengine.daemon.escalation import Action, Recovery, choose_action
from lockengine.daemon.notify import notify, watchdog_interval
from lockengine.daemon.protocol import ProtocolError, decode_request, encode_error, encode_reply, error_dict
from lockengine.errors import InputError, LockError


def _recovery(sigkill_at: float, forced: bool = False) -> Recovery:
    return Recovery(ls=None, started=0.0, sigkill_at=sigkill_at, forced=forced, reason="test")  # type: ignore[arg-type]


def _client(killpath: list[str] | None = None) -> Client:
    return Client(pid=1, uid=0, name="c", conn_id=1, pidfd=None, killpath=killpath)


def test_escalation_timeline() -> None:
    rec = _recovery(sigkill_at=120.0)
    plain = _client()
    assert choose_action(80.0, rec, plain, 40) == Action.SIGTERM
    assert choose_action(119.9, rec, plain, 40) == Action.SIGTERM
    assert choose_action(120.0, rec, plain, 40) == Action.SIGKILL
    # A killpath runs once during the grace, then nothing until SIGKILL.
    kp = _client(["/bin/true"])
    assert choose_action(80.0, rec, kp, 40) == Action.KILLPATH
    kp.killpath_sent = True
    assert choose_action(81.0, rec, kp, 40) == Action.WAIT
    assert choose_action(120.0, rec, kp, 40) == Action.SIGKILL
    # kill_grace 0 means no killpath phase; rem_lockspace/shutdown (forced) kill at once.
    assert choose_action(80.0, rec, _client(["/bin/true"]), 0) == Action.SIGTERM
    assert choose_action(0.0, _recovery(sigkill_at=120.0, forced=True), plain, 40) == Action.SIGKILL


@pytest.mark.parametrize(
    "line, field, words",
    [
        (b"\xff\xfe", None, "not UTF-8"),
        (b"{", None, "not JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"v": 2, "cmd": "hello"}', "v", "version 2"),
        (b'{"args": {}}', "cmd", "cmd"),
        (b'{"cmd": "x", "args": 3}', "args", "args"),
    ],
)
def test_bad_requests_name_the_problem(line: bytes, field: str | None, words: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_request(line)
    assert words in exc.value.message
    assert exc.value.field == field
    assert exc.value.as_dict()["name"] == "EINVAL" and exc.value.as_dict()["code"] == -22


def test_request_and_reply_encoding() -> None:
    req = decode_request(b'{"v": 1, "id": "a", "cmd": "status", "args": {"detail": true}}')
    assert (req.cmd, req.args, req.id) == ("status", {"detail": True}, "a")
    assert decode_request(b'{"cmd": "hello"}').args == {}
    assert encode_reply(1, {"x": 1}) == b'{"v":1,"id":1,"ok":true,"result":{"x":1}}\n'
    err = encode_error(2, error_dict(LockError("ACQUIRE_IDLIVE", "held")))
    assert b'"name":"ACQUIRE_IDLIVE","code":-243' in err
    assert error_dict(InputError("pid", "x", "give a number"))["field"] == "pid"
    assert error_dict(OSError(5, "I/O error"))["name"] == "EIO"
    assert error_dict(ValueError("bug"))["name"] == "ERROR"


def test_sd_notify(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        assert notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1\nSTATUS=ok"
    finally:
        sock.close()
    # Abstract namespace ('@'), and no socket at all.
    name = f"@lockengine-test-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name[1:])
    try:
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": name})
        assert abstract.recv(100) == b"WATCHDOG=1"
    finally:
        abstract.close()
    assert notify("READY=1", {}) is False
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
