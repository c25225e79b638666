"""Helpers of tools/demo.py: its console, subprocesses, and Ansible with a private collections path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

DEMO_DIR = Path(__file__).resolve().parent
REPO = DEMO_DIR.parents[1]
VENV_BIN = Path(sys.executable).parent  # the venv's bin: ansible-playbook lives beside this python
STEPS = 6
ADHOC_RESULT = re.compile(r"^(\S+) \| (?:SUCCESS|CHANGED|FAILED!|UNREACHABLE!) => ", re.MULTILINE)

ROLE_PURPOSE = {
    "watchdog": "choose and check the watchdog device (here the harness's virtual one)",
    "engine": "install the engine from the collection's own copy, write lockengine.conf, start lockengined",
    "lockspace": "initialise lockspace demo and resource vmdisk once, assign host ids, join on every host",
}


class DemoError(Exception):
    """A step did not do what the demo shows; the message says what was seen instead."""


class Console:
    """Human progress, every line stamped with the wall-clock time of the moment it describes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def say(self, message: str, at: float | None = None) -> None:
        # `at` is a CLOCK_MONOTONIC reading; the test hosts share the controller's monotonic clock.
        wall = time.time() - (time.monotonic() - (time.monotonic() if at is None else at))
        stamp = time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 10) % 10}"
        for i, line in enumerate(message.splitlines() or [""]):
            print(f"{stamp if i == 0 else ' ' * len(stamp)}  {line}", file=self.stream, flush=True)

    def step(self, n: int, title: str, why: str = "") -> None:
        print(f"\n== {n}/{STEPS} {title}", file=self.stream, flush=True)
        if why:
            print(f"   {why}", file=self.stream, flush=True)


def run(argv: Sequence[str | Path], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, proc.args))}\nrc={proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


class Ansible:
    """The installed collection, a private ANSIBLE_HOME and tools/demo/ansible.cfg: nothing in ~/.ansible."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.inventory: Path | None = None
        self.env = dict(os.environ)
        self.env.update(
            ANSIBLE_CONFIG=str(DEMO_DIR / "ansible.cfg"), ANSIBLE_HOME=str(work / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(work / "ansible-home" / "tmp"),
            ANSIBLE_COLLECTIONS_PATH=str(work / "collections"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
            NO_COLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )

    def install_collection(self) -> Path:
        build = self.work / "build"
        proc = run([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", build, REPO], self.env)
        tarballs = sorted(build.glob("lockengine-cluster-*.tar.gz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            raise DemoError(f"building the collection failed:\n{explain(proc)}")
        proc = run([VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", "-p",
                    self.work / "collections", tarballs[0]], self.env)
        if proc.returncode != 0:
            raise DemoError(f"installing the collection failed:\n{explain(proc)}")
        return tarballs[0]

    def playbook(self, console: Console, extra_vars: dict[str, Any], log: Path) -> dict[str, str]:
        """Run site.yml, telling when each role starts; the full output goes to `log`. Returns the recap."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(DEMO_DIR / "site.yml"),
                "-e", json.dumps(extra_vars)]
        roles_seen: set[str] = set()
        recap: dict[str, str] = {}
        with open(log, "w") as logf, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=self.env, cwd=REPO) as proc:
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    logf.write(line)
                    if line.startswith("TASK [") and " : " in line:
                        role = line[len("TASK ["):].split(" : ")[0]
                        if role not in roles_seen:
                            roles_seen.add(role)
                            console.say(f"  role {role}: {ROLE_PURPOSE.get(role.rsplit('.', 1)[-1], '')}")
                    elif ": ok=" in line and not line.startswith(" "):
                        host, counts = line.split(":", 1)
                        recap[host.strip()] = " ".join(counts.split())
                proc.wait(timeout=900)
            except BaseException:
                proc.kill()  # our own child, by its pid
                raise
        if proc.returncode != 0:
            failed = [ln.rstrip() for ln in log.read_text().splitlines() if ln.startswith(("fatal:", "failed:"))]
            raise DemoError(f"ansible-playbook failed (rc {proc.returncode}); full output in {log}\n"
                            + "\n".join(failed[-5:]))
        return recap

    def adhoc(self, pattern: str, module: str, args: str) -> dict[str, dict[str, Any]]:
        """`ansible PATTERN -m MODULE -a ARGS`; every host's result, read from the default callback's
        `host | STATUS => {json}` blocks (its -o and -t alternatives are deprecated in ansible-core 2.21)."""
        proc = run([VENV_BIN / "ansible", pattern, "-i", str(self.inventory), "-m", module, "-a", args],
                   dict(self.env, ANSIBLE_CALLBACK_RESULT_FORMAT="json"), timeout=180)
        results: dict[str, dict[str, Any]] = {}
        decoder = json.JSONDecoder()
        for m in ADHOC_RESULT.finditer(proc.stdout):
            try:
                results[m.group(1)] = decoder.raw_decode(proc.stdout, m.end())[0]
            except ValueError:
                results[m.group(1)] = {"failed": True, "msg": "unreadable result"}
        bad = {h: r.get("msg", r) for h, r in results.items() if r.get("failed") or r.get("unreachable")}
        if proc.returncode != 0 or bad or not results:
            raise DemoError(f"ansible {module} failed: {bad or ''}\n{explain(proc)}")
        return dict(sorted(results.items()))

