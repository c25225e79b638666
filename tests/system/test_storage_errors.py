"""A failed read during acquire, on a real loop device, through a real daemon and the real CLI.

A resource lease placed past the end of its device is read by the lease code like any other: the kernel
returns no bytes, DirectStorage reports EIO. The daemon answers LEADER_READ (-220) keeping errno 5 —
not the "a bug" branch with a traceback in its log — and keeps serving; ``lockengine direct`` says the
same for the same record, from the same mapping, with exit code 1. A lockspace placed there fails its
join with LEADER_READ too, and the daemon's memory of that failure has the same shape.
"""

from __future__ import annotations

import json
import subprocess
import sys

from lockengine.client import RemoteError
from tests.support.daemons import REPO, DaemonFactory, env_for, init_disk

SIZE = 4 << 20
BEYOND = 8 << 20  # a 1 MiB-aligned offset past the end of the device


def test_eio_during_acquire_is_leader_read_not_a_bug(daemons: DaemonFactory, loop_device: object) -> None:
    dev = loop_device(size=SIZE)  # type: ignore[operator]
    init_disk(dev.path, resources=("R1",))
    h = daemons("host1")
    h.join("LS", 1, dev.path)
    resource = f"LS:RX:{dev.path}:{BEYOND}"

    # `client command` registers, acquires, then would exec the command: it must not run.
    proc = h.cli("command", "--json", "-r", resource, "--", "/bin/echo", "RAN")
    assert proc.returncode == 1, proc
    assert "RAN" not in proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert {k: doc["error"][k] for k in ("name", "code", "errno")} == {"name": "LEADER_READ", "code": -220,
                                                                         "errno": 5}
    assert f"at {BEYOND} on {dev.path}" in doc["error"]["message"]

    with h.client() as c:
        c.register()
        try:
            c.acquire([resource])
        except RemoteError as exc:
            assert (exc.name, exc.code, exc.errno) == ("LEADER_READ", -220, 5)
        else:
            raise AssertionError("acquire past the end of the device succeeded")
        # The daemon keeps serving, and the lease on the device still works for this client.
        assert c.acquire([f"LS:R1:{dev.path}:1M"])["lver"] >= 1

    # A lockspace there: the join's read fails the same way, and the daemon remembers it in that shape.
    with h.client() as c:
        try:
            c.add_lockspace("LX", 1, dev.path, BEYOND)
        except RemoteError as exc:
            assert (exc.name, exc.code, exc.errno) == ("LEADER_READ", -220, 5)
        else:
            raise AssertionError("join past the end of the device succeeded")
        try:
            c.call("inq_lockspace", {"lockspace": "LX"})
        except RemoteError as exc:
            assert exc.name == "ENOENT" and "the last add failed: LEADER_READ" in exc.message, exc.message
        else:
            raise AssertionError("a failed join left a lockspace")

    log = h.log_text()
    assert "command acquire failed" not in log and "Traceback" not in log, log[-4000:]

    proc = subprocess.run([sys.executable, "-m", "lockengine", "direct", "read_leader", "-r", resource, "--json"],
                          cwd=REPO, env=env_for("/"), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc
    direct = json.loads(proc.stdout)["error"]
    assert (direct["name"], direct["code"], direct["errno"]) == ("LEADER_READ", -220, 5)
    assert "Traceback" not in proc.stderr
