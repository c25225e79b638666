"""A seeded fuzz of the socket protocol mixed with slow readers and a connection flood at the fd limit.

While it runs, a well-formed client keeps asking ``hello`` on its own connection and must keep
getting answers; afterwards the daemon's peak RSS must be under RSS_BOUND_MB, no reply may be
ERROR (-201) or invalid JSON, and the log must hold no traceback. The figures measured (messages,
replies, the probe's worst latency, the peak RSS) are printed and kept as test properties.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lockengine.client import Client, RemoteError
from tests.support.daemons import DaemonFactory, TestDaemon, init_disk

SEED = 20261130
MESSAGES = 10_000
MAX_CONNECTIONS = 64
MAX_OUTPUT = 256 * 1024
# Per connection at most MAX_OUTPUT plus one reply unsent and 128 KiB of requests unread: 64
# connections cannot add more than ~40 MB to a daemon that starts at ~40 MB.
RSS_BOUND_MB = 120
PROBE_TIMEOUT = 20.0  # generous: the probe fails only if the daemon stops answering

# Not register: a fuzzed force request against a lease its own registration holds would SIGKILL this
# very process (the daemon doing its job). Not rem_lockspace or shutdown: the world must stay up.
COMMANDS = ["hello", "killpath", "add_lockspace", "inq_lockspace", "acquire", "release", "inquire", "request",
            "status", "gets", "host_status", "renewal", "set_event", "get_events", "examine", "nonsense", ""]
KEYS = ["lockspace", "resource", "path", "offset", "host_id", "pid", "resources", "lver", "shared", "wait",
        "force_mode", "name", "killpath", "argv", "event", "data", "detail", "hosts", "all", "nowait", "unused",
        "io_timeout", "generation"]


def strict_json(line: bytes) -> Any:
    """Parse as a strict JSON reader would: NaN, Infinity and lone surrogates are not JSON."""
    def no_constant(name: str) -> None:
        raise ValueError(f"{name} in a reply")

    text = line.decode("utf-8")  # raises on bytes that are not UTF-8
    doc = json.loads(text, parse_constant=no_constant)
    text.encode("utf-8")
    return doc


class Fuzzer:
    def __init__(self, rng: random.Random, disk: str) -> None:
        self.rng = rng
        self.disk = disk

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(11 if depth < 3 else 8)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 1, 2, 513, 1 << 20, 2**63, -(2**70), 10**30])
        if kind == 3:
            return rng.choice([0.5, 1e300, -0.0, 1048576.0])
        if kind == 4:
            return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 30)))
        if kind == 5:
            return rng.choice(["LS", f"LS:R1:{self.disk}:1048576", f"LS:R2:{self.disk}:1M:SH", f"LS:R1:{self.disk}:513",
                               self.disk, "/dev/null", "/etc/passwd", "/tmp", "", ":::", "x\ny", "\x1b[2J",
                               "LS:1:/nonexistent:0", "x" * 2000, "graceful", "force"])
        if kind == 6:
            return {"lockspace": "LS", "resource": rng.choice(["R1", "R2", "R3"]), "path": self.disk,
                    "offset": rng.choice([1 << 20, 2 << 20, 513, 0]), "shared": rng.random() < 0.3}
        if kind == 7:
            return rng.choice([[1], [], "7", {"a": 1}])  # the wrong type where a number belongs
        if kind in (8, 9):
            return [self.value(depth + 1) for _ in range(rng.randrange(0, 5))]
        return {rng.choice(KEYS): self.value(depth + 1) for _ in range(rng.randrange(0, 6))}

    def line(self, i: int) -> bytes:
        """One request line (never shutdown, never log_dump: those belong to other parts of the test)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:  # bytes
            return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" ") + b"\n"
        if roll < 0.16:  # numbers and strings JSON cannot carry
            bad = rng.choice(['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '"\\ud800"', '"a\\udfffb"'])
            field = rng.choice(["id", "args.host_id", "args.name", "args.offset", "args.lockspace"])
            if field == "id":
                return f'{{"v": 1, "id": {bad}, "cmd": "hello"}}\n'.encode()
            return f'{{"v": 1, "id": {i}, "cmd": "{rng.choice(COMMANDS)}", "args": {{"{field[5:]}": {bad}}}}}\n'.encode()
        msg: Any = {"v": 1, "id": i, "cmd": rng.choice(COMMANDS), "args": self.value()}
        if roll > 0.97:
            msg = self.value()
        return json.dumps(msg).encode() + b"\n"


class Raw:
    def __init__(self, path: str, timeout: float = 30) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(timeout)
        self.buf = b""

    def reply_line(self) -> bytes | None:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def close(self) -> None:
        self.sock.close()


class Probe(threading.Thread):
    """The well-formed client: ``hello`` on its own connection, again and again, timing each answer."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.client = Client(path, timeout=PROBE_TIMEOUT)
        self.client.hello()
        self.stop = threading.Event()
        self.answers = 0
        self.worst = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                t = time.monotonic()
                assert self.client.hello()["protocol"] == 1
                self.worst = max(self.worst, time.monotonic() - t)
                self.answers += 1
                self.stop.wait(0.02)
        except BaseException as exc:  # reported by the test
            self.error = exc


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def fuzz_daemon(daemons: DaemonFactory, loop_device: Any) -> Iterator[tuple[TestDaemon, str]]:
    disk = str(loop_device())
    init_disk(disk)
    d = daemons("fuzz", max_connections=MAX_CONNECTIONS, max_output_bytes=MAX_OUTPUT)
    d.join("LS", 1, disk)
    yield d, disk


def test_fuzz_slow_readers_and_fd_flood(fuzz_daemon: tuple[TestDaemon, str],
                                        record_property: Any) -> None:
    d, disk = fuzz_daemon
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng, disk)
    probe = Probe(d.socket)
    probe.start()
    try:
        # The fuzz: pipelined batches on a few connections; every reply strict JSON, never ERROR.
        sent = replies = 0
        names: dict[str, int] = {}
        conns = [Raw(d.socket) for _ in range(4)]
        i = 0
        while sent < MESSAGES:
            k = rng.randrange(len(conns))
            batch = [fuzzer.line(i + j) for j in range(rng.randrange(1, 60))]
            i += len(batch)
            conns[k].sock.sendall(b"".join(batch))
            sent += len(batch)
            for _ in batch:
                line = conns[k].reply_line()
                assert line is not None, "the daemon closed a fuzz connection"
                doc = strict_json(line)
                assert doc["v"] == 1 and isinstance(doc["ok"], bool), doc
                replies += 1
                if not doc["ok"]:
                    err = doc["error"]
                    assert err["name"] != "ERROR" and err["code"] != -201, (line, doc)
                    assert isinstance(err["message"], str)
                    names[err["name"]] = names.get(err["name"], 0) + 1
            if rng.random() < 0.02:  # now and then a fresh connection (drops registrations and leases)
                conns[k].close()
                conns[k] = Raw(d.socket)
        for c in conns:
            c.close()

        # Slow readers: pipeline requests and never read; each is dropped, not buffered without end.
        slow = [Raw(d.socket) for _ in range(20)]
        for n, s in enumerate(slow):
            ask = b'{"cmd": "log_dump"}\n' * 400 if n % 2 else b'{"cmd": "status", "args": {"detail": true}}\n' * 3000
            with contextlib.suppress(OSError):  # already dropped: the daemon stopped reading us
                s.sock.sendall(ask)
        deadline = time.monotonic() + PROBE_TIMEOUT
        while d.log_text().count("does not read its replies") < len(slow) and time.monotonic() < deadline:
            time.sleep(0.1)

        # A flood at the fd limit: the listener rests instead of spinning, answers keep coming.
        fds = len(os.listdir(f"/proc/{d.pid}/fd"))
        limit = fds + 24
        soft = _soft_nofile(d.pid)
        subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={limit}:"], check=True)  # soft only
        cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
        flood = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(100)]
        for s in flood:
            s.setblocking(False)
            with contextlib.suppress(OSError):  # EAGAIN once the backlog is full
                s.connect(d.socket)
        answers_before = probe.answers
        time.sleep(3)
        flood_cpu = cpu_seconds(d.pid) - cpu0
        flood_wall = time.monotonic() - t0
        assert probe.answers > answers_before, "the probe got no answer during the flood"
        for s in flood:
            s.close()
        subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={soft}:"], check=True)

        # After the flood: accepting again (the flood's backlog is accepted and seen closed first: until
        # then the cap may still answer EAGAIN); then the cap answers EAGAIN past max_connections.
        deadline = time.monotonic() + PROBE_TIMEOUT
        while True:
            try:
                assert Client(d.socket, timeout=PROBE_TIMEOUT).hello()["protocol"] == 1
                break
            except RemoteError as exc:
                assert exc.name == "EAGAIN" and time.monotonic() < deadline, exc
                time.sleep(0.1)
        capped = [Raw(d.socket) for _ in range(MAX_CONNECTIONS + 4)]
        refused = 0
        for c in capped[-8:]:
            c.sock.settimeout(1)
            with_line = c.reply_line() if _readable(c.sock) else None
            if with_line is not None and json.loads(with_line)["error"]["name"] == "EAGAIN":
                refused += 1
        for c in capped:
            c.close()
        assert refused >= 4, refused
        for s in slow:
            s.close()
    finally:
        probe.stop.set()
        probe.join(PROBE_TIMEOUT + 5)
    assert probe.error is None, probe.error
    assert Client(d.socket).status()["daemon"]["host_name"] == "fuzz"

    peak_mb = rss_kb(d.pid) / 1024
    log = d.log_text()
    dropped = log.count("does not read its replies")
    emfile = log.count("accept: Too many open files")
    figures = {"messages": sent, "replies": replies, "probe_answers": probe.answers,
               "probe_worst_latency_s": round(probe.worst, 3), "peak_rss_mb": round(peak_mb, 1),
               "slow_readers_dropped": dropped, "emfile_log_lines": emfile,
               "flood_cpu_s": round(flood_cpu, 2), "flood_wall_s": round(flood_wall, 2), "errors": names}
    for k, v in figures.items():
        record_property(k, v)
    print(f"\nfuzz figures: {json.dumps(figures)}")
    assert sent >= MESSAGES and replies == sent
    assert peak_mb < RSS_BOUND_MB, figures
    assert dropped == len(slow), figures  # each slow reader dropped, each with one line
    assert 1 <= emfile <= 2, figures  # rate-limited: not one line per loop
    # Not a speed assertion: a listener left readable at EMFILE spins (0.56 CPU-s in 3 s measured on a
    # busy 2-core machine); resting, the daemon used 0.02-0.04 CPU-s.
    assert flood_cpu < 0.1 * flood_wall, figures
    assert "Traceback" not in log, log[-5000:]


def _soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-files limit")


def _readable(sock: socket.socket) -> bool:
    import select

    return bool(select.select([sock], [], [], 2)[0])


def test_half_closed_connection_gets_its_replies(daemons: DaemonFactory) -> None:
    d = daemons("halfclosed")
    raw = Raw(d.socket)
    # Inline commands and ones answered from the worker pool (examine, request), in order.
    raw.sock.sendall(b'{"id": 1, "cmd": "hello"}\n{"id": 2, "cmd": "examine", "args": {"lockspace": "LS"}}\n'
                     b'{"id": 3, "cmd": "status"}\n'
                     b'{"id": 4, "cmd": "request", "args": {"resource": "LS:R1:/nonexistent:1048576"}}\n'
                     b'{"id": 5, "cmd": "gets"}')
    raw.sock.shutdown(socket.SHUT_WR)
    replies = []
    while (line := raw.reply_line()) is not None:
        doc = json.loads(line)
        replies.append((doc["id"], doc["ok"] or doc["error"]["name"]))
    # The last request had no newline: the EOF ends it.
    assert replies == [(1, True), (2, "ENOENT"), (3, True), (4, "EINVAL"), (5, True)], replies
    raw.close()
    assert Client(d.socket).hello()["protocol"] == 1
