"""num_hosts on acquire (SANLK_RES_NUM_HOSTS, the resource's data32) through lockengined's sanlock socket,
sent by a raw sanlock-protocol client (python3-sanlock 3.8.5 cannot send it), judged on disk by the real
`sanlock direct read_leader`; a host whose id is above the new num_hosts is refused (LEADER_NUMHOSTS), by
lockengined and by a real sanlock daemon."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from devkit.sanlockd import SanlockDaemon
from lockengine.client import DaemonError
from lockengine.daemon.sanlock import wire
from lockengine.daemon.sanlock.wire import Header, WireDisk, WireOptions, WireResource
from lockengine.errors import CODES
from tests.conftest import LoopFactory
from tests.interop.test_direct_interop import sanlock_leader
from tests.support.daemons import DaemonFactory
from tests.system.test_sanlock_compat import compat_daemon, drive, err, ok
from tests.system.test_sanlock_mixed_compat import sanlock_peer  # noqa: F401 (a fixture)
from tests.system.test_sanlock_socket import M, Raw, setup_lockspace, sock_path


def acquire(c: Raw, dev: str, name: str, offset: int, num_hosts: int | None) -> int:
    res = WireResource("LS", name, flags=wire.RES_NUM_HOSTS if num_hosts is not None else 0,
                       data32=num_hosts or 0, disks=(WireDisk(dev, offset),))
    payload = res.encode() + WireOptions("raw").encode()
    return c.call(Header(cmd=wire.ACQUIRE, length=32 + len(payload), data=1, data2=wire.PID_SELF), payload)[0]


def release_all(c: Raw) -> None:
    assert c.call(Header(cmd=wire.RELEASE, cmd_flags=wire.REL_ALL, data2=wire.PID_SELF))[0] == 0


def registered(path: Path) -> Raw:
    c = Raw(path)
    c.send(Header(cmd=wire.REGISTER).encode())
    return c


def test_num_hosts_on_acquire_is_written_kept_and_enforced(daemons: DaemonFactory, loop_device: LoopFactory,
                                                             tmp_path: Path, sanlock: str) -> None:
    dev = loop_device(size=8 * M).path
    d1, sdir1 = compat_daemon(daemons, tmp_path, "h1")
    setup_lockspace(d1, sdir1, dev)  # host 1; R1 at 1M and R2 at 2M, num_hosts 2000
    r1, r2 = f"LS:R1:{dev}:{M}", f"LS:R2:{dev}:{2 * M}"
    assert sanlock_leader(sanlock, "-r", r1)["num_hosts"] == "2000"

    # The JSON socket (lockengine client acquire -n): R2 to 6; a bad one names the field, writes nothing.
    with d1.client() as jc:
        jc.register()
        with pytest.raises(DaemonError) as e:
            jc.acquire([f"LS:R2:{dev}:{2 * M}"], num_hosts=2001)
        assert (e.value.name, e.value.field) == ("EINVAL", "num_hosts")
        assert sanlock_leader(sanlock, "-r", r2)["lver"] == "0"
        jc.acquire([f"LS:R2:{dev}:{2 * M}"], num_hosts=6)
        assert sanlock_leader(sanlock, "-r", r2)["num_hosts"] == "6"
        jc.release()
        # The CLI, for this registered process: -n 7; a -n that is no number names the field.
        bad = d1.cli("acquire", "-r", r2, "-p", str(os.getpid()), "-n", "seven")
        assert bad.returncode != 0 and "num_hosts" in bad.stderr + bad.stdout
        d1.cli("acquire", "-r", r2, "-p", str(os.getpid()), "-n", "7", check=True)
        assert sanlock_leader(sanlock, "-r", r2)["num_hosts"] == "7"
        jc.release()

    c = registered(sock_path(sdir1))
    # Bad values through the sanlock socket: -EINVAL, nothing written, nothing held.
    for bad in (2001, 70000):
        assert acquire(c, dev, "R2", 2 * M, bad) == -errno.EINVAL
    assert (sanlock_leader(sanlock, "-r", r2)["lver"], sanlock_leader(sanlock, "-r", r2)["num_hosts"]) == ("2", "7")
    assert "num_hosts" in d1.log_text()

    # Lowered to 4 by the winning ballot; the release keeps it.
    assert acquire(c, dev, "R1", M, 4) == 0
    leader = sanlock_leader(sanlock, "-r", r1)
    assert (leader["num_hosts"], leader["owner_id"], leader["lver"]) == ("4", "1", "1")
    release_all(c)
    leader = sanlock_leader(sanlock, "-r", r1)
    assert (leader["num_hosts"], leader["timestamp"]) == ("4", "0")
    # data32 0 with the flag keeps it, as in sanlock.
    assert acquire(c, dev, "R1", M, 0) == 0
    assert sanlock_leader(sanlock, "-r", r1)["num_hosts"] == "4"
    release_all(c)

    # Host 5 (a second lockengined on the same disk) is above num_hosts 4: refused, LEADER_NUMHOSTS.
    d2, sdir2 = compat_daemon(daemons, tmp_path, "h2")
    ok(drive(sdir2, [{"op": "add_lockspace", "args": ["LS", 5, dev, 0]}])[0])
    c5 = registered(sock_path(sdir2))
    assert acquire(c5, dev, "R1", M, None) == CODES["LEADER_NUMHOSTS"]
    # ... and may not lower R2 below its own id (it could not read its own leader back).
    assert acquire(c5, dev, "R2", 2 * M, 4) == -errno.EINVAL
    assert sanlock_leader(sanlock, "-r", r2)["lver"] == "2"  # as the CLI's acquire left it
    # Raising is served: host 1 raises R1 to 8, then host 5 acquires it.
    assert acquire(c, dev, "R1", M, 8) == 0
    assert sanlock_leader(sanlock, "-r", r1)["num_hosts"] == "8"
    release_all(c)
    assert acquire(c5, dev, "R1", M, None) == 0
    leader = sanlock_leader(sanlock, "-r", r1)
    assert (leader["owner_id"], leader["num_hosts"]) == ("5", "8")
    release_all(c5)
    c5.close()
    c.close()


def test_a_real_sanlock_host_above_our_num_hosts_is_refused(daemons: DaemonFactory, loop_device: LoopFactory,
                                                            tmp_path: Path, sanlock: str,
                                                            sanlock_peer: SanlockDaemon) -> None:  # noqa: F811
    dev = loop_device(size=8 * M).path
    d1, ours = compat_daemon(daemons, tmp_path, "h1", watchdog_fire_timeout=60, kill_grace=40)
    setup_lockspace(d1, ours, dev)
    theirs = sanlock_peer.run_dir
    ok(drive(theirs, [{"op": "add_lockspace", "args": ["LS", 5, dev, 0], "kwargs": {"iotimeout": 1}}])[0])
    c = registered(sock_path(ours))
    assert acquire(c, dev, "R1", M, 4) == 0
    release_all(c)
    steps = [{"op": "register"}, {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}}]
    assert err(drive(theirs, steps)[1]) == CODES["LEADER_NUMHOSTS"]
    assert sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:{M}")["lver"] == "1"  # sanlock wrote nothing
    # Raised again by lockengine: sanlock reads our leader and takes the lease.
    assert acquire(c, dev, "R1", M, 8) == 0
    release_all(c)
    r = drive(theirs, [*steps, {"op": "release", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}}])
    ok(r[1])
    ok(r[2])
    leader = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:{M}")
    assert (leader["owner_id"], leader["num_hosts"], leader["lver"]) == ("5", "8", "3")
    c.close()
    ok(drive(theirs, [{"op": "rem_lockspace", "args": ["LS", 5, dev, 0]}])[0])
