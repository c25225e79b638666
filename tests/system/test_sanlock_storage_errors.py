"""A failed read through the sanlock socket, on a real loop device, driven by python3-sanlock: a resource
placed past the end of its device (the kernel returns no bytes, DirectStorage reports EIO) is answered
with sanlock's LEADER_READ (-220), as the JSON socket answers it (errors.storage_error), not with a bare
-EIO nor the "a bug" branch; the daemon keeps serving and holds what it held."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LoopFactory
from tests.support.daemons import DaemonFactory
from tests.system.test_sanlock_compat import compat_daemon, drive, err, ok

M = 1 << 20
SIZE = 4 * M
BEYOND = 8 * M  # a 1 MiB-aligned offset past the end of the device
LEADER_READ = -220  # python3-sanlock reports sanlock's own codes negative (errno values positive)


def test_eio_is_leader_read_on_the_sanlock_socket(daemons: DaemonFactory, loop_device: LoopFactory,
                                                  tmp_path: Path) -> None:
    dev = loop_device(size=SIZE).path
    d, sdir = compat_daemon(daemons, tmp_path)
    r = drive(sdir, [
        {"op": "write_lockspace", "args": ["LS", dev], "kwargs": {"iotimeout": 1}},
        {"op": "write_resource", "args": ["LS", "R1", [[dev, M]]]},
        {"op": "add_lockspace", "args": ["LS", 1, dev, 0]},
        {"op": "register"},
        {"op": "acquire", "args": ["LS", "R1", [[dev, M]]], "kwargs": {"slkfd": "$fd"}},
        {"op": "acquire", "args": ["LS", "RX", [[dev, BEYOND]]], "kwargs": {"slkfd": "$fd"}},
        {"op": "read_resource", "args": [dev, BEYOND]},
        {"op": "inquire", "kwargs": {"slkfd": "$fd"}},
    ])
    for res in r[:5]:
        ok(res)
    assert err(r[5]) == LEADER_READ
    assert err(r[6]) == LEADER_READ
    assert [x["resource"] for x in ok(r[7])] == ["R1"]  # the failed acquire took nothing from the held lease
    log = d.log_text()
    assert "LEADER_READ (-220)" in log and "Traceback" not in log and "failed unexpectedly" not in log
