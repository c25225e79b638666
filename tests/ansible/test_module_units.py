"""Pure parts of the modules: input checks, CLI strings, dump summaries, sysfs reading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.lockengine.cluster.plugins.module_utils import common
from ansible_collections.lockengine.cluster.plugins.module_utils.engine import area_at, geometry_of
from ansible_collections.lockengine.cluster.plugins.module_utils.liveness import (
    released_by_owner,
    summarize_lease,
)
from ansible_collections.lockengine.cluster.plugins.modules import watchdog_info

MIB = 1 << 20


def test_offsets_in_sanlock_forms() -> None:
    assert common.parse_offset("0") == 0
    assert common.parse_offset("3M") == 3 * MIB
    assert common.parse_offset(4 * MIB, align=2 * MIB) == 4 * MIB
    with pytest.raises(ValueError, match=r"offset: 3M \(3145728 bytes\) is not a multiple of the align size 2 MiB; "
                                         r"use e.g. 2M or 4M"):
        common.parse_offset("3M", align=2 * MIB)
    with pytest.raises(ValueError, match=r"offset: '1G' is not an offset"):
        common.parse_offset("1G")
    with pytest.raises(ValueError, match=r"not a multiple"):
        common.parse_offset(512)


def test_geometry_pairs_sanlock_refuses() -> None:
    common.check_geometry(512, "1M")
    common.check_geometry(4096, "8M")
    common.check_geometry(None, "2M")  # the engine takes the sector size from the device
    with pytest.raises(ValueError, match=r"align_size: 2M is not allowed with sector_size 512 .*use align_size: 1M"):
        common.check_geometry(512, "2M")


def test_names_and_ids() -> None:
    common.check_name("LS", "name")
    with pytest.raises(ValueError, match=r"name: 'a:b' contains ':'"):
        common.check_name("a:b", "name")
    with pytest.raises(ValueError, match=r"is 49 bytes long"):
        common.check_name("x" * 49, "lockspace")
    with pytest.raises(ValueError, match=r"host_id: 251 is out of range; host ids run from 1 to 250 for this"):
        common.check_host_id(251, geometry=(4096, MIB))
    with pytest.raises(ValueError, match=r"io_timeout: 256 is out of range"):
        common.check_io_timeout(256)
    with pytest.raises(ValueError, match=r"must be an absolute path"):
        common.check_path("dev/sdb")


def test_cli_strings_escape_colons_in_paths() -> None:
    assert common.lockspace_string("LS", 3, "/dev/disk/by-path/pci-0000:00:1f.2", 0) == \
        "LS:3:/dev/disk/by-path/pci-0000\\:00\\:1f.2:0"
    assert common.resource_string("LS", "R1", "/dev/sdb", MIB) == "LS:R1:/dev/sdb:1048576"
    assert common.resource_string("LS", "R1", "/dev/sdb", MIB, lver=8) == "LS:R1:/dev/sdb:1048576:8"


def _resource(**kw: Any) -> dict[str, Any]:
    area = {"offset": MIB, "kind": "resource", "lockspace": "LS", "resource": "R1", "sector_size": 512,
            "align_size": MIB, "num_hosts": 2000, "owner_id": 2, "owner_generation": 3, "lver": 7,
            "timestamp": 1300, "request": {"lver": 0, "force_mode": 0}, "shared": [], "dblocks": []}
    area.update(kw)
    return area


class _View:
    """LivenessView's interface with a fixed host table (the daemon's answer)."""

    def __init__(self, hosts: dict[int, dict[str, Any]] | None, reason: str | None = None) -> None:
        self.table, self.reason = hosts or {}, reason

    def hosts(self, lockspace: str) -> tuple[dict[int, dict[str, Any]], str | None]:
        return self.table, self.reason


def test_lease_summary_with_the_daemons_view() -> None:
    view = _View({2: {"host_id": 2, "generation": 3, "state": "LIVE", "host_name": "x.node2"},
                  4: {"host_id": 4, "generation": 1, "state": "DEAD"}})
    lease = summarize_lease(_resource(request={"lver": 8, "force_mode": 2}, shared=[{"host_id": 4, "generation": 1}]),
                            "/dev/sdb", view)
    assert lease["held"] and lease["owner_state"] == "live" and lease["owner_name"] == "x.node2"
    assert lease["owner_generation_current"] is True and lease["liveness_source"] == "daemon"
    assert lease["request"] == {"lver": 8, "force_mode": "graceful", "pending": True}
    assert lease["shared"] == [{"host_id": 4, "generation": 1, "state": "dead"}]
    assert "dblocks" not in lease


def test_lease_summary_without_the_daemon_is_unknown_with_a_reason() -> None:
    lease = summarize_lease(_resource(), "/dev/sdb", _View(None, "lockengined is not running"))
    assert lease["owner_state"] == "unknown" and lease["liveness_source"] == "none"
    assert lease["liveness_reason"] == "lockengined is not running"
    assert lease["owner_generation_current"] is None


def test_a_rejoined_owner_no_longer_holds_its_old_generation() -> None:
    view = _View({2: {"host_id": 2, "generation": 4, "state": "LIVE"}})
    assert summarize_lease(_resource(), "/dev/sdb", view)["owner_generation_current"] is False


def test_release_marked_only_in_the_owners_ballot_block_counts_as_free() -> None:
    released = _resource(dblocks=[{"host_id": 2, "lver": 7, "released": True}])
    stale = _resource(dblocks=[{"host_id": 2, "lver": 6, "released": True}])
    assert released_by_owner(released) and not released_by_owner(stale)
    assert summarize_lease(released, "/dev/sdb", _View(None, "x"))["held"] is False
    assert summarize_lease(stale, "/dev/sdb", _View(None, "x"))["held"] is True
    assert summarize_lease(_resource(timestamp=0), "/dev/sdb", _View(None, "x"))["held"] is False


def test_area_lookup_and_geometry() -> None:
    dump = {"areas": [{"offset": 0, "kind": "lockspace", "sector_size": 512, "align_size": MIB, "max_hosts": 2000},
                      _resource()]}
    assert area_at(dump, MIB)["resource"] == "R1"
    assert area_at(dump, 2 * MIB) is None
    assert geometry_of(area_at(dump, 0)) == {"sector_size": 512, "align_size": MIB, "max_hosts": 2000}


def _sysfs_device(root: Path, name: str, **attrs: str) -> None:
    d = root / name
    d.mkdir(parents=True)
    for key, value in attrs.items():
        (d / key).write_text(value + "\n")


def test_watchdog_devices_from_sysfs_and_dev_without_opening_them(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    _sysfs_device(sysfs, "watchdog1", identity="Software Watchdog", timeout="60", state="inactive",
                  nowayout="0", bootstatus="32", options="0x8180", dev="247:1")  # as the kernel prints them
    _sysfs_device(sysfs, "watchdog0", identity="iTCO_wdt", timeout="30", state="active", nowayout="1")
    os.mkfifo(dev / "watchdog10")  # the harness's virtual watchdog: a FIFO, no sysfs
    (dev / "watchdog").write_text("")  # neither device nor FIFO
    devices = watchdog_info.list_devices(str(sysfs), str(dev))
    assert [d["name"] for d in devices] == ["watchdog0", "watchdog1", "watchdog10", "watchdog"]
    wd0, wd1, fifo, legacy = devices
    assert (wd0["kind"], wd0["sysfs"], wd0["timeout"], wd0["nowayout"], wd0["state"]) == \
        ("missing", True, 30, True, "active")
    assert (wd1["identity"], wd1["timeout"], wd1["bootstatus"], wd1["dev"]) == ("Software Watchdog", 60, 32, "247:1")
    assert (wd1["options"], wd1["timeout_settable"], wd1["last_boot_watchdog_reset"]) == (0x8180, True, True)
    assert (wd0["options"], wd0["timeout_settable"], wd0["last_boot_watchdog_reset"]) == (None, None, None)
    assert (fifo["kind"], fifo["sysfs"], fifo["timeout"]) == ("fifo", False, None)
    assert legacy["kind"] == "other"
    only = watchdog_info.list_devices(str(sysfs), str(dev), only=str(dev / "watchdog10"))
    assert [d["kind"] for d in only] == ["fifo"]


def test_watchdog_fire_timeout_check() -> None:
    base = {"kind": "char", "timeout": 30, "options": 0x8180, "timeout_settable": True,
            "min_timeout": 1, "max_timeout": 65535}
    check = watchdog_info.fire_timeout_check
    assert check(dict(base, timeout=60), 60) == (True, "its timeout is 60 s")
    assert check(base, 60)[0] is True and "WDIOC_SETTIMEOUT" in check(base, 60)[1]
    assert check(dict(base, max_timeout=0), 60)[0] is True  # 0: the driver gives no maximum
    assert check(dict(base, max_timeout=40), 60) == (False, "the driver's largest timeout is 40 s")
    assert check(dict(base, min_timeout=90), 60) == (False, "the driver's smallest timeout is 90 s")
    assert check(dict(base, options=0x8100, timeout_settable=False), 60)[0] is False
    assert check(dict(base, options=None, timeout_settable=None), 60)[0] is False
    assert check(dict(base, kind="fifo"), 60)[0] is None


def test_watchdog_holders_without_opening(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    null = os.stat("/dev/null").st_rdev
    for pid, comm, target in ((7, "wdmd", "/dev/null"), (9, "bash", str(tmp_path))):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "fd" / "3").symlink_to(target)
    numbers = {(os.major(null), os.minor(null))}
    assert watchdog_info.holders(numbers, str(proc)) == [{"pid": 7, "comm": "wdmd"}]
    assert watchdog_info.holders(set(), str(proc)) == []
    # watchdog0 and the legacy /dev/watchdog (10:130) are one device
    assert watchdog_info._numbers({"name": "watchdog0", "dev": "247:0"}, []) == {(247, 0), (10, 130)}
    assert watchdog_info._numbers({"name": "watchdog1", "dev": "247:1"}, []) == {(247, 1)}


def test_softdog_detection(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.write_text("softdog 16384 0 - Live 0x0000000000000000\next4 1 0 - Live 0x0\n")
    assert watchdog_info.softdog_loaded(str(modules)) is True
    modules.write_text("ext4 1 0 - Live 0x0\n")
    assert watchdog_info.softdog_loaded(str(modules)) is False
    assert watchdog_info.softdog_loaded(str(tmp_path / "absent")) is None
