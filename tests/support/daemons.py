"""Real lockengined processes for the system and collection tests: test daemons, lease-holder processes,
disk set-up, and the fixtures over them.

``daemons(name, **config)`` starts ``python -m lockengine.daemon.main`` with its own
LOCKENGINE_RUN_DIR and config file and waits for READY=1 on a NOTIFY_SOCKET the fixture owns (so
every test also exercises sd_notify). Daemons are stopped at the end (SIGTERM, then SIGKILL by pid)
and their logs are printed when a test fails (with the report hook of tests/system/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockengine.client import Client

REPO = Path(__file__).resolve().parents[2]
IO = 1  # io_timeout for every test daemon: renewals every 2 s, lease lost after 8 s
FIRE = 10  # watchdog fire timeout: test interval 2 s, kill_grace at most 6 s
GRACE = 3


def env_for(run_dir: Path | str) -> dict[str, str]:
    env = dict(os.environ)
    env["LOCKENGINE_RUN_DIR"] = str(run_dir)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTIFY_SOCKET", None)
    return env


class TestDaemon:
    __test__ = False  # not a test class

    def __init__(self, name: str, run_dir: Path, proc: subprocess.Popen[bytes], log_path: Path,
                 config: dict[str, Any]) -> None:
        self.name = name
        self.run_dir = run_dir
        self.proc = proc
        self.log_path = log_path
        self.config = config
        self.env = env_for(run_dir)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def socket(self) -> str:
        return str(self.run_dir / "lockengined.sock")

    def client(self) -> Client:
        return Client(self.socket, timeout=60)

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        with self.client() as c:
            return c.call(cmd, args)

    def cli(self, *args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``lockengine client VERB ...`` against this daemon, as a separate process."""
        proc = subprocess.run([sys.executable, "-m", "lockengine", "client", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"lockengine client {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_json(self, *args: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
        proc = self.cli(*args, "--json", timeout=timeout)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"not one JSON document: {proc.stdout!r} (stderr {proc.stderr!r})") from None
        return proc.returncode, doc

    def join(self, lockspace: str, host_id: int, path: str, offset: int = 0, wait: bool = True) -> dict[str, Any]:
        with self.client() as c:
            return c.add_lockspace(lockspace, host_id, path, offset, wait=wait)

    def wait_joined(self, lockspace: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.call("inq_lockspace", lockspace=lockspace)
            if st["state"] == "JOINED":
                return st
            assert st["state"] == "ADD", st
            assert time.monotonic() < deadline, f"{self.name}: {lockspace} not joined: {st}"
            time.sleep(0.2)

    def holder(self, *resources: str, ignore_term: bool = False, killpath: list[str] | None = None,
               exit_after: float | None = None) -> Holder:
        args = [sys.executable, "-m", "tests.system.holder", *resources]
        if ignore_term:
            args.append("--ignore-term")
        if killpath:
            args += ["--killpath", json.dumps(killpath)]
        if exit_after is not None:
            args += ["--exit-after", str(exit_after)]
        proc = subprocess.Popen(args, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        try:
            first = json.loads(line)
        except ValueError:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"holder printed {line!r}; stderr {err.decode(errors='replace')}") from None
        return Holder(proc, first)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Holder:
    """A lease holder process (tests/system/holder.py)."""

    def __init__(self, proc: subprocess.Popen[bytes], first: dict[str, Any]) -> None:
        self.proc = proc
        self.first = first
        self.exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def acquired(self) -> dict[str, Any] | None:
        return self.first.get("acquired")

    @property
    def error(self) -> dict[str, Any] | None:
        return self.first.get("error")

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.proc.stderr:
            self.proc.stderr.close()


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"lockengined exited with {proc.returncode}:\n{log_path.read_text()}")
        sock.settimeout(0.2)
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in msg.split("\n"):
            return
    raise AssertionError(f"lockengined sent no READY=1 within {timeout} s:\n{log_path.read_text()}")


DaemonFactory = Callable[..., TestDaemon]


def init_disk(path: str, lockspace: str = "LS", resources: tuple[str, ...] = ("R1", "R2", "R3")) -> None:
    """``lockengine direct init`` of a lockspace at 0 and resources at 1M, 2M, ..."""
    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "lockengine", "direct", "init", *args], cwd=REPO, env=env_for("/"),
                       check=True, capture_output=True)

    run("-s", f"{lockspace}:0:{path}:0", "-o", str(IO))
    for i, res in enumerate(resources, start=1):
        run("-r", f"{lockspace}:{res}:{path}:{i}M")


def read_leader(path: str, lockspace: str, resource: str, offset: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "lockengine", "direct", "read_leader", "-r", f"{lockspace}:{resource}:{path}:{offset}",
         "--json"], cwd=REPO, env=env_for("/"), capture_output=True, text=True, check=True)
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


# ---------------------------------------------------------------- fixtures (import them into a conftest or test module)
@pytest.fixture
def daemons(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonFactory]:
    started: list[TestDaemon] = []

    def start(name: str, *, watchdog: str = "none", extra_args: list[str] | None = None,
              **config: Any) -> TestDaemon:
        run_dir = tmp_path / name
        run_dir.mkdir()
        cfg: dict[str, Any] = {"host_name": name, "io_timeout": IO, "watchdog_fire_timeout": FIRE,
                               "kill_grace": GRACE, "log_level": "debug"}
        cfg.update(config)
        conf = run_dir / "lockengine.conf"
        conf.write_text(json.dumps(cfg))
        notify_path = run_dir / "notify.sock"
        nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        nsock.bind(str(notify_path))
        env = env_for(run_dir)
        env["NOTIFY_SOCKET"] = str(notify_path)
        log_path = run_dir / "daemon.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lockengine.daemon.main", "--config", str(conf), "--watchdog", watchdog,
                 *(extra_args or [])],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        d = TestDaemon(name, run_dir, proc, log_path, cfg)
        started.append(d)
        try:
            wait_ready(nsock, proc, log_path)
        finally:
            nsock.close()
        return d

    try:
        yield start
    finally:
        for d in started:
            d.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for d in started:
                sys.stderr.write(f"\n===== log of {d.name} =====\n{d.log_text()[-20000:]}\n")


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Holders a test started; killed at the end whatever happened."""
    made: list[Holder] = []
    yield made
    for h in made:
        h.stop()


