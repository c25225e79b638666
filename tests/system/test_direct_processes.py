"""Real processes, each a 'host' with its own loop device over one backing file, contending through
the engine's direct API: a host id held by a live, renewing process is refused to another process
(HOSTID_BUSY, after the full wait), and a resource held by one process-host is refused to another
(ACQUIRE_IDLIVE) until the holder dies and host_dead has passed.

This module is also the child program:

    python -m tests.system.test_direct_processes hold    PATH HOST_ID NAME [--resource]
    python -m tests.system.test_direct_processes join    PATH HOST_ID NAME [--resource]

``hold`` joins, optionally takes R1, prints one JSON line per step and renews every 2·io until its
stdin closes (then releases and exits) or it is killed. ``join`` joins, optionally tries R1 once,
prints the outcome as JSON and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockengine.delta import DeltaLease
from lockengine.errors import CODES, LockError
from lockengine.liveness import DeltaOwnerLiveness
from lockengine.ondisk import Geometry, decode_delta_sector, decode_leader
from lockengine.paxos import PaxosLease
from lockengine.storage import DirectStorage

ROOT = Path(__file__).resolve().parents[2]
LS, RES = "LS", "R1"
RES_OFFSET = 1 << 20
IO = 1
FIRE = 2  # every process of the test lockspace uses the same fire timeout
HOST_DEAD = 8 * IO + FIRE
G = Geometry(512, 1 << 20)


# --------------------------------------------------------------------------- the child program


def _say(**msg: Any) -> None:
    print(json.dumps(msg), flush=True)


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LockError):
        return exc.as_dict()
    return {"name": type(exc).__name__, "code": 0, "message": str(exc)}


def child(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hold", "join"])
    ap.add_argument("path")
    ap.add_argument("host_id", type=int)
    ap.add_argument("name")
    ap.add_argument("--resource", action="store_true")
    args = ap.parse_args(argv)
    st = DirectStorage(args.path)
    delta = DeltaLease(st, LS, args.host_id, 0, host_name=args.name, io_timeout=IO, fire_timeout=FIRE)
    try:
        delta.acquire()
    except (LockError, OSError) as exc:
        _say(step="join", ok=False, error=_error(exc))
        return 1
    _say(step="join", ok=True, pid=os.getpid(), generation=delta.generation)
    lease = None
    if args.resource:
        liveness = DeltaOwnerLiveness(st, 0, LS, delta.geometry, io_timeout=IO, fire_timeout=FIRE)
        lease = PaxosLease(
            st, LS, RES, RES_OFFSET, host_id=args.host_id, generation=delta.generation, io_timeout=IO,
            liveness=liveness,
        )
        try:
            ld = lease.acquire()
        except (LockError, OSError) as exc:
            _say(step="acquire", ok=False, error=_error(exc))
            lease = None
            if args.mode == "join":
                return 1
        else:
            _say(step="acquire", ok=True, lver=ld.lver, owner_id=ld.owner_id)
    if args.mode == "join":
        return 0
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(max(0.0, delta.last_success + 2 * IO - time.monotonic())):
        try:
            delta.renew()
        except (LockError, OSError) as exc:
            _say(step="renew", ok=False, error=_error(exc))
            return 1
    if lease is not None:
        lease.release()
    delta.release()
    _say(step="exit", ok=True)
    return 0


# --------------------------------------------------------------------------- the tests


class Proc:
    """A child host process; its JSON lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tests.system.test_direct_processes", *args],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(json.loads(line))

    def next(self, step: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                err = self.p.stderr.read() if self.p.poll() is not None and self.p.stderr else ""
                raise AssertionError(f"no {step!r} line from pid {self.p.pid} in {timeout} s; stderr: {err}") from None
            if msg.get("step") == step:
                return msg

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for pr in started:  # only the processes this test started, by their pid
        pr.kill()


@pytest.fixture
def paths(disk_dir: Path, loop_device: Any) -> list[str]:
    """One backing file with a lockspace and R1, and one loop device over it per host."""
    from tests.support.testdisk import make_disk  # the same layout `direct init` writes

    backing = disk_dir / f"procs-{os.getpid()}-{time.monotonic_ns()}.img"
    make_disk(backing, G)
    return [loop_device(backing=backing).path for _ in range(2)]


def start(procs: list[Proc], *args: str) -> Proc:
    pr = Proc(*args)
    procs.append(pr)
    return pr


def read_slot(path: str, host_id: int) -> Any:
    with DirectStorage(path, readonly=True) as st:
        return decode_delta_sector(st.read(G.host_offset(host_id), 512, 5), 0).leader


def read_leader(path: str) -> Any:
    with DirectStorage(path, readonly=True) as st:
        return decode_leader(st.read(RES_OFFSET, 512, 5), 0)


def test_host_id_renewed_by_a_live_process_is_hostid_busy_for_another(paths: list[str], procs: list[Proc]) -> None:
    a_path, b_path = paths
    alpha = start(procs, "hold", a_path, "1", "alpha")
    assert alpha.next("join", 30)["ok"]
    t0 = time.monotonic()
    beta = start(procs, "join", b_path, "1", "beta")
    msg = beta.next("join", 60)
    waited = time.monotonic() - t0
    assert not msg["ok"]
    assert (msg["error"]["name"], msg["error"]["code"]) == ("HOSTID_BUSY", CODES["HOSTID_BUSY"]) == ("HOSTID_BUSY", -262)
    assert waited >= HOST_DEAD  # it watched the slot for the whole host_dead wait before deciding
    assert beta.p.wait(10) == 1
    # alpha never noticed: its slot still names it and it keeps renewing
    first = read_slot(b_path, 1)
    assert (first.resource_name, first.owner_generation) == ("alpha", 1)
    time.sleep(2 * IO + 1)
    assert read_slot(b_path, 1).timestamp != first.timestamp
    assert alpha.p.poll() is None
    assert alpha.p.stdin is not None
    alpha.p.stdin.close()  # clean exit: releases its host id
    assert alpha.next("exit", 10)["ok"]
    assert read_slot(a_path, 1).timestamp == 0


def test_resource_of_a_live_process_host_is_acquire_idlive_for_another(paths: list[str], procs: list[Proc]) -> None:
    a_path, b_path = paths
    holder = start(procs, "hold", a_path, "1", "alpha", "--resource")
    got = holder.next("acquire", 30)
    assert got["ok"] and got["owner_id"] == 1
    contender = start(procs, "join", b_path, "2", "beta", "--resource")
    assert contender.next("join", 30)["ok"]
    refused = contender.next("acquire", 30)
    assert not refused["ok"]
    assert (refused["error"]["name"], refused["error"]["code"]) == ("ACQUIRE_IDLIVE", -243)
    ld = read_leader(b_path)
    assert (ld.owner_id, ld.lver) == (1, got["lver"]) and ld.timestamp != 0
    # The holder host dies without releasing; after host_dead the other host may take the lease.
    holder.kill()
    taker = start(procs, "join", b_path, "2", "beta", "--resource")
    taken = taker.next("acquire", 60)
    assert taken["ok"] and taken["owner_id"] == 2 and taken["lver"] == got["lver"] + 1
    ld = read_leader(a_path)
    assert (ld.owner_id, ld.lver) == (2, got["lver"] + 1)


def lockengine(*argv: str) -> tuple[int, dict[str, Any]]:
    """`python -m lockengine ARGV --json` as its own process, as an operator runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "lockengine", *argv, "--json"], cwd="/", env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


def resource_area(path: str) -> bytes:
    with DirectStorage(path, readonly=True) as st:
        return st.read(RES_OFFSET, G.align_size, 5)


def test_direct_release_of_a_live_holders_lease_writes_nothing(
    paths: list[str], procs: list[Proc], tmp_path: Path
) -> None:
    """Issue 8 item 2: host 1 renews and its holder runs; `lockengine direct release -i 1 -g GEN` from
    another host zeroed the leader and host 2 took the lease at once. Now it is refused (EBUSY) and the
    lease area is unchanged to the byte; once host 1 is dead it is released on its behalf and recorded."""
    a_path, b_path = paths
    holder = start(procs, "hold", a_path, "1", "alpha", "--resource")
    got = holder.next("acquire", 30)
    assert got["ok"] and got["owner_id"] == 1
    gen = str(read_leader(b_path).owner_generation)
    log = tmp_path / "force-release.log"
    config = tmp_path / "lockengine.conf"
    config.write_text(json.dumps({"watchdog_fire_timeout": 5}))  # host_dead = 8·1 + 5 s for this judge
    release = ("direct", "release", "-r", f"{LS}:{RES}:{b_path}:{RES_OFFSET}", "-i", "1", "-g", gen,
               "-s", f"{LS}:0:{b_path}:0", "-o", str(IO), "--config", str(config), "--audit-log", str(log))
    before = resource_area(b_path)
    code, doc = lockengine(*release)
    assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "EBUSY", -16)
    assert resource_area(b_path) == before
    assert not log.exists() or log.read_text() == ""
    contender = start(procs, "join", b_path, "2", "beta", "--resource")
    refused = contender.next("acquire", 30)
    assert not refused["ok"] and refused["error"]["name"] == "ACQUIRE_IDLIVE"
    assert holder.p.poll() is None  # the holder never noticed
    # Host 1 dies without releasing: after host_dead the release is done on its behalf and recorded.
    holder.kill()
    code, doc = lockengine(*release)
    assert (code, doc["grounds"], doc["timestamp"], doc["lver"]) == (0, "dead", 0, got["lver"])
    (line,) = log.read_text().splitlines()
    assert " grounds=dead result=released " in line and f" owner_id=1 owner_generation={gen} " in line
    taker = start(procs, "join", b_path, "2", "beta", "--resource")
    taken = taker.next("acquire", 30)
    assert taken["ok"] and taken["lver"] == got["lver"] + 1


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
