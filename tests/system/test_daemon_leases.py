"""Two real daemons (simulated hosts 1 and 2) on one disk: join, exclusive leases, release on exit."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from lockengine.client import RemoteError
from tests.support.daemons import IO, REPO, DaemonFactory, Holder, TestDaemon, init_disk, read_leader


def two_hosts(daemons: DaemonFactory, loop_device: object) -> tuple[TestDaemon, TestDaemon, str, str]:
    """host1 and host2 joined to LS, each through its own loop device over one backing file."""
    d1 = loop_device()  # type: ignore[operator]
    d2 = loop_device(backing=d1.backing)  # type: ignore[operator]
    init_disk(d1.path)
    h1 = daemons("host1")
    h2 = daemons("host2")
    h1.join("LS", 1, d1.path, wait=False)
    h2.join("LS", 2, d2.path, wait=False)
    h1.wait_joined("LS")
    h2.wait_joined("LS")
    return h1, h2, d1.path, d2.path


def test_exclusive_lease_moves_between_hosts(daemons: DaemonFactory, loop_device: object,
                                              holders: list[Holder]) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    r1_on_1, r1_on_2 = f"LS:R1:{p1}:1M", f"LS:R1:{p2}:1M"

    a = h1.holder(r1_on_1)
    holders.append(a)
    assert a.acquired is not None and a.acquired["lver"] == 1

    b = h2.holder(r1_on_2)
    holders.append(b)
    assert b.error == {"name": "ACQUIRE_IDLIVE", "code": -243, "message": b.error["message"]}  # type: ignore[index]
    b.wait(10)

    # The same refusal through the CLI, for a process registered on host 2.
    c = h2.holder(f"LS:R2:{p2}:2M")
    holders.append(c)
    rc, doc = h2.cli_json("acquire", "-r", r1_on_2, "-p", str(c.pid))
    assert rc == 1
    assert doc["ok"] is False and doc["error"]["name"] == "ACQUIRE_IDLIVE" and doc["error"]["code"] == -243

    # Host 1's view: status, inquire, leases on disk.
    rc, st = h1.cli_json("status", "-D")
    assert rc == 0 and st["ok"] is True
    assert st["daemon"]["host_name"] == "host1" and st["daemon"]["fire_timeout"] == 10
    assert st["daemon"]["watchdog"]["backend"] == "none"
    assert [(r["resource"], r["pid"], r["lver"]) for r in st["resources"]] == [("R1", a.pid, 1)]
    rc, inq = h1.cli_json("inquire", "-p", str(a.pid))
    assert inq["resources"] == [f"LS:R1:{p1}:1048576:1"]
    assert read_leader(p1, "LS", "R1", 1 << 20)["owner_id"] == 1

    # Release through the CLI on behalf of the registered holder; host 2 then gets the lease.
    h1.cli("release", "-r", r1_on_1, "-p", str(a.pid), check=True)
    assert read_leader(p1, "LS", "R1", 1 << 20)["timestamp"] == 0
    rc, doc = h2.cli_json("acquire", "-r", r1_on_2, "-p", str(c.pid))
    assert rc == 0 and doc["ok"] is True and doc["lver"] == 2
    leader = read_leader(p2, "LS", "R1", 1 << 20)
    assert (leader["owner_id"], leader["lver"]) == (2, 2) and leader["timestamp"] != 0

    # Host 1 now sees R1 held by a live host 2.
    with h1.client() as cl:
        cl.register()
        with pytest.raises(RemoteError) as err:
            cl.acquire([r1_on_1])
        assert err.value.name == "ACQUIRE_IDLIVE" and err.value.code == -243


def test_views_of_the_lockspace(daemons: DaemonFactory, loop_device: object) -> None:
    h1, h2, p1, _ = two_hosts(daemons, loop_device)
    time.sleep(2 * IO + 0.5)  # one renewal each: both hosts have seen each other's timestamp change

    rc, gets = h1.cli_json("gets", "-h", "1")
    assert rc == 0
    (ls,) = gets["lockspaces"]
    assert (ls["lockspace"], ls["host_id"], ls["state"]) == ("LS", 1, "JOINED")
    states = {h["host_id"]: h["state"] for h in ls["hosts"]}
    assert states[1] == "LIVE" and states[2] in ("LIVE", "UNKNOWN")

    rc, hs = h1.cli_json("host_status", "-s", "LS")
    names = {h["host_id"]: h["host_name"] for h in hs["hosts"]}
    assert names == {1: "host1", 2: "host2"}

    rc, ren = h1.cli_json("renewal", "-s", f"LS:1:{p1}:0")
    assert rc == 0 and ren["renewals"], ren
    assert all(r["result"] == 0 and r["read_ms"] >= 0 and r["write_ms"] > 0 for r in ren["renewals"])

    rc, inq = h1.cli_json("inq_lockspace", "-s", "LS")
    assert inq["state"] == "JOINED" and inq["generation"] >= 1 and inq["io_timeout"] == IO

    text = h1.cli("log_dump", check=True).stdout
    assert "s LS:1:" in text and "joined" in text

    # Text output, sanlock style.
    out = h1.cli("status", check=True).stdout.splitlines()
    assert out[0] == "daemon host1" and f"s LS:1:{p1}:0" in out

    # Adding it again is EEXIST; a conflicting definition is EINVAL; an unknown one ENOENT.
    rc, doc = h1.cli_json("add_lockspace", "-s", f"LS:1:{p1}:0")
    assert rc == 1 and doc["error"]["name"] == "EEXIST"
    rc, doc = h1.cli_json("add_lockspace", "-s", f"LS:3:{p1}:0")
    assert rc == 1 and doc["error"]["name"] == "EINVAL"
    rc, doc = h1.cli_json("inq_lockspace", "-s", "NOPE")
    assert rc == 1 and doc["error"]["name"] == "ENOENT"

    # Events travel through the bitmap to host 2.
    h1.cli("set_event", "-s", "LS", "-i", "2", "-e", "7", "-d", "42", check=True)
    deadline = time.monotonic() + 6 * IO
    while time.monotonic() < deadline:
        events = h2.call("get_events", lockspace="LS")["events"]
        if events:
            break
        time.sleep(0.2)
    assert [(e["host_id"], e["event"], e["data"]) for e in events] == [(1, 7, 42)]

    # shutdown refuses while a lockspace is joined, unless forced.
    rc, doc = h1.cli_json("shutdown")
    assert rc == 1 and doc["error"]["name"] == "EBUSY"

    # Leaving SIGKILLs the holders at once (as sanlock does), releases their leases, then frees the
    # slot on disk; the daemon forgets the lockspace.
    holder = h1.holder(f"LS:R1:{p1}:1M")
    rc, doc = h1.cli_json("rem_lockspace", "-s", "LS", "--unused")
    assert rc == 1 and doc["error"]["name"] == "EBUSY" and str(holder.pid) in doc["error"]["message"]
    h1.cli("rem_lockspace", "-s", "LS", check=True)
    assert holder.wait(5) == -9
    holder.stop()
    assert read_leader(p1, "LS", "R1", 1 << 20)["timestamp"] == 0
    rc, doc = h1.cli_json("inq_lockspace", "-s", "LS")
    assert doc["error"]["name"] == "ENOENT"
    dump = subprocess.run([sys.executable, "-m", "lockengine", "direct", "dump", p1, "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    hosts = {h["host_id"]: h for h in json.loads(dump.stdout)["areas"][0]["hosts"]}
    assert hosts[1]["timestamp"] == 0 and hosts[2]["timestamp"] != 0

    # A forced shutdown of host 2 leaves its lockspace too, and the daemon exits cleanly.
    rc, doc = h2.cli_json("shutdown", "-f", "1")
    assert rc == 0 and doc["stopping"] is True and doc["lockspaces"] == ["LS"]
    assert h2.proc.wait(20) == 0
    dump = subprocess.run([sys.executable, "-m", "lockengine", "direct", "dump", p1, "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert all(h["timestamp"] == 0 for h in json.loads(dump.stdout)["areas"][0]["hosts"])


def test_holder_exit_releases_on_disk(daemons: DaemonFactory, loop_device: object, holders: list[Holder]) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    a = h1.holder(f"LS:R1:{p1}:1M", f"LS:R2:{p1}:2M")
    holders.append(a)
    assert a.acquired is not None
    assert read_leader(p1, "LS", "R2", 2 << 20)["timestamp"] != 0

    os.kill(a.pid, signal.SIGKILL)  # exits without releasing
    a.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and read_leader(p1, "LS", "R2", 2 << 20)["timestamp"] != 0:
        time.sleep(0.05)
    for res, off in (("R1", 1 << 20), ("R2", 2 << 20)):
        leader = read_leader(p1, "LS", res, off)
        assert (leader["owner_id"], leader["timestamp"]) == (1, 0), leader
    assert h1.call("status")["resources"] == []
    assert any(f"released after pid {a.pid} exited" in line for line in h1.call("log_dump")["lines"])

    # Host 2 gets it at once: the leader says free.
    b = h2.holder(f"LS:R2:{p2}:2M")
    holders.append(b)
    assert b.acquired is not None and b.acquired["lver"] == 2


def test_client_command_holds_for_the_command_lifetime(daemons: DaemonFactory, loop_device: object,
                                                       holders: list[Holder]) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    res = f"LS:R3:{p1}:3M"
    # Exit code passes through; the lease is held while it runs and released after.
    proc = subprocess.Popen([sys.executable, "-m", "lockengine", "client", "command", "-r", res, "--",
                             "/bin/sh", "-c", "sleep 1.5; exit 7"], env=h1.env, cwd=REPO)
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline and not seen:
        seen = h1.call("status")["resources"]
        time.sleep(0.05)
    assert [(r["resource"], r["pid"]) for r in seen] == [("R3", proc.pid)]
    assert read_leader(p1, "LS", "R3", 3 << 20)["timestamp"] != 0
    assert proc.wait(10) == 7
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and h1.call("status")["resources"]:
        time.sleep(0.05)
    assert h1.call("status")["resources"] == []
    assert read_leader(p1, "LS", "R3", 3 << 20)["timestamp"] == 0

    # A lease it cannot get: the command does not run, and the error says why.
    other = h2.holder(res.replace(p1, p2))
    holders.append(other)
    assert other.acquired is not None
    marker = h1.run_dir / "ran"
    proc2 = h1.cli("command", "--json", "-r", res, "--", "/bin/sh", "-c", f"touch {marker}")
    doc = json.loads(proc2.stdout)
    assert proc2.returncode == 1 and doc["error"]["name"] == "ACQUIRE_IDLIVE"
    assert not marker.exists()


def test_socket_and_run_dir(daemons: DaemonFactory) -> None:
    h = daemons("solo")
    mode = stat.S_IMODE(os.stat(h.socket).st_mode)
    # No 'lockengine' group on this machine: the socket is root only, and the log says so.
    import grp

    try:
        grp.getgrnam("lockengine")
        assert mode == 0o660
    except KeyError:
        assert mode == 0o600
        assert "does not exist; mode 0600" in h.log_text()
    # With a group that exists the socket is 0660 and owned by that group.
    g = daemons("grouped", socket_group="root")
    st = os.stat(g.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 0
    # A second daemon on the same run dir is refused; the first keeps serving.
    env = dict(h.env)
    proc = subprocess.run([sys.executable, "-m", "lockengine.daemon.main", "--watchdog", "none",
                           "--host-name", "dup"], env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "another lockengined" in proc.stderr
    assert h.call("hello")["host_name"] == "solo"
    # Clean stop on SIGTERM removes the socket.
    h.proc.send_signal(signal.SIGTERM)
    assert h.proc.wait(20) == 0
    assert not os.path.exists(h.socket)


def test_a_rejoin_after_a_clean_rem_lockspace_skips_the_busy_wait(daemons: DaemonFactory, loop_device: object) -> None:
    """rem_lockspace then add_lockspace (VDSM's deactivate/activate, lvmlockd's lock-stop/start): the
    slot still holds the record our clean release left, so the rejoin is the 2·io race, not the busy
    wait a released slot otherwise gets (delta.py, docs/ondisk.md rule 10)."""
    d = loop_device()  # type: ignore[operator]
    init_disk(d.path)
    h1 = daemons("host1")
    h1.join("LS", 1, d.path)
    h1.cli("rem_lockspace", "-s", "LS", check=True)
    assert "host id released" in h1.log_text() and "a rejoin waits" not in h1.log_text()
    before = h1.log_text().count("slot released")
    h1.join("LS", 1, d.path)
    assert h1.log_text().count("slot released") == before, "the clean rejoin took the busy wait"
    rc, doc = h1.cli_json("host_status", "-s", "LS")
    assert rc == 0 and [h["generation"] for h in doc["hosts"] if h["host_id"] == 1] == [2], doc
