"""A real ``sanlock daemon -w 0`` with its own run dir and host name, stopped by the pid we recorded.

Several daemons share one machine through SANLOCK_RUN_DIR; SANLOCK_PRIVILEGED=0 skips the rlimit and
scheduler set-up that a sandbox refuses. ``-w 0`` means no watchdog (Debian's default).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SANLOCK = "/usr/sbin/sanlock"
DEBIAN_PYTHON = "/usr/bin/python3"  # python3-sanlock is installed for Debian's interpreter only


class SanlockMissing(RuntimeError):
    pass


def sanlock_binary() -> str:
    found = shutil.which("sanlock") or (SANLOCK if os.path.exists(SANLOCK) else None)
    if not found:
        raise SanlockMissing("sanlock is not installed: apt-get install sanlock python3-sanlock")
    return found


class SanlockDaemon:
    def __init__(self, run_dir: Path, host_name: str) -> None:
        self.run_dir = Path(run_dir)
        self.host_name = host_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = sanlock_binary()

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SANLOCK_RUN_DIR"] = str(self.run_dir)
        env["SANLOCK_PRIVILEGED"] = "0"
        return env

    def start(self, timeout: float = 10.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "daemon", "-D", "-w", "0", "-l", "0", "-e", self.host_name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sanlock daemon exited: {self.log_tail()}")
            if self.client("status", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"sanlock daemon did not answer in {timeout} s: {self.log_tail()}")

    def client(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "client", *args], env=self.env, capture_output=True, text=True,
            check=check, timeout=timeout,
        )

    def python(self, script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a script under Debian's python3 (which has the sanlock binding) against this daemon."""
        return subprocess.run(
            [DEBIAN_PYTHON, script, *args], env=self.env, capture_output=True, text=True,
            check=True, timeout=timeout,
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.run_dir / "daemon.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Shut down: a forced client shutdown, then SIGKILL of the pid we started, if needed."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.client("shutdown", "-f", "1", check=False, timeout=10)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> SanlockDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
