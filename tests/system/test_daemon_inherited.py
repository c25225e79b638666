"""Leases stay held while a child that inherited the registration connection runs (issue 9).

sanlock releases a client's leases when its registration connection closes, not when the registered
pid exits: a child that inherited the connection may still use them. The registered process here
acquires, forks a child (which inherits the socket) and exits; the lease must stay held on disk and
another host must not get it until the child exits too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.support.daemons import REPO, DaemonFactory, read_leader

from .test_daemon_leases import two_hosts

FORKER = r"""
import json, os, sys, time
from lockengine.client import Client
c = Client()
c.register(name="parent")
c.acquire([sys.argv[1]])
pid = os.fork()
if pid == 0:  # the child keeps the inherited connection (and, for the application, the resource)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)  # not the test's pipe: the test reads the parent's output to its end
    os.dup2(null, 2)
    time.sleep(3600)
    os._exit(0)
print(json.dumps({"child": pid}), flush=True)
os._exit(0)
"""


def test_a_child_holding_the_inherited_connection_keeps_the_lease(daemons: DaemonFactory, loop_device: object) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    res1 = f"LS:R1:{p1}:1M"
    parent = subprocess.run([sys.executable, "-c", FORKER, res1], env=h1.env, cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)
    child = json.loads(parent.stdout)["child"]
    try:
        # The parent has exited; give the daemon time to see its pidfd fire.
        time.sleep(1.0)
        held = [r for r in h1.call("status")["resources"] if r["resource"] == "R1"]
        assert len(held) == 1 and held[0]["state"] == "HELD", held
        assert read_leader(p1, "LS", "R1", 1 << 20)["timestamp"] != 0
        refused = h2.cli("command", "-r", f"LS:R1:{p2}:1M", "--", "true")
        assert refused.returncode != 0, refused  # the owner renews: refused
        assert any("released when its connection closes" in line for line in h1.call("log_dump")["lines"])
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and read_leader(p1, "LS", "R1", 1 << 20)["timestamp"] != 0:
        time.sleep(0.05)
    assert read_leader(p1, "LS", "R1", 1 << 20)["timestamp"] == 0
    got = h2.cli("command", "-r", f"LS:R1:{p2}:1M", "--", "true")
    assert got.returncode == 0, got
