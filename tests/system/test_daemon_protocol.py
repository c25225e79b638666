"""The socket contract: clear client errors (no daemon, dead daemon, permission, malformed reply) and a
daemon that survives whatever bytes arrive (fuzz, oversized and pipelined requests)."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from lockengine.cli.main import build_parser, main
from lockengine.client import (
    BadReply,
    Client,
    DaemonError,
    DaemonGone,
    DaemonNotRunning,
    DaemonTimeout,
    RemoteError,
    SocketMissing,
    SocketPermission,
)
from lockengine.daemon.protocol import MAX_REQUEST
from tests.support.daemons import REPO, DaemonFactory, TestDaemon, env_for

NOBODY = 65534


def cli(run_dir: Path | str, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "lockengine", "client", *args], env=env_for(run_dir), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def cli_error(run_dir: Path | str, *args: str) -> dict[str, Any]:
    rc, out, err = cli(run_dir, *args, "--json")
    assert rc == 1, (out, err)
    doc = json.loads(out)
    assert doc["ok"] is False
    error: dict[str, Any] = doc["error"]
    return error


# --------------------------------------------------------------------------- client-side errors


def test_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(SocketMissing) as exc:
        Client(run_directory=str(tmp_path)).status()
    assert exc.value.name == "ENOENT" and "not running" in exc.value.message
    assert str(tmp_path) in exc.value.message and "LOCKENGINE_RUN_DIR" in exc.value.message
    err = cli_error(tmp_path, "status")
    assert (err["name"], err["code"]) == ("ENOENT", -2)
    rc, out, stderr = cli(tmp_path, "gets")
    assert rc == 1 and out == "" and stderr.startswith("lockengine: ENOENT (-2): no daemon socket at ")


def test_dead_daemon(daemons: DaemonFactory) -> None:
    d = daemons("doomed")
    assert d.call("hello")["host_name"] == "doomed"
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    assert os.path.exists(d.socket)  # a crash leaves the socket file behind
    with pytest.raises(DaemonNotRunning) as exc:
        Client(d.socket).hello()
    assert exc.value.name == "ECONNREFUSED" and "stopped or crashed" in exc.value.message
    err = cli_error(d.run_dir, "status")
    assert err["name"] == "ECONNREFUSED" and "start it again" in err["message"]


def _as_nobody(fn: Callable[[], str]) -> str:
    """Run ``fn`` in a forked child with uid/gid nobody; return what it returned (or its error).

    The child cannot read this interpreter's files any more, so every module it needs is imported
    (and the command line parser built once) before the fork."""
    build_parser().parse_args(["client", "status", "--json"])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = fn()
        except BaseException as exc:  # report, never return into pytest
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_permission_denied(daemons: DaemonFactory) -> None:
    d = daemons("private")

    def api() -> str:
        try:
            Client(d.socket).hello()
        except SocketPermission as exc:
            return json.dumps(exc.as_dict())
        return "no error"

    err = json.loads(_as_nobody(api))
    assert err["name"] == "EACCES" and err["code"] == -13 and "root" in err["message"]

    def command_line() -> str:
        buf = io.StringIO()
        os.environ["LOCKENGINE_RUN_DIR"] = str(d.run_dir)
        with redirect_stdout(buf):
            rc = main(["client", "status", "--json"])
        return json.dumps({"rc": rc, "out": buf.getvalue()})

    res = json.loads(_as_nobody(command_line))
    assert res["rc"] == 1 and json.loads(res["out"])["error"]["name"] == "EACCES"
    assert d.call("hello")["host_name"] == "private"  # the daemon did not mind


@contextmanager
def fake_daemon(path: Path, answer: Callable[[socket.socket, bytes], None]) -> Iterator[None]:
    """A socket that speaks wrongly: ``answer(conn, first_line)`` decides what comes back."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                answer(conn, data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        srv.close()


@pytest.mark.parametrize(
    "reply, error, words",
    [
        (b"hello there\n", BadReply, "not JSON"),
        (b'{"v": 1, "result": {}}\n', BadReply, '"ok"'),
        (b'{"v": 7, "ok": true, "result": {}}\n', BadReply, "protocol version 7"),
        (b'{"v": 1, "ok": false, "error": "nope"}\n', BadReply, "without name and code"),
        (b'{"v": 1, "ok": true, "result": [1]}\n', BadReply, "not an object"),
        (b"", DaemonGone, "closed the connection"),
        (b'{"v": 1, "ok": false, "error": {"name": "ACQUIRE_IDLIVE", "code": -243, "message": "m"}}\n',
         RemoteError, "m"),
    ],
)
def test_malformed_replies(tmp_path: Path, reply: bytes, error: type[DaemonError], words: str) -> None:
    path = tmp_path / "lockengined.sock"
    with fake_daemon(path, lambda conn, _line: conn.sendall(reply)):
        with pytest.raises(error) as exc:
            Client(str(path), timeout=10).status()
        assert words in exc.value.message
        if error is BadReply:
            assert exc.value.name == "EPROTO"
            err = cli_error(tmp_path, "status")
            assert err["name"] == "EPROTO" and "malformed reply" in err["message"]


def test_no_reply_times_out(tmp_path: Path) -> None:
    path = tmp_path / "lockengined.sock"
    with fake_daemon(path, lambda conn, _line: time.sleep(2)), pytest.raises(DaemonTimeout) as exc:
        Client(str(path), timeout=0.5).hello()
    assert exc.value.name == "ETIMEDOUT"


# --------------------------------------------------------------------------- the daemon survives


class Raw:
    """A raw connection to the daemon for sending arbitrary bytes."""

    def __init__(self, d: TestDaemon) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(d.socket)
        self.sock.settimeout(20)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any] | None:
        """The next reply line, or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        doc: dict[str, Any] = json.loads(line)
        assert doc["v"] == 1 and isinstance(doc["ok"], bool)
        if not doc["ok"]:
            assert isinstance(doc["error"]["name"], str) and isinstance(doc["error"]["code"], int)
        return doc

    def close(self) -> None:
        self.sock.close()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 7, 1 << 20])
    if kind == 3:
        return rng.random() * 1e6
    if kind == 4:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 40)))
    if kind == 5:
        return rng.choice(["LS", "LS:R:/dev/null:0", "/dev/null", "", ":::", "LS:1:/nonexistent:0", "x" * 2000])
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    keys = ["lockspace", "resource", "path", "offset", "host_id", "pid", "resources", "lver", "shared", "wait",
            "force_mode", "name", "killpath", "argv", "event", "data", "detail", "hosts", "all", "nowait"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))}


def test_fuzzed_requests_never_hurt_the_daemon(daemons: DaemonFactory) -> None:
    d = daemons("fuzzed")
    rng = random.Random(20240601)
    commands = ["hello", "register", "killpath", "add_lockspace", "inq_lockspace", "rem_lockspace", "acquire",
                "release", "inquire", "request", "examine", "status", "gets", "host_status", "renewal", "log_dump",
                "set_event", "get_events", "nonsense", ""]

    # Random bytes: every line gets exactly one error reply, on the same connection.
    raw = Raw(d)
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 400))).replace(b"\n", b"")
        if not junk.strip():
            continue
        raw.send(junk + b"\n")
        doc = raw.reply()
        assert doc is not None and doc["ok"] is False and doc["error"]["name"] == "EINVAL"
    raw.close()

    # Structured nonsense: well-formed JSON with random commands and arguments (never shutdown).
    raw = Raw(d)
    for i in range(600):
        msg = {"v": 1, "id": i, "cmd": rng.choice(commands), "args": _random_value(rng)}
        if rng.random() < 0.1:
            msg = _random_value(rng)
        raw.send(json.dumps(msg).encode() + b"\n")
        doc = raw.reply()
        assert doc is not None
        if isinstance(msg, dict) and msg.get("id") == i:
            assert doc["id"] == i
    raw.close()

    # Odd framings: nesting, bad UTF-8, other versions, blank lines, a non-object.
    raw = Raw(d)
    for line, name in ((b"[" * 20000 + b"]" * 20000, "EINVAL"), (b'{"cmd": "hello\xff"}', "EINVAL"),
                       (b'{"v": 2, "cmd": "hello"}', "EINVAL"), (b'"hello"', "EINVAL"),
                       (b'{"cmd": "hello", "args": []}', "EINVAL")):
        raw.send(b"\n\n  \n" + line + b"\n")
        doc = raw.reply()
        assert doc is not None and doc["error"]["name"] == name, doc
    # Pipelined requests come back in order.
    raw.send(b"".join(json.dumps({"cmd": "hello", "id": i}).encode() + b"\n" for i in range(2000)))
    assert [raw.reply()["id"] for _ in range(2000)] == list(range(2000))  # type: ignore[index]
    raw.close()

    # Oversized: an error reply, then the daemon closes that connection.
    for tail in (b"", b"\n"):
        raw = Raw(d)
        raw.send(b'{"cmd": "hello", "args": {"x": "' + b"a" * (MAX_REQUEST + 10) + b'"}}' + tail)
        doc = raw.reply()
        assert doc is not None and doc["error"]["name"] == "EINVAL" and "longer than" in doc["error"]["message"]
        assert raw.reply() is None
        raw.close()

    # Connections dropped mid-request, or right after sending.
    for i in range(50):
        raw = Raw(d)
        raw.send(b'{"cmd": "status"' if i % 2 else b'{"cmd": "status"}\n')
        raw.close()

    # Still serving, with nothing registered or held, and no bug in the log.
    st = Client(d.socket).status()
    assert st["daemon"]["host_name"] == "fuzzed" and st["lockspaces"] == [] and st["resources"] == []
    assert d.proc.poll() is None
    log = d.log_text()
    assert "Traceback" not in log and "failed" not in log.split("ready: serving", 1)[1].replace(
        "join failed", ""), log[-3000:]
