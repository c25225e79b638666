"""lockengined's sanlock-protocol socket driven by sanlock's own clients: Debian's python3-sanlock (under
/usr/bin/python3, tests/system/sanlock_driver.py) and the ``sanlock client`` CLI, on a real loop device.

The sequences are what VDSM and libvirt's lock driver run; the results are checked against what the
real sanlock 3.8.5 answers (/work/shared/sanlock-protocol.md), and against lockengined's own view
(JSON socket) and the disk (``lockengine direct read_leader``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LoopFactory
from tests.support.daemons import REPO, DaemonFactory, TestDaemon, read_leader

SYSTEM_PYTHON = "/usr/bin/python3"
DRIVER = REPO / "tests" / "system" / "sanlock_driver.py"
M = 1 << 20
EPERM, ESRCH, EEXIST, ENOSPC, EOPNOTSUPP = 1, 3, 17, 28, 95


def compat_daemon(daemons: DaemonFactory, tmp_path: Path, name: str = "h1", **config: Any) -> tuple[TestDaemon, Path]:
    sdir = tmp_path / name / "sanlock"
    d = daemons(name, sanlock_socket=str(sdir / "sanlock.sock"), **config)
    assert (sdir / "sanlock.sock").exists()
    return d, sdir


def drive(sanlock_dir: Path, steps: list[dict[str, Any]], timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``steps`` through python3-sanlock in one process; one result per step."""
    env = {"SANLOCK_RUN_DIR": str(sanlock_dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.run([SYSTEM_PYTHON, str(DRIVER)], input=json.dumps(steps), env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"driver failed after {proc.stdout}: {proc.stderr}"
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(steps), (results, proc.stderr)
    return results


def sanlock_cli(sanlock: str, sanlock_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SANLOCK_RUN_DIR": str(sanlock_dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([sanlock, "client", *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"], result
    return result["value"]


def err(result: dict[str, Any]) -> int:
    assert not result["ok"], result
    errno: int = result["errno"]
    return errno


def test_vdsm_sequence(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path) -> None:
    """write_lockspace, write_resource, async add_lockspace polled with inq_lockspace, register, acquire,
    inquire, read_resource_owners, get_hosts, release, rem_lockspace — as VDSM's clusterlock runs them."""
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    disks = [[dev, M]]
    r = drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"offset": 0, "iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "read_lockspace", "args": [dev, 0]},
        {"op": "read_resource", "args": [dev, M]},
        {"op": "inq_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0], "kwargs": {"wait": False}},
        {"op": "inq_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "inq_lockspace", "args": ["LS", 1, dev, 0], "kwargs": {"wait": True}},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "get_lockspaces"},
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "inquire", "kwargs": {"slkfd": "$fd"}},
        {"op": "read_resource_owners", "args": ["LS", "R1", disks]},
        {"op": "get_hosts", "args": ["LS", 1]},
        {"op": "get_hosts", "args": ["LS"]},
        {"op": "release", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "release", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "read_resource_owners", "args": ["LS", "R1", disks]},
        {"op": "read_resource", "args": [dev, M]},
        {"op": "rem_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "inq_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "rem_lockspace", "args": ["LS", 1, dev, 0]},
    ])
    ok(r[0]), ok(r[1])
    assert ok(r[2]) == {"lockspace": "LS", "iotimeout": 1}
    assert ok(r[3]) == {"lockspace": "LS", "resource": "R1", "version": 0}
    assert ok(r[4]) is False  # not joined: -ENOENT maps to False
    assert ok(r[5]) is None
    assert ok(r[6]) in (None, True)  # -EINPROGRESS maps to None while joining
    assert ok(r[7]) is True  # the INQ_WAIT flag: answered once the join completed
    assert err(r[8]) == EEXIST
    assert ok(r[9]) == [{"lockspace": "LS", "host_id": 1, "path": dev, "offset": 0, "flags": 0}]
    fd = ok(r[10])
    assert isinstance(fd, int) and fd > 2
    ok(r[11])
    assert err(r[12]) == EEXIST  # already held on this host, as sanlock answers
    assert ok(r[13]) == [{"lockspace": "LS", "resource": "R1", "flags": 1, "version": 1, "disks": [[dev, M]]}]
    owners = ok(r[14])
    assert len(owners) == 1 and owners[0]["host_id"] == 1 and owners[0]["generation"] >= 1
    assert owners[0]["timestamp"] > 0
    hosts = ok(r[15])
    assert len(hosts) == 1 and hosts[0]["host_id"] == 1 and hosts[0]["flags"] == 3  # LIVE
    assert [h["host_id"] for h in ok(r[16])] == [1]
    ok(r[17])
    assert err(r[18]) == EPERM  # sanlock answers -1 for a lease not held
    assert ok(r[19]) == []
    assert ok(r[20])["version"] == 1  # the acquire committed lver 1 on disk
    ok(r[21])
    assert ok(r[22]) is False
    assert err(r[23]) == 2  # ENOENT
    # The disk agrees: the lease is free, last owned by host 1 at lver 1.
    leader = read_leader(dev, "LS", "R1", M)
    assert (leader["owner_id"], leader["lver"], leader["timestamp"]) == (1, 1, 0)
    assert d.call("status")["lockspaces"] == []


def test_libvirt_sequence(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path, sanlock: str) -> None:
    """register, killpath, acquire with a required lver, restrict, then inquire/release by pid from another
    connection — the calls libvirt's lock driver makes (the QEMU side and the libvirtd side)."""
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    disks = [[dev, M]]
    r = drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "release", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "killpath", "args": ["/usr/bin/logger", ["vm 1", "stop"]], "kwargs": {"slkfd": "$fd"}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd", "version": 5}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd", "version": 0}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd", "version": 1}},
        {"op": "restrict", "args": [1]},
        {"op": "inquire", "kwargs": {"slkfd": "$fd"}},
        {"op": "inquire", "kwargs": {"pid": "$pid"}},
        {"op": "release", "args": ["LS", "R1", disks], "kwargs": {"pid": "$pid"}},
        {"op": "inquire", "kwargs": {"pid": "$pid"}},
        {"op": "inquire", "kwargs": {"pid": 1}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"pid": "$pid", "lvb": True}},
        {"op": "release", "args": ["LS", "R1", disks], "kwargs": {"pid": "$pid"}},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"pid": "$pid", "shared": True}},
        {"op": "inquire", "kwargs": {"pid": "$pid"}},
        {"op": "close"},
        {"op": "sleep", "args": [0.5]},
        {"op": "read_resource_owners", "args": ["LS", "R1", disks]},
        {"op": "inquire", "kwargs": {"pid": "$pid"}},
    ])
    for i in range(6):
        ok(r[i])
    ok(r[6])
    assert err(r[7]) == -240  # SANLK_ACQUIRE_LVER: the lease is at lver 1, not 5
    assert err(r[8]) == -240  # required 0, and it is 1
    ok(r[9])
    assert ok(r[10]) == 0
    assert err(r[11]) == EPERM  # the restricted connection takes no more commands
    assert [(x["resource"], x["version"]) for x in ok(r[12])] == [("R1", 2)]  # acquired at lver 1: now 2
    ok(r[13])
    assert ok(r[14]) == []
    assert err(r[15]) == ESRCH  # pid 1 never registered
    ok(r[16]), ok(r[17])  # with an LVB (tests/system/test_sanlock_lvb.py), released
    ok(r[18])
    assert [(x["resource"], x["flags"]) for x in ok(r[19])] == [("R1", 4)]  # RES_SHARED
    # Closing the registered fd released the shared lease.
    assert ok(r[22]) == []
    assert err(r[23]) == ESRCH


def test_killpath_and_owner_seen_in_status(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                           sanlock: str) -> None:
    """The killpath set over the sanlock socket is the daemon's own (JSON status shows it); ``sanlock client
    status``, ``gets -h 1``, ``host_status``, ``inquire -p``, ``renewal``, ``log_dump`` and ``version`` print
    what sanlock would."""
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    disks = [[dev, M]]
    steps: list[dict[str, Any]] = [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
    ]
    for res in drive(sdir, steps):
        ok(res)
    holder = subprocess.Popen(
        [SYSTEM_PYTHON, "-c",
         "import sanlock, sys, time\n"
         "fd = sanlock.register()\n"
         "sanlock.killpath('/usr/bin/logger', ['a b', 'c'], slkfd=fd)\n"
         f"sanlock.acquire(b'LS', b'R1', [({dev!r}, {M})], slkfd=fd)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        env={"SANLOCK_RUN_DIR": str(sdir)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        st = d.call("status")
        clients = [c for c in st["clients"] if c["pid"] == holder.pid]
        assert clients and clients[0]["killpath"] == "/usr/bin/logger"
        assert [(x["resource"], x["pid"]) for x in st["resources"]] == [("R1", holder.pid)]
        out = sanlock_cli(sanlock, sdir, "status")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "daemon h1"
        assert f"p {holder.pid} python3" in lines or any(line.startswith(f"p {holder.pid}") for line in lines)
        assert f"s LS:1:{dev}:0" in lines
        assert f"r LS:R1:{dev}:{M}:1 p {holder.pid}" in lines
        out = sanlock_cli(sanlock, sdir, "inquire", "-p", str(holder.pid))
        assert out.returncode == 0 and f"LS:R1:{dev}:{M}:1" in out.stdout, (out.stdout, out.stderr)
        out = sanlock_cli(sanlock, sdir, "gets", "-h", "1")
        assert f"s LS:1:{dev}:0" in out.stdout and "h 1 gen 1" in out.stdout and "LIVE" in out.stdout, out.stdout
        out = sanlock_cli(sanlock, sdir, "host_status", "-s", "LS")
        assert out.stdout.startswith("1 timestamp "), out.stdout
        out = sanlock_cli(sanlock, sdir, "renewal", "-s", "LS")
        assert out.returncode == 0 and "timestamp=" in out.stdout and "read_ms=" in out.stdout, out
        out = sanlock_cli(sanlock, sdir, "log_dump")
        # sanlock 3.8.5's own CLI exits 1 after a log_dump of its own daemon too: only the text counts.
        assert f"client pid {holder.pid}" in out.stdout, out.stdout[-2000:]
        out = sanlock_cli(sanlock, sdir, "version")
        assert out.returncode == 0 and "3.8.5" in out.stdout, (out.stdout, out.stderr)
        # Releasing by pid through the CLI, as an administrator would.
        out = sanlock_cli(sanlock, sdir, "release", "-r", f"LS:R1:{dev}:{M}", "-p", str(holder.pid))
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert d.call("status")["resources"] == []
    finally:
        holder.kill()
        holder.wait()


def test_disk_commands_refuse_to_overwrite_a_held_lease(daemons: DaemonFactory, loop_device: LoopFactory,
                                                       tmp_path: Path) -> None:
    """write_resource over a lease held through this daemon is refused (EBUSY); the holder keeps it."""
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    disks = [[dev, M]]
    r = drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", disks], "kwargs": {"slkfd": "$fd"}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "write_lockspace", "args": ["LS", dev]},
        {"op": "read_resource_owners", "args": ["LS", "R1", disks]},
        {"op": "read_resource", "args": [dev, 3 * M]},
        {"op": "read_lockspace", "args": [dev, M]},
    ])
    for i in range(5):
        ok(r[i])
    assert err(r[5]) == 16 and err(r[6]) == 16  # EBUSY
    assert [o["host_id"] for o in ok(r[7])] == [1]
    assert err(r[8]) == -223  # no lease there: SANLK_LEADER_MAGIC, as sanlock
    assert err(r[9]) == -223


@pytest.mark.parametrize("flags", [0, 1, 2])
def test_socket_off_unless_configured_and_as_private_as_the_json_socket(daemons: DaemonFactory, tmp_path: Path, flags: int) -> None:
    if flags == 0:
        d = daemons("plain")
    elif flags == 1:  # the default group 'lockengine' does not exist here: 0600, root only
        d = compat_daemon(daemons, tmp_path, "private")[0]
    else:
        d = compat_daemon(daemons, tmp_path, "grouped", socket_group="root")[0]
    st = d.call("status", detail=True)
    configured = st["daemon"]["config"]["sanlock_socket"]
    if flags == 0:
        assert configured is None and not list(d.run_dir.rglob("sanlock.sock"))
    else:
        ours, theirs = os.stat(configured), os.stat(d.socket)
        assert (ours.st_mode, ours.st_uid, ours.st_gid) == (theirs.st_mode, theirs.st_uid, theirs.st_gid)
        assert ours.st_mode & 0o777 == (0o600 if flags == 1 else 0o660) and ours.st_gid == 0


def test_request_moves_a_lease_held_through_sanlock_client_command(
    daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path, sanlock: str
) -> None:
    """``sanlock client command`` registers, acquires and execs a program that holds the lease; a graceful
    request through python3-sanlock SIGTERMs it (held on this host: acted on at once), the lease is
    released, and ``examine`` answers."""
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    disks = [[dev, M]]
    for res in drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", disks]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
    ]):
        ok(res)
    env = {"SANLOCK_RUN_DIR": str(sdir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    cmd = subprocess.Popen([sanlock, "client", "command", "-r", f"LS:R1:{dev}:{M}", "-c", "/bin/sleep", "300"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        held = []
        for _ in range(300):
            held = d.call("status")["resources"]
            if held:
                break
            assert cmd.poll() is None, cmd.communicate()
            time.sleep(0.1)
        assert [(x["resource"], x["pid"]) for x in held] == [("R1", cmd.pid)]
        r = drive(sdir, [
            {"op": "read_resource_owners", "args": ["LS", "R1", disks]},
            {"op": "request", "args": ["LS", "R1", disks], "kwargs": {"action": 2}},
            {"op": "read_resource_owners", "args": ["LS", "R1", disks], "until": []},
        ])
        assert [o["host_id"] for o in ok(r[0])] == [1]
        ok(r[1])
        assert ok(r[2]) == []
        assert cmd.wait(60) == -15  # SIGTERM, as sanlock's graceful request without a killpath
        out = sanlock_cli(sanlock, sdir, "examine", "-s", f"LS:1:{dev}:0")
        assert out.returncode == 0, (out.stdout, out.stderr)
        out = sanlock_cli(sanlock, sdir, "request", "-r", f"LS:R1:{dev}:{M}:5", "-f", "1")
        assert out.returncode == 0, (out.stdout, out.stderr)  # a free lease: nothing to ask, as sanlock
    finally:
        cmd.kill()
        cmd.wait()


def test_sanlock_client_init_and_read_go_through_the_daemon(daemons: DaemonFactory, loop_device: LoopFactory,
                                                            tmp_path: Path, sanlock: str) -> None:
    """``sanlock client init`` / ``read`` (WRITE_* / READ_* through the daemon) write what lockengine reads."""
    dev = loop_device(size=8 * M).path
    _, sdir = compat_daemon(daemons, tmp_path)
    for args in (["init", "-s", f"LS:0:{dev}:0"], ["init", "-r", f"LS:R1:{dev}:{M}"],
                 ["init", "-r", f"LS:R2:{dev}:{2 * M}", "-z", "1"]):
        out = sanlock_cli(sanlock, sdir, *args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    assert read_leader(dev, "LS", "R1", M)["lver"] == 0
    out = sanlock_cli(sanlock, sdir, "read", "-s", f"LS:0:{dev}:0")
    assert out.returncode == 0 and "s LS:" in out.stdout, (out.stdout, out.stderr)
    out = sanlock_cli(sanlock, sdir, "read", "-r", f"LS:R1:{dev}:{M}")
    assert out.returncode == 0 and f"r LS:R1:{dev}:{M}:0" in out.stdout, (out.stdout, out.stderr)
    out = sanlock_cli(sanlock, sdir, "read", "-r", f"LS:R2:{dev}:{2 * M}")
    assert out.returncode != 0  # cleared with -z 1: sanlock's LEADER_MAGIC
