"""`make demo` end to end: tools/demo.py --json builds and installs the collection, starts three test hosts
on its own test network, converges the roles, moves a lease from a crashed host to a live one, and
removes everything. The summary it prints is checked against the rules the demo claims to show.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, explain, run

NET_ENV = "LOCKENGINE_TESTHOSTS_NET"


def _states(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_moves_the_lease_only_after_the_holder_is_dead() -> None:
    missing = [t for t in ("systemd-nspawn", "losetup", "ip", "ssh") if shutil.which(t) is None]
    assert not missing, f"missing {missing}: run tools/install-system-packages.sh (as root)"
    env = dict(os.environ)
    env.setdefault(NET_ENV, "2")  # the demo's own default: tests on net 0 can run meanwhile
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = run([sys.executable, str(REPO / "tools" / "demo.py"), "--json"], env=env, cwd=REPO, timeout=540)
    try:
        s = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"the demo printed no JSON summary:\n{explain(proc)[-8000:]}")
    log = explain(proc)[-8000:]
    assert proc.returncode == 0 and s["ok"], f"error: {s.get('error')}\n{log}"

    ids = s["host_ids"]
    assert sorted(ids) == ["node1", "node2", "node3"] and len(set(ids.values())) == 3, ids
    holder, taker = ids["node1"], ids["node2"]

    # Before the crash: every host sees node1's lease, held and live; node2 is refused.
    before = s["before"]
    assert before["owner_id"] == holder, before
    for host, view in before["views"].items():
        assert (view["owner_id"], view["held"], view["owner_state"]) == (holder, True, "live"), (host, view)
    assert (s["refusal"]["name"], s["refusal"]["code"]) == ("ACQUIRE_IDLIVE", -243), s["refusal"]

    # The lease moved to node2 with a higher lver, seen so by both surviving hosts.
    t, after = s["takeover"], s["after"]
    assert (t["owner_id"], after["owner_id"]) == (taker, taker), (t, after)
    assert after["lver"] == t["lver"] > before["lver"], (before, t, after)
    assert sorted(after["views"]) == ["node2", "node3"], after["views"]
    for host, view in after["views"].items():
        assert (view["owner_id"], view["lver"], view["held"]) == (taker, t["lver"], True), (host, view)

    # Never earlier than host 1's last renewal + 8*io + fire: the leader's timestamp is node2's monotonic
    # second of the takeover, and the hosts share one monotonic clock with the renewal's timestamp.
    dead_after = 8 * s["io_timeout"] + s["fire_timeout"]
    assert s["host_dead_seconds"] == dead_after
    assert t["leader_timestamp"] >= s["crash"]["last_renewal"] + dead_after, (s["crash"], t)
    assert t["after_renewal"] >= dead_after, t

    # Each survivor saw host 1 go LIVE -> FAIL -> DEAD, in that order.
    for host in ("node2", "node3"):
        assert _states(s["observed"][host]) == ["LIVE", "FAIL", "DEAD"], (host, s["observed"][host])

    # The dump read on node2 shows vmdisk owned by node2's host id at the new lver.
    rows = [line.split() for line in s["dump"].splitlines() if " vmdisk " in f" {line} "]
    assert len(rows) == 1 and int(rows[0][4]) == taker and int(rows[0][6]) == t["lver"], s["dump"]

    # Nothing is left: the harness finds no cluster on the demo's network, and its pieces are gone.
    net = int(env[NET_ENV])
    assert s["cleanup"]["status_rc"] != 0 and "no test cluster is up" in s["cleanup"]["status"], s["cleanup"]
    status = run([sys.executable, "-m", "testhosts", "status"], env=env, cwd=REPO, timeout=60)
    assert status.returncode == 1 and "no test cluster is up" in status.stderr, explain(status)
    state_dir = Path(env.get("LOCKENGINE_TESTHOSTS_STATE")
                     or (f"/run/lockengine-testhosts-{net}" if net else "/run/lockengine-testhosts"))
    assert not state_dir.exists(), f"{state_dir} is left behind"
    assert not Path(f"/sys/class/net/lebr{net}").exists(), f"bridge lebr{net} is left behind"
    assert "work_dir" not in s, f"the work dir was kept: {s.get('work_dir')}"
