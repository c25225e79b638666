"""A real ``sanlock daemon -w 0`` and lockengined share one lockspace (issue 4, "mixed peer").

Host 1 is lockengined, host 2 is sanlock 3.8.5, both with io_timeout 1 and the same 60 s watchdog
fire timeout (sanlock 3.8.5 hard-codes 60, and every host of a lockspace must agree). Each must see
the other live, refuse a lease the other holds, take it after release, and honour the other's
graceful and force requests.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.sanlockd import SanlockDaemon
from lockengine.ondisk import parse_size
from tests.support.daemons import DaemonFactory, Holder, TestDaemon, init_disk, read_leader

IO = 1
FIRE = 60  # sanlock 3.8.5's constant: a mixed lockspace must use it on every host


@pytest.fixture
def sanlock_peer(tmp_path: Path) -> Iterator[SanlockDaemon]:
    d = SanlockDaemon(tmp_path / "sanlock", "sanlock-peer")
    d.start()
    try:
        yield d
    finally:
        d.stop()


class SanlockHolder:
    """``sanlock client command -r RES -c /bin/sleep 600``: holds RES while sleep runs."""

    def __init__(self, peer: SanlockDaemon, resource: str) -> None:
        self.peer = peer
        self.resource = resource
        head, off = resource.rsplit(":", 1)
        self.canonical = f"{head}:{parse_size(off, 'offset')}"  # sanlock status prints byte offsets
        self.proc = subprocess.Popen(
            [peer.binary, "client", "command", "-r", resource, "-c", "/bin/sleep", "600"],
            env=peer.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def wait_held(self, timeout: float) -> bool:
        """True once sanlock lists the lease for our pid; False if the command gave up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if re.search(rf"^r {re.escape(self.canonical)}:\d+ p {self.proc.pid}$", self.peer.client("status").stdout, re.M):
                return True
            time.sleep(0.1)
        raise AssertionError(f"sanlock neither held nor refused {self.resource} in {timeout} s")

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stdout is not None
        return self.proc.stdout.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def sanlock_holders() -> Iterator[list[SanlockHolder]]:
    made: list[SanlockHolder] = []
    yield made
    for h in made:
        h.stop()


def sanlock_hosts(peer: SanlockDaemon) -> dict[int, str]:
    """``sanlock client gets -h 1``: host id -> LIVE/FAIL/DEAD/FREE/UNKNOWN as sanlock sees it."""
    out = peer.client("gets", "-h", "1").stdout
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^h (\d+) gen \d+ timestamp \d+ (\w+)", out, re.M)}


def our_hosts(d: TestDaemon) -> dict[int, str]:
    with d.client() as c:
        doc: dict[str, Any] = c.host_status("LS")
    return {int(h["host_id"]): str(h["state"]) for h in doc["hosts"]}


def wait_for(what: str, check: Any, timeout: float, log: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}" + (f"\n{log()}" if log else "")
        time.sleep(0.2)


def our_holder_when_free(d: TestDaemon, resource: str, timeout: float, holders: list[Holder]) -> Holder:
    """Start holders until one acquires (the other side releases asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        h = d.holder(resource)
        holders.append(h)
        if h.acquired is not None:
            return h
        assert h.error is not None and h.error["name"] == "ACQUIRE_IDLIVE", h.error
        assert time.monotonic() < deadline, f"lockengine never got {resource}: {h.error}"
        time.sleep(0.3)


def sanlock_holder_when_free(peer: SanlockDaemon, resource: str, timeout: float,
                             made: list[SanlockHolder]) -> SanlockHolder:
    deadline = time.monotonic() + timeout
    while True:
        h = SanlockHolder(peer, resource)
        made.append(h)
        if h.wait_held(10):
            return h
        out = h.output()
        assert "-243" in out, out
        assert time.monotonic() < deadline, f"sanlock never got {resource}: {out}"
        time.sleep(0.3)


def test_sanlock_and_lockengine_share_a_lockspace(
    daemons: DaemonFactory, loop_device: Any, sanlock_peer: SanlockDaemon,
    holders: list[Holder], sanlock_holders: list[SanlockHolder],
) -> None:
    disk = loop_device()
    path = str(disk)
    init_disk(path, resources=("R1", "R2", "R3", "R4"))
    ours = daemons("le-peer", io_timeout=IO, watchdog_fire_timeout=FIRE, kill_grace=40)

    # Both join: sanlock as host 2 (its add_lockspace blocks ~2·io + 1 s), lockengine as host 1.
    t = time.monotonic()
    sanlock_peer.client("add_lockspace", "-s", f"LS:2:{path}:0", "-o", str(IO))
    assert time.monotonic() - t < 2 * IO + 3
    ours.join("LS", 1, path, 0)

    # Each sees the other live (after a renewal or two shows a change).
    wait_for("lockengine to see sanlock's host 2 LIVE", lambda: our_hosts(ours).get(2) == "LIVE", 8 * IO)
    wait_for("sanlock to see lockengine's host 1 LIVE", lambda: sanlock_hosts(sanlock_peer).get(1) == "LIVE", 8 * IO)
    assert our_hosts(ours).get(1) == "LIVE" and sanlock_hosts(sanlock_peer).get(2) == "LIVE"

    r1, r2 = f"LS:R1:{path}:1M", f"LS:R2:{path}:2M"

    # sanlock holds R1: lockengine is refused with ACQUIRE_IDLIVE (-243) ...
    s_hold = SanlockHolder(sanlock_peer, r1)
    sanlock_holders.append(s_hold)
    assert s_hold.wait_held(10), s_hold.output()
    refused = ours.holder(r1)
    holders.append(refused)
    assert refused.error is not None and (refused.error["name"], refused.error["code"]) == ("ACQUIRE_IDLIVE", -243)
    assert read_leader(path, "LS", "R1", 1 << 20)["owner_id"] == 2
    # ... and after sanlock releases (its holder exits), lockengine takes it.
    s_hold.stop()
    mine = our_holder_when_free(ours, r1, 10, holders)
    assert read_leader(path, "LS", "R1", 1 << 20)["owner_id"] == 1

    # lockengine holds R2: sanlock is refused with -243 ...
    l_hold = ours.holder(r2)
    holders.append(l_hold)
    assert l_hold.acquired is not None
    s_try = SanlockHolder(sanlock_peer, r2)
    sanlock_holders.append(s_try)
    assert not s_try.wait_held(10)
    assert "-243" in s_try.output()
    # ... and after our holder exits, our daemon releases it and sanlock takes it.
    l_hold.stop()
    s_r2 = sanlock_holder_when_free(sanlock_peer, r2, 10, sanlock_holders)
    assert read_leader(path, "LS", "R2", 2 << 20)["owner_id"] == 2

    # Requests from lockengine reach sanlock's holders: graceful (SIGTERM kills sleep), then force.
    rc, doc = ours.cli_json("request", "-r", r2, "-f", "graceful")
    assert rc == 0 and doc["ok"] is True and doc["owner_id"] == 2, doc
    wait_for("sanlock's holder to exit on a graceful request", lambda: s_r2.proc.poll() is not None, 4 * IO + 5)
    got_r2 = our_holder_when_free(ours, r2, 10, holders)
    assert read_leader(path, "LS", "R2", 2 << 20)["owner_id"] == 1

    s_r3 = sanlock_holder_when_free(sanlock_peer, f"LS:R3:{path}:3M", 10, sanlock_holders)
    rc, doc = ours.cli_json("request", "-r", f"LS:R3:{path}:3M", "-f", "force")
    assert rc == 0 and doc["owner_id"] == 2, doc
    # sanlock examines a sender's requests at most once per set_bitmap_seconds (6·io).
    wait_for("sanlock's holder to be killed on a force request", lambda: s_r3.proc.poll() is not None, 10 * IO + 5,
             lambda: sanlock_peer.log_tail(30) + "\n--- lockengined ---\n" + "\n".join(ours.log_text().splitlines()[-60:]))
    assert s_r3.proc.returncode == -9 or s_r3.proc.returncode != 0
    our_holder_when_free(ours, f"LS:R3:{path}:3M", 10, holders)
    assert read_leader(path, "LS", "R3", 3 << 20)["owner_id"] == 1

    # Requests from sanlock reach lockengine's holders: graceful on R1, force on R2.
    for res, off, mode, ours_holding in ((r1, 1 << 20, "2", mine), (r2, 2 << 20, "1", got_r2)):
        lver = read_leader(path, "LS", res.split(":")[1], off)["lver"]
        out = sanlock_peer.client("request", "-r", f"{res}:{lver + 1}", "-f", mode, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(f"our holder of {res} to exit on sanlock's request -f {mode}",
                 lambda h=ours_holding: h.proc.poll() is not None, 10 * IO + 5)  # type: ignore[misc]
        sanlock_holder_when_free(sanlock_peer, res, 10, sanlock_holders)
        assert read_leader(path, "LS", res.split(":")[1], off)["owner_id"] == 2

    # Never both: at the end sanlock holds R1 and R2, lockengine R3, and the disk agrees.
    owners = {r: read_leader(path, "LS", r, o)["owner_id"] for r, o in (("R1", 1 << 20), ("R2", 2 << 20), ("R3", 3 << 20))}
    assert owners == {"R1": 2, "R2": 2, "R3": 1}
