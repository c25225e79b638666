"""kill -9 of lockengined holding a lease, then an immediate restart, on real test hosts (issue 9).

Two nspawn test hosts (testhosts/) share one disk; node1's lockengined drives the harness's virtual
watchdog (a FIFO at /dev/watchdog0: silence past its timeout resets the host). A client on node1 holds
a lease; lockengined is killed with SIGKILL and started again at once. The new daemon finds the armed
marker its predecessor left in /run/lockengine and refuses: it does not pet, does not rejoin, and says
why in ``status``. The watchdog resets node1, and node2 gets the lease only after that reset.

The second test removes the marker before the restart (what the daemon did before the fix): the new
daemon pets and rejoins (after the busy wait on its own slot, then generation + 1), and node2 takes the
lease while node1's holder still runs — the hole the marker closes, shown on real processes.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testhosts import Cluster, HarnessError

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SRC = "/opt/lockengine-src"
IO = 1
FIRE = 6  # the virtual watchdog's timeout and the daemons' watchdog_fire_timeout
HOST_DEAD = 8 * IO + FIRE
DISK = "/dev/lockdisk0"
LE = f"env PYTHONPATH={SRC} python3 -m lockengine"
DAEMON = (f"env PYTHONPATH={SRC} python3 -m lockengine.daemon.main --host-name {{name}} --watchdog /dev/watchdog0 "
          f"--io-timeout {IO} --fire-timeout {FIRE}")


def must(c: Cluster, host: str, cmd: str, timeout: float = 60) -> str:
    rc, out, err = c.run(host, cmd, timeout=timeout)
    assert rc == 0, f"{host}: {cmd!r} failed (rc {rc}): {err or out}"
    return out


def start_daemon(c: Cluster, host: str) -> int:
    out = must(c, host, f"nohup {DAEMON.format(name=host)} >>/var/log/lockengined.log 2>&1 & echo $!")
    return int(out.strip())


def status(c: Cluster, host: str) -> dict[str, Any] | None:
    rc, out, _ = c.run(host, f"{LE} client status --json", timeout=30)
    if rc != 0:
        return None
    doc: dict[str, Any] = json.loads(out)
    return doc


def wait_for(what: str, fn: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "state")
    try:
        c.up(2, disks=1, sector_size=512, watchdog_timeout=float(FIRE), bind_ro=[f"{REPO}:{SRC}"])
    except HarnessError as exc:
        pytest.fail(f"the test hosts did not come up: {exc}")
    try:
        yield c
    finally:
        for h in ("node1", "node2"):
            try:
                rc, out, _ = c.run(h, "tail -n 40 /var/log/lockengined.log", timeout=10)
            except HarnessError:  # reset by its watchdog (the overlay, and its log, went with it)
                continue
            if rc == 0:
                print(f"===== {h} lockengined.log =====\n{out}")
        c.down()


def holding_cluster(c: Cluster) -> tuple[int, str]:
    """Both hosts joined, a client on node1 holding R1; returns (node1 daemon pid, R1's spec)."""
    must(c, "node1", f"{LE} direct init -s LS:0:{DISK}:0 -o {IO}")
    must(c, "node1", f"{LE} direct init -r LS:R1:{DISK}:1M")
    pids = {}
    for i, h in enumerate(("node1", "node2"), start=1):
        pids[h] = start_daemon(c, h)
        wait_for(f"{h} daemon", lambda h=h: status(c, h), 30)
        must(c, h, f"{LE} client add_lockspace -s LS:{i}:{DISK}:0")
    res = f"LS:R1:{DISK}:1M"
    must(c, "node1", f"nohup {LE} client command -r {res} -- sleep 3600 >/var/log/holder.log 2>&1 &")

    def held() -> bool:
        st = status(c, "node1")
        return bool(st and any(r["resource"] == "R1" and r["state"] == "HELD" for r in st["resources"]))

    wait_for("node1's client to hold R1", held, 60)
    return pids["node1"], res


def node2_takes(c: Cluster, res: str, timeout: float) -> float | None:
    """node2 tries to acquire until it gets the lease (a renewing owner refuses at once, a silent one
    is waited for); the wall time at which it held it, or None if it did not within ``timeout``."""
    cmd = f"{LE} client command -r {shlex.quote(res)} -- python3 -c 'import time; print(time.time())'"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc, out, _ = c.run("node2", f"timeout {HOST_DEAD * 3} {cmd}", timeout=HOST_DEAD * 3 + 30)
        if rc == 0 and out.strip():
            return float(out.strip().splitlines()[-1])
        time.sleep(0.5)
    return None


def test_kill9_restart_refuses_and_the_watchdog_fences_before_another_host_takes_the_lease(cluster: Cluster) -> None:
    c = cluster
    daemon_pid, res = holding_cluster(c)
    resets_before = len(c.watchdog_resets("node1"))
    must(c, "node1", f"kill -9 {daemon_pid}")
    start_daemon(c, "node1")  # at once, as systemd's Restart= would
    st = wait_for("the new daemon's status", lambda: status(c, "node1"), 30)
    refusing = st["daemon"]["refusing"]
    assert refusing and "ended uncleanly" in refusing and "reboots" in refusing, st["daemon"]
    assert st["lockspaces"] == [] and st["daemon"]["watchdog"]["pets"] == 0
    rc, _, err = c.run("node1", f"{LE} client add_lockspace -s LS:1:{DISK}:0", timeout=30)
    assert rc != 0 and "WD_ERROR" in err + _, err

    took = node2_takes(c, res, timeout=HOST_DEAD * 4 + 30)
    resets = c.watchdog_resets("node1")
    assert len(resets) > resets_before, "node1 was never reset by its watchdog"
    reset_at = resets[resets_before]["time"]
    assert took is not None, "node2 never got the lease after node1 was reset"
    assert took > reset_at, f"node2 held the lease at {took:.3f}, before node1's reset at {reset_at:.3f}"


def test_without_the_marker_another_host_takes_the_lease_while_the_holder_runs(cluster: Cluster) -> None:
    c = cluster
    daemon_pid, res = holding_cluster(c)
    holder = must(c, "node1", "pgrep -f 'sleep 3600'").split()[0]
    must(c, "node1", f"kill -9 {daemon_pid}; rm -f /run/lockengine/armed")  # the daemon before the fix
    start_daemon(c, "node1")
    wait_for("the new daemon", lambda: status(c, "node1"), 30)
    must(c, "node1", f"{LE} client add_lockspace -s LS:1:{DISK}:0")  # busy wait on our own slot, then generation + 1
    took = node2_takes(c, res, timeout=HOST_DEAD * 2)
    assert took is not None, "node2 did not take the lease: the hole this test shows is closed another way"
    rc, _, _ = c.run("node1", f"kill -0 {holder}", timeout=30)
    assert rc == 0, "node1's holder is gone: the counterexample needs it still running"
    assert c.watchdog_resets("node1") == []
