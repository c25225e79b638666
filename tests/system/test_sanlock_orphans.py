"""PERSISTENT leases and orphans through the sanlock socket (lockengine/daemon/orphans.py), driven by the
real ``sanlock client`` CLI (libsanlock: ``acquire -P 1``, ``acquire -O 1``, ``release -O 1``) and
python3-sanlock, on a real loop device: a PERSISTENT lease outlives its client and stays ours on disk;
a plain acquire of it gets -EUCLEAN, ORPHAN_ONLY of a lease that is no orphan -ENOENT; ACQUIRE_ORPHAN
adopts it without a ballot; REL_ORPHAN releases it on disk; an orphan blocks rem_lockspace."""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

from devkit.sanlockd import SanlockDaemon
from tests.conftest import LoopFactory
from tests.support.daemons import FIRE, IO, DaemonFactory, Holder, TestDaemon, read_leader
from tests.system.test_daemon_recovery import FifoWatchdog, blockdev, wait_failed
from tests.system.test_sanlock_compat import compat_daemon, drive, err, ok, sanlock_cli
from tests.system.test_sanlock_lvb import setup
from tests.system.test_sanlock_mixed_compat import Session, sanlock_peer  # noqa: F401 - a fixture of this test

M = 1 << 20
IDLIVE = -243


def owners(sdir: Path, dev: str) -> list[tuple[int, int]]:
    """(host_id, generation) of R1's owner on disk, as read_resource_owners reports it."""
    res = ok(drive(sdir, [{"op": "read_resource_owners", "args": ["LS", "R1", [[dev, M]]]}])[0])
    return sorted((o["host_id"], o["generation"]) for o in res)


def held(d: TestDaemon, want: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """(resource, pid) of the daemon's table once it shows ``want`` (a client's exit is handled in the
    background); what it shows after 300 looks otherwise."""
    got: list[tuple[str, int]] = []
    for _ in range(300):
        got = [(r["resource"], r["pid"]) for r in d.call("status")["resources"]]
        if got == want:
            break
        time.sleep(0.1)
    return got


def holder(sdir: Path) -> Session:
    """A registered python3-sanlock process that waits for 'go' and then exits."""
    s = Session(sdir, [{"op": "register"}, {"op": "wait"}])
    ok(s.result())
    return s


def cli(sanlock: str, sdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sanlock_cli(sanlock, sdir, *args)


def rc(out: subprocess.CompletedProcess[str]) -> str:
    """The result libsanlock printed ("acquire done N" / "release done N")."""
    return out.stdout + out.stderr


def test_persistent_lease_becomes_an_orphan_adopted_and_released(
        daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path, sanlock: str) -> None:
    dev = loop_device(size=8 * M).path
    d, sdir = compat_daemon(daemons, tmp_path)
    setup(sdir, dev)
    res = f"LS:R1:{dev}:{M}"
    a = holder(sdir)
    try:
        out = cli(sanlock, sdir, "acquire", "-r", res, "-p", str(a.proc.pid), "-P", "1")
        assert "acquire done 0" in rc(out), rc(out)
        (gen,) = {g for _, g in owners(sdir, dev)}
        a.go()
        assert a.proc.wait(timeout=30) == 0
        # The client is gone; the lease is not released: held by the orphan holder, ours on disk.
        assert held(d, [("R1", 0)]) == [("R1", 0)]
        assert owners(sdir, dev) == [(1, gen)]
    finally:
        a.stop()
    b = Session(sdir, [
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}},
        {"op": "wait"}, {"op": "inquire", "kwargs": {"slkfd": "$fd"}}, {"op": "wait"},
    ])
    try:
        ok(b.result())
        assert err(b.result()) == errno.EUCLEAN  # an orphan is not acquired by a plain acquire
        out = cli(sanlock, sdir, "rem_lockspace", "-s", f"LS:1:{dev}:0")
        assert f"done {-errno.EBUSY}" in rc(out), rc(out)  # the orphan keeps the host id
        out = cli(sanlock, sdir, "acquire", "-r", res, "-p", str(b.proc.pid), "-O", "1")
        assert "acquire done 0" in rc(out), rc(out)  # adopted
        b.go()
        ok(b.result())
        assert [(x["lockspace"], x["resource"]) for x in ok(b.result())] == [("LS", "R1")]
        assert [(r["resource"], r["pid"]) for r in d.call("status")["resources"]] == [("R1", b.proc.pid)]
        assert owners(sdir, dev) == [(1, gen)]  # no ballot: the same lease on disk
        b.go()
        assert b.proc.wait(timeout=30) == 0
    finally:
        b.stop()
    # Adopted without PERSISTENT: its client's exit released it on disk.
    assert held(d, []) == []
    assert owners(sdir, dev) == []
    c = holder(sdir)
    try:
        out = cli(sanlock, sdir, "acquire", "-r", res, "-p", str(c.proc.pid), "-O", "1")
        # ACQUIRE_ORPHAN of a free lease acquires it (only ORPHAN_ONLY refuses).
        assert "acquire done 0" in rc(out), rc(out)
        out = cli(sanlock, sdir, "release", "-r", res, "-p", str(c.proc.pid))
        assert "release done 0" in rc(out), rc(out)
        out = cli(sanlock, sdir, "acquire", "-r", res, "-p", str(c.proc.pid), "-P", "1")
        assert "acquire done 0" in rc(out), rc(out)
        out = cli(sanlock, sdir, "release", "-r", res, "-p", str(c.proc.pid))
        # An explicit release of a PERSISTENT lease releases it: orphans come only from exits.
        assert "release done 0" in rc(out), rc(out)
        assert owners(sdir, dev) == []
        out = cli(sanlock, sdir, "acquire", "-r", res, "-p", str(c.proc.pid), "-P", "1")
        assert "acquire done 0" in rc(out), rc(out)
        c.go()
        assert c.proc.wait(timeout=30) == 0
    finally:
        c.stop()
    assert held(d, [("R1", 0)]) == [("R1", 0)]
    assert owners(sdir, dev) != []
    e = holder(sdir)
    try:
        out = cli(sanlock, sdir, "release", "-r", f"LS:R2:{dev}:{2 * M}", "-p", str(e.proc.pid), "-O", "1")
        assert "release done 0" in rc(out), rc(out)  # no such orphan: none released
        out = cli(sanlock, sdir, "release", "-r", res, "-p", str(e.proc.pid), "-O", "1")
        assert "release done 1" in rc(out), rc(out)  # sanlock answers how many it released
        assert owners(sdir, dev) == []
        assert d.call("status")["resources"] == []
        e.go()
    finally:
        e.stop()
    out = cli(sanlock, sdir, "rem_lockspace", "-s", f"LS:1:{dev}:0")
    assert "done 0" in rc(out), rc(out)
    assert "Traceback" not in d.log_text()


def test_an_orphan_in_a_failed_lockspace_keeps_the_watchdog_from_being_petted(
        daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path, sanlock: str,
        holders: list[Holder]) -> None:
    """The one rule with an orphan: host 1 loses its storage while it holds an orphan (no process to
    stop). Recovery must not end — the watchdog is not petted from the lease's expiry on, so a real
    host is reset before host 2 may take the lease — until the orphan is released; host 2 (blocking
    in acquire all along) gets the lease only after host 1 counts as dead, and host 1 writes nothing."""
    d1 = loop_device(size=8 * M)
    d2 = loop_device(backing=d1.backing)
    wd = FifoWatchdog(tmp_path / "watchdog")
    try:
        h1, sdir = compat_daemon(daemons, tmp_path, name="host1", watchdog=str(wd.path))
        setup(sdir, d1.path)
        h2 = daemons("host2")
        h2.join("LS", 2, d2.path, wait=False)
        h2.wait_joined("LS")
        a = holder(sdir)
        try:
            out = cli(sanlock, sdir, "acquire", "-r", f"LS:R1:{d1.path}:{M}", "-p", str(a.proc.pid), "-P", "1")
            assert "acquire done 0" in rc(out), rc(out)
            a.go()
            assert a.proc.wait(timeout=30) == 0
        finally:
            a.stop()
        assert held(h1, [("R1", 0)]) == [("R1", 0)]

        blockdev("--setro", d1.path)
        try:
            last = wait_failed(h1, "LS", 8 * IO + 5)
            taker = h2.holder(f"LS:R1:{d2.path}:1M")  # blocks until host 1 counts as dead
            holders.append(taker)
            took = time.monotonic()
            assert taker.acquired is not None, taker.error
            # All that time the orphan was held on host 1 and recovery could not end: no pet after
            # the lease expired, so a real watchdog reset host 1 before host 2 took the lease.
            assert held(h1, [("R1", 0)]) == [("R1", 0)]
            before = [t for t in wd.pets if t <= last + 8 * IO]
            during = [t for t in wd.pets if last + 8 * IO < t <= took]
            assert before, "the watchdog was never petted"
            assert during == [], f"petted {len(during)} times after the lease expired, with an orphan held"
            assert max(before) + FIRE <= took
            log = h1.log_text()
            assert "LS:R1" in log and "no process to stop" in log and "kill pid 0" not in log  # nothing signalled

            # REL_ORPHAN ends it: no disk write (the lockspace is lost), recovery ends, petting resumes.
            e = holder(sdir)
            try:
                out = cli(sanlock, sdir, "release", "-r", f"LS:R1:{d1.path}:{M}", "-p", str(e.proc.pid), "-O", "1")
                assert "release done 1" in rc(out), rc(out)
            finally:
                e.stop()
            released = time.monotonic()
            for _ in range(100):
                if [t for t in wd.pets if t > released]:
                    break
                time.sleep(0.1)
            assert [t for t in wd.pets if t > released], "petting did not resume after the orphan was released"
        finally:
            blockdev("--setrw", d1.path)
        assert read_leader(d2.path, "LS", "R1", M)["owner_id"] == 2  # host 1 wrote nothing over host 2
        assert held(h1, []) == []
    finally:
        wd.close()


def test_set_config_used_keeps_the_lockspace_held(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                                  sanlock: str) -> None:
    """``sanlock client set_config``: USED makes the lockspace count as held by something outside
    lockengine — rem_lockspace -EBUSY, and when it fails the watchdog is not petted after the lease's
    expiry until UNUSED; the *_BY_ORPHANS flags are accepted; an unknown lockspace is -ENOENT."""
    dev = loop_device(size=8 * M)
    wd = FifoWatchdog(tmp_path / "watchdog")
    try:
        d, sdir = compat_daemon(daemons, tmp_path, watchdog=str(wd.path))
        setup(sdir, dev.path)
        ls = f"LS:1:{dev.path}:0"

        def config(*args: str) -> str:
            return rc(cli(sanlock, sdir, "set_config", *args))

        assert "done 0" in config("-s", ls, "-O", "1")
        assert "done 0" in config("-s", ls, "-O", "0")
        assert f"done {-errno.ENOENT}" in config("-s", f"NOPE:1:{dev.path}:0", "-u", "1")
        assert "done 0" in config("-s", ls, "-u", "1")
        assert f"done {-errno.EBUSY}" in rc(cli(sanlock, sdir, "rem_lockspace", "-s", ls))
        blockdev("--setro", dev.path)
        try:
            last = wait_failed(d, "LS", 8 * IO + 5)
            # Recovery cannot end while USED: poll past the expiry until the supervisor says so.
            for _ in range(300):
                if "set_config USED" in d.log_text() and "no process to stop" in d.log_text():
                    break
                time.sleep(0.1)
            assert "no process to stop" in d.log_text()
            assert d.call("inq_lockspace", lockspace="LS")["state"] == "FAILED"
            assert f"done {-errno.ENOSPC}" in config("-s", ls, "-u", "1")  # a failed lockspace: not again
            assert "done 0" in config("-s", ls, "-u", "0")
            cleared = time.monotonic()
            for _ in range(100):
                if [t for t in wd.pets if t > cleared]:
                    break
                time.sleep(0.1)
        finally:
            blockdev("--setrw", dev.path)
        assert [t for t in wd.pets if t <= last + 8 * IO], "the watchdog was never petted"
        assert [t for t in wd.pets if last + 8 * IO < t <= cleared] == []
        assert [t for t in wd.pets if t > cleared], "petting did not resume after set_config UNUSED"
    finally:
        wd.close()


def test_orphans_in_a_mixed_cluster(daemons: DaemonFactory, loop_device: LoopFactory, tmp_path: Path,
                                    sanlock: str, sanlock_peer: SanlockDaemon) -> None:  # noqa: F811
    """lockengined (host 1) and a real sanlock daemon (host 2) share a lockspace. An orphan left on
    either host is adopted only there: the other host's ACQUIRE_ORPHAN finds no orphan and runs a
    ballot, which the live owner refuses (-243), as does a plain acquire; each orphan's release lets
    the other host take the lease."""
    dev = loop_device(size=8 * M).path
    d, ours = compat_daemon(daemons, tmp_path, watchdog_fire_timeout=60, kill_grace=40)
    theirs = sanlock_peer.run_dir
    setup(ours, dev)
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 2, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    for here, other, res in ((ours, theirs, f"LS:R1:{dev}:{M}"), (theirs, ours, f"LS:R2:{dev}:{2 * M}")):
        a = holder(here)
        try:
            out = cli(sanlock, here, "acquire", "-r", res, "-p", str(a.proc.pid), "-P", "1")
            assert "acquire done 0" in rc(out), rc(out)
            a.go()
            assert a.proc.wait(timeout=30) == 0
        finally:
            a.stop()
        b = holder(other)
        try:
            for flags in ((), ("-O", "1")):  # not an orphan over there: a ballot, refused by the live owner
                out = cli(sanlock, other, "acquire", "-r", res, "-p", str(b.proc.pid), *flags)
                assert f"acquire done {IDLIVE}" in rc(out), (flags, rc(out))
        finally:
            b.stop()
        c = holder(here)
        try:
            out = cli(sanlock, here, "acquire", "-r", res, "-p", str(c.proc.pid), "-O", "1", "-P", "1")
            assert "acquire done 0" in rc(out), rc(out)  # adopted where it was left (and PERSISTENT again)
            c.go()
            assert c.proc.wait(timeout=30) == 0
        finally:
            c.stop()
        e = holder(here)
        try:
            out = cli(sanlock, here, "release", "-r", res, "-p", str(e.proc.pid), "-O", "1")
            assert "release done 1" in rc(out), rc(out)
        finally:
            e.stop()
        f = holder(other)
        try:
            out = cli(sanlock, other, "acquire", "-r", res, "-p", str(f.proc.pid))
            assert "acquire done 0" in rc(out), rc(out)  # released on disk: the other host takes it
        finally:
            f.stop()
    assert "Traceback" not in d.log_text()
