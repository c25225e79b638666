"""System tests of the test-host harness (issue 3).  Run as root: ``pytest tests/testhosts``.

One 3-host cluster is shared by the tests of this module (module-scoped fixture) and taken down by
the last tests, which check that nothing of it is left.  Tests that need a missing tool, image or
privilege fail with a message saying what is missing; none of them skips.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testhosts import Cluster, HarnessError, HostTimeout, HostUnreachable, UnknownHost
from testhosts import image as host_image
from testhosts.network import host_address
from testhosts.plan import (
    BRIDGE,
    CGROUP_HIERARCHIES,
    CGROUP_PARENT,
    CGROUP_ROOT,
    GUARD,
    NETNS_PREFIX,
    SUBNET,
    VETH_PREFIX,
)
from testhosts.procs import proc_start_time

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
WATCHDOG_TIMEOUT = 5.0
SRC_IN_HOST = "/opt/lockengine-src"
HOSTS = ("node1", "node2", "node3")
NET_RANGE = SUBNET.rsplit(".", 2)[0] + "."  # "10.231." for LOCKENGINE_TESTHOSTS_NET=0

# Per-I/O latency inside a host: O_DIRECT preads (or pwrites) of one sector, each timed.
IO_TIMER = r"""
import mmap, os, sys, time
path, count, mode, sector = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fd = os.open(path, (os.O_RDWR if mode == "w" else os.O_RDONLY) | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
times = []
for i in range(count):
    t = time.monotonic()
    if mode == "w":
        os.pwritev(fd, [memoryview(buf)[:sector]], sector * (64 + i))
    else:
        os.preadv(fd, [memoryview(buf)[:sector]], sector * (64 + i))
    times.append(time.monotonic() - t)
print(" ".join(f"{t:.4f}" for t in times))
"""

# Pets the virtual watchdog every 0.5 s for `seconds`, prints the time of its last pet, then
# either exits without the magic "V" (the fd is closed by exit) or does a magic close.
PETTER = r"""
import os, sys, time
seconds, magic = float(sys.argv[1]), sys.argv[2] == "magic"
fd = os.open("/dev/watchdog0", os.O_WRONLY)
end = time.time() + seconds
last = None
while time.time() < end:
    os.write(fd, b"\0")
    last = time.time()
    time.sleep(0.5)
if magic:
    os.write(fd, b"V")
    last = time.time()
    os.close(fd)
print(f"{last:.6f}")
"""


def _py(script: str, *args: object) -> str:
    return "python3 -c " + shlex.quote(script) + " " + " ".join(shlex.quote(str(a)) for a in args)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testhosts", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=timeout)


def _must(cluster: Cluster, host: str, cmd: str, timeout: float = 30) -> str:
    rc, out, err = cluster.run(host, cmd, timeout=timeout)
    assert rc == 0, f"{host}: {cmd!r} failed (rc {rc}): {err or out}"
    return out


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _loop_backings() -> dict[str, str]:
    found = {}
    for entry in Path("/sys/block").glob("loop*"):
        backing = entry / "loop" / "backing_file"
        if backing.exists():
            found[f"/dev/{entry.name}"] = backing.read_text().strip()
    return found


def _preflight() -> None:
    if os.geteuid() != 0:
        pytest.fail("the harness tests need root (network namespaces, loop devices, cgroups): run pytest as root")
    missing = [t for t in ("ip", "losetup", "blockdev", "systemd-nspawn", "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"tools missing on this machine: {', '.join(missing)} "
                    f"(apt-get install -y systemd-container debootstrap iproute2 util-linux)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _preflight()
    state_dir = tmp_path_factory.mktemp("testhosts-state")
    c = Cluster(state_dir)
    try:
        c.up(3, disks=2, sector_size=[512, 4096], watchdog_timeout=WATCHDOG_TIMEOUT,
             bind_ro=[f"{REPO}:{SRC_IN_HOST}"])
    except HarnessError as exc:
        pytest.fail(f"the test cluster did not come up: {exc}")
    try:
        yield c
    finally:
        c.down()


# ------------------------------------------------------------------ the cluster as Ansible sees it
def test_up_describes_hosts_and_writes_inventory(cluster: Cluster) -> None:
    desc = json.loads(cluster.description_path.read_text())
    assert [h["name"] for h in desc["hosts"]] == list(HOSTS)
    assert [h["address"] for h in desc["hosts"]] == [host_address(i) for i in (1, 2, 3)]  # .11 .12 .13
    for h in desc["hosts"]:
        assert h["user"] == "root" and h["port"] == 22 and Path(h["identity_file"]).is_file()
        assert h["disks"] == ["/dev/lockdisk0", "/dev/lockdisk1"]
    inventory = cluster.inventory_path.read_text()
    for needle in ("ansible_user: root", "ansible_ssh_private_key_file:", "StrictHostKeyChecking=no",
                   "UserKnownHostsFile=/dev/null", "ansible_python_interpreter: /usr/bin/python3"):
        assert needle in inventory


def test_ansible_reaches_three_distinct_hosts(cluster: Cluster) -> None:
    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists():
        pytest.fail(f"ansible-core is not installed next to {sys.executable}: pip install ansible-core")
    env = dict(os.environ, ANSIBLE_SSH_ARGS="-o ControlMaster=no", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([str(ansible), "all", "-i", str(cluster.inventory_path), "-o",
                           "-m", "ansible.builtin.command", "-a", "hostname"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 \| \(stdout\) (\S+)$", proc.stdout, re.M))
    assert names == {h: h for h in HOSTS}, proc.stdout
    assert len(set(names.values())) == 3


def test_each_host_has_its_own_identity(cluster: Cluster) -> None:
    ids = {h: _must(cluster, h, "hostname; cat /etc/machine-id; systemctl is-system-running").split() for h in HOSTS}
    assert [ids[h][0] for h in HOSTS] == list(HOSTS)
    assert len({ids[h][1] for h in HOSTS}) == 3
    assert all(ids[h][2] == "running" for h in HOSTS), ids  # real systemd, nothing failed


# ------------------------------------------------------------------ shared storage
def test_sector_written_through_one_host_is_read_through_another(cluster: Cluster) -> None:
    _must(cluster, "node1", "printf 'owner=node1' | dd of=/dev/lockdisk0 bs=512 count=1 conv=sync "
                            "oflag=direct status=none")
    out = _must(cluster, "node2", "dd if=/dev/lockdisk0 bs=512 count=1 iflag=direct status=none | tr -d '\\0'")
    assert out == "owner=node1"
    # the 4096-byte-sector disk, the other way round
    assert _must(cluster, "node2", "blockdev --getss /dev/lockdisk0 /dev/lockdisk1").split() == ["512", "4096"]
    _must(cluster, "node2", "printf 'owner=node2' | dd of=/dev/lockdisk1 bs=4096 count=1 conv=sync "
                            "oflag=direct status=none")
    out = _must(cluster, "node1", "dd if=/dev/lockdisk1 bs=4096 count=1 iflag=direct status=none | tr -d '\\0'")
    assert out == "owner=node2"


def test_failed_path_fails_only_that_hosts_writes(cluster: Cluster) -> None:
    write = "printf '{0}' | dd of=/dev/lockdisk0 bs=512 seek=1 count=1 conv=sync oflag=direct status=none"
    cluster.fail_storage("node3")
    try:
        assert cluster.status()[2]["storage"][0]["state"] == "ro"
        rc, _out, err = cluster.run("node3", write.format("node3"))
        assert rc != 0 and "Operation not permitted" in err
        _must(cluster, "node3", "dd if=/dev/lockdisk0 bs=512 count=1 iflag=direct status=none >/dev/null")  # reads work
        _must(cluster, "node1", write.format("node1"))  # another host's path is unaffected
    finally:
        cluster.heal_storage("node3")
    _must(cluster, "node3", write.format("node3"))
    assert cluster.status()[2]["storage"][0]["state"] == "rw"


def _io_times(cluster: Cluster, host: str, count: int, mode: str = "r") -> list[float]:
    out = _must(cluster, host, _py(IO_TIMER, "/dev/lockdisk0", count, mode, 512), timeout=60)
    return [float(t) for t in out.split()]


def test_throttled_path_slows_only_that_host(cluster: Cluster) -> None:
    cluster.slow_storage("node3", iops=1)
    try:
        assert cluster.status()[2]["storage"][0]["state"] == "rw+throttled"
        slow_reads = _io_times(cluster, "node3", 4)
        slow_writes = _io_times(cluster, "node3", 2, "w")
        fast = _io_times(cluster, "node1", 4)
    finally:
        cluster.heal_storage("node3")
    assert sorted(slow_reads)[len(slow_reads) // 2] >= 0.8, slow_reads
    assert min(slow_writes) >= 0.8, slow_writes
    assert max(fast) < 0.2, fast
    assert max(_io_times(cluster, "node3", 4)) < 0.2  # healed


def test_hung_path_holds_io_until_healed(cluster: Cluster) -> None:
    cluster.hang_storage("node3")
    try:
        reader = f"nohup {_py(IO_TIMER, '/dev/lockdisk0', 1, 'r', 512)} >/tmp/hung.out 2>&1 & echo $!"
        pid = _must(cluster, "node3", reader).strip()
        time.sleep(2)
        # still waiting for its one sector, in uninterruptible sleep, while node1's path is fine
        out = _must(cluster, "node3", f"cat /tmp/hung.out; cut -d' ' -f3 /proc/{pid}/stat")
        assert out.split() == ["D"], out
        assert max(_io_times(cluster, "node1", 2)) < 0.2
    finally:
        cluster.heal_storage("node3")
    deadline = time.monotonic() + 10
    while not (done := _must(cluster, "node3", "cat /tmp/hung.out").strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done and float(done) >= 2.0, done  # released by heal, not before
    assert max(_io_times(cluster, "node3", 2)) < 0.2


# ------------------------------------------------------------------ hosts
def test_frozen_host_stops_answering_and_thaws(cluster: Cluster) -> None:
    cluster.freeze("node3")
    try:
        assert cluster.status()[2]["frozen"] is True
        with pytest.raises(HostTimeout):
            cluster.run("node3", "true", timeout=3)
        assert _must(cluster, "node1", "hostname").strip() == "node1"
    finally:
        cluster.thaw("node3")
    assert _must(cluster, "node3", "hostname", timeout=15).strip() == "node3"
    assert cluster.status()[2]["frozen"] is False


def test_crashed_host_is_gone_and_restarts_with_same_identity(cluster: Cluster) -> None:
    before_key = cluster.host_key_fingerprint("node2")
    before = _must(cluster, "node2", "hostname; cat /etc/machine-id; ip -4 -o addr show dev eth0").split()
    old_init = cluster.init_pid("node2")
    assert old_init is not None
    cluster.crash("node2")
    assert proc_start_time(old_init) is None
    row = cluster.status()[1]
    assert row["name"] == "node2" and row["alive"] is False
    with pytest.raises(HostUnreachable):
        cluster.run("node2", "true", timeout=5)
    cluster.restart("node2")
    assert cluster.status()[1]["alive"] is True
    after = _must(cluster, "node2", "hostname; cat /etc/machine-id; ip -4 -o addr show dev eth0").split()
    assert after[0] == "node2" and after == before
    assert cluster.host_key_fingerprint("node2") == before_key
    assert _must(cluster, "node2", "dd if=/dev/lockdisk0 bs=512 count=1 iflag=direct status=none | tr -d '\\0'") \
        == "owner=node1"  # its disk path is back too


def test_nothing_outside_the_test_subnet_is_routable(cluster: Cluster) -> None:
    for host in HOSTS:
        rc, out, err = cluster.run(host, "ip route get 192.0.2.1")
        assert rc != 0 and "unreachable" in (out + err).lower(), (host, out, err)
        routes = _must(cluster, host, "ip route show; ip -6 route show | grep -v '^fe80' || true")
        assert "default" not in routes
        resolv = _must(cluster, host, "cat /etc/resolv.conf")
        assert not [line for line in resolv.splitlines() if line.split()[:1] == ["nameserver"]], resolv
        assert f"{host_address(1)} node1" in _must(cluster, host, "cat /etc/hosts")
    check = cluster.check_isolation()
    assert check["ok"], check
    assert GUARD in _ip("route", "show", "type", "unreachable")


def test_source_tree_is_bound_read_only(cluster: Cluster) -> None:
    _must(cluster, "node1", f"test -f {SRC_IN_HOST}/testhosts/__init__.py")
    rc, _out, err = cluster.run("node1", f"touch {SRC_IN_HOST}/should-not-exist")
    assert rc != 0 and "Read-only file system" in err


# ------------------------------------------------------------------ virtual watchdog
def _wait_reset(cluster: Cluster, host: str, count_before: int, deadline: float) -> dict[str, Any]:
    while time.time() < deadline:
        resets = cluster.watchdog_resets(host)
        if len(resets) > count_before:
            return resets[-1]
        time.sleep(0.1)
    pytest.fail(f"{host} was not reset by its watchdog in time; events: {cluster.watchdog_events(host)}")


def test_watchdog_resets_host_when_petting_stops(cluster: Cluster) -> None:
    # 1. the petter exits without the magic "V"
    before = len(cluster.watchdog_resets("node3"))
    out = _must(cluster, "node3", _py(PETTER, 2, "exit"))
    last_pet_in_host = float(out)
    assert cluster.watchdog("node3")["armed"] is True
    reset = _wait_reset(cluster, "node3", before, last_pet_in_host + WATCHDOG_TIMEOUT + 5)
    silent = reset["time"] - reset["last_pet"]
    assert WATCHDOG_TIMEOUT <= silent <= WATCHDOG_TIMEOUT + 1, reset
    assert abs(reset["last_pet"] - last_pet_in_host) < 0.5, (reset, last_pet_in_host)
    assert reset["killed"] is True
    assert cluster.status()[2]["alive"] is False
    cluster.restart("node3")
    assert cluster.watchdog("node3")["armed"] is False  # a new boot starts with the watchdog stopped

    # 2. the petter is killed
    before = len(cluster.watchdog_resets("node1"))
    pid = _must(cluster, "node1", f"nohup {_py(PETTER, 600, 'exit')} >/dev/null 2>&1 & echo $!").strip()
    time.sleep(1.5)
    _must(cluster, "node1", f"kill -9 {pid}")
    killed_at = time.time()
    reset = _wait_reset(cluster, "node1", before, killed_at + WATCHDOG_TIMEOUT + 5)
    assert WATCHDOG_TIMEOUT <= reset["time"] - reset["last_pet"] <= WATCHDOG_TIMEOUT + 1, reset
    assert reset["time"] - killed_at <= WATCHDOG_TIMEOUT + 1
    assert cluster.status()[0]["alive"] is False
    cluster.restart("node1")
    assert _must(cluster, "node1", "hostname").strip() == "node1"


def test_watchdog_magic_close_disarms(cluster: Cluster) -> None:
    before = len(cluster.watchdog_resets("node2"))
    # The FIFO refuses the watchdog ioctls, as the product's driver expects.
    rc, _out, err = cluster.run("node2", _py(
        "import fcntl, os; fd = os.open('/dev/watchdog0', os.O_WRONLY); "
        "fcntl.ioctl(fd, 0x80285700, bytes(40))"))  # WDIOC_GETSUPPORT
    assert rc != 0 and "Inappropriate ioctl for device" in err
    _must(cluster, "node2", "printf V > /dev/watchdog0")  # the probe above opened it: disarm
    _must(cluster, "node2", _py(PETTER, 1.5, "magic"))
    # The player notes the close from its reader a moment after the writer's exit: poll briefly.
    deadline = time.monotonic() + 3
    while cluster.watchdog("node2")["armed"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.watchdog("node2")["armed"] is False
    time.sleep(WATCHDOG_TIMEOUT + 2)
    assert len(cluster.watchdog_resets("node2")) == before
    assert cluster.status()[1]["alive"] is True
    events = [e["event"] for e in cluster.watchdog_events("node2")]
    assert "magic-close" in events


# ------------------------------------------------------------------ bad input
def test_unknown_host_is_refused(cluster: Cluster) -> None:
    with pytest.raises(UnknownHost, match="unknown host 'node9'.*node1, node2, node3"):
        cluster.crash("node9")
    proc = _cli("--state", str(cluster.state_dir), "fail-storage", "node9")
    assert proc.returncode == 2 and "unknown host 'node9'" in proc.stderr, proc.stderr
    assert all(row["alive"] and row["storage"][0]["state"] == "rw" for row in cluster.status())


def test_second_up_is_refused_and_changes_nothing(cluster: Cluster) -> None:
    before = cluster.describe()
    with pytest.raises(HarnessError, match="already up"):
        cluster.up(1)
    proc = _cli("--state", str(cluster.state_dir), "up", "2")
    assert proc.returncode == 1 and "already up" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert cluster.describe() == before
    assert all(row["alive"] for row in cluster.status())


def _path_without(tmp_path: Path, missing: str) -> dict[str, str]:
    """An environment whose PATH has every tool the harness uses except `missing`."""
    bin_dir = tmp_path / f"bin-without-{missing}"
    bin_dir.mkdir()
    for name in ("ip", "losetup", "blockdev", "systemd-nspawn", "debootstrap", "apt-get", "mount", "umount",
                 "rm", "dpkg", "wget"):
        found = shutil.which(name)
        if name != missing and found:
            (bin_dir / name).symlink_to(found)
    return dict(os.environ, PATH=str(bin_dir))


def _snapshot(tmp_path: Path) -> dict[str, Any]:
    """The harness-named things on this machine (other users' loop devices etc. may come and go)."""
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    links = [line.split()[0] for line in _ip("-br", "link").splitlines()]
    return {
        "netns": sorted(n for n in netns if n.startswith(NETNS_PREFIX)),
        "links": sorted(n for n in links if n.startswith((VETH_PREFIX, BRIDGE))),
        "loops": sorted(d for d, b in _loop_backings().items() if b.startswith(str(tmp_path))),
        "routes": [r for r in _ip("route", "show", "table", "all").splitlines() if NET_RANGE in r],
    }


@pytest.mark.parametrize("tool", ["losetup", "systemd-nspawn"])
def test_missing_tool_is_named_and_nothing_is_made(cluster: Cluster, tmp_path: Path, tool: str) -> None:
    state_dir = tmp_path / "state"
    before = _snapshot(tmp_path)
    proc = _cli("--state", str(state_dir), "up", "1", env=_path_without(tmp_path, tool))
    assert proc.returncode == 1, proc.stderr
    assert f"missing tool(s): {tool}" in proc.stderr and "apt-get install" in proc.stderr, proc.stderr
    assert not state_dir.exists()
    assert _snapshot(tmp_path) == before


def test_missing_debootstrap_is_named_when_the_image_must_be_built(cluster: Cluster, tmp_path: Path) -> None:
    images = tmp_path / "images"
    proc = _cli("--state", str(tmp_path / "state"), "--image-dir", str(images), "up", "1",
                env=_path_without(tmp_path, "debootstrap"))
    assert proc.returncode == 1 and "missing tool(s): debootstrap" in proc.stderr, proc.stderr
    assert not images.exists() and not (tmp_path / "state").exists()


def test_image_without_sshd_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    images = tmp_path / "images"
    fake = host_image.image_path(images)
    (fake / "usr/bin").mkdir(parents=True)
    (fake / host_image.MARKER).write_text("{}")
    proc = _cli("--state", str(tmp_path / "state"), "--image-dir", str(images), "up", "1")
    assert proc.returncode == 1 and "lacks sshd" in proc.stderr, proc.stderr
    assert not (tmp_path / "state").exists()


# ------------------------------------------------------------------ down (last: it ends the cluster)
def _made(cluster: Cluster) -> dict[str, Any]:
    state = json.loads((cluster.state_dir / "state.json").read_text())
    hosts = state["hosts"].values()
    pids = [(h[k]["pid"], h[k]["start"]) for h in hosts for k in ("nspawn", "watchdog") if h.get(k)]
    inits = [(p, proc_start_time(p)) for p in (cluster.init_pid(h["name"]) for h in hosts) if p]
    return {
        "state_dir": str(cluster.state_dir),
        "netns": [h["netns"] for h in hosts], "links": [h["veth"] for h in hosts] + [BRIDGE],
        "loops": {loop["device"]: d["backing"] for h in hosts for loop in h["loops"]
                  for d in state["disks"] if d["index"] == loop["disk"]},
        "cgroups": [p for h in hosts for p in h["cgroups"].values()],
        "pids": pids + inits,
    }


def assert_nothing_left(made: dict[str, Any]) -> None:
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in made["netns"] if n in netns], netns
    assert not [n for n in netns if n.startswith(NETNS_PREFIX)], netns
    links = _ip("-br", "link")
    for link in made["links"]:
        assert not re.search(rf"^{re.escape(link)}[@\s]", links, re.M), links
    assert NET_RANGE not in _ip("route", "show", "table", "all")
    backings = _loop_backings()
    assert not [d for d, b in backings.items() if b.startswith(made["state_dir"])], backings
    for dev, backing in made["loops"].items():
        assert backings.get(dev) != backing
    for path in made["cgroups"]:
        assert not Path(path).exists(), path
    for hierarchy in CGROUP_HIERARCHIES:
        parent = CGROUP_ROOT / hierarchy / CGROUP_PARENT
        assert not parent.exists() or not any(p.is_dir() for p in parent.iterdir()), parent
    mounts = Path("/proc/self/mountinfo").read_text()
    for needle in (made["state_dir"], f"/run/netns/{NETNS_PREFIX}", "lockdisk", "/dev/watchdog"):
        assert needle not in mounts, needle
    for pid, start in made["pids"]:
        assert proc_start_time(pid) != start, f"process {pid} is still there"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert made["state_dir"] not in cmdline, f"process {proc.name} still runs: {cmdline!r}"
    state_dir = Path(made["state_dir"])
    assert not state_dir.exists() or not any(state_dir.iterdir()), list(state_dir.iterdir())


def test_down_removes_everything_even_with_faults_active(cluster: Cluster) -> None:
    made = _made(cluster)
    assert len(made["pids"]) == 9  # 3 nspawn, 3 watchdogs, 3 inits
    cluster.fail_storage("node3")
    cluster.slow_storage("node1", iops=1)
    cluster.freeze("node2")
    ro_devices = [dev for dev, _ in made["loops"].items()]
    assert cluster.down() is True
    assert_nothing_left(made)
    for dev in ro_devices:  # the read-only flag must not outlive our use of a loop device
        ro = Path(f"/sys/block/{Path(dev).name}/ro")
        assert not ro.exists() or ro.read_text().strip() == "0", dev
    assert cluster.down() is False  # nothing left to do, and saying so is not an error


def test_interrupted_up_is_cleaned_by_down(cluster: Cluster, tmp_path: Path) -> None:
    assert not cluster.is_up()
    state_dir = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "testhosts", "--state", str(state_dir), "up", "2"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    kinds: list[str] = []
    while time.monotonic() < deadline:  # kill it once it has started hosts, before it is done
        try:
            kinds = [e["kind"] for e in json.loads((state_dir / "state.json").read_text())["undo"]]
        except (OSError, ValueError):
            kinds = []
        if "nspawn" in kinds:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "nspawn" in kinds, "up never got as far as starting hosts"
    half = Cluster(state_dir)
    made = _made(half)
    assert half.status()  # a half-made cluster can still be inspected
    with pytest.raises(HarnessError, match="interrupted up"):
        half.up(1)
    assert half.down() is True
    assert_nothing_left(made)
