"""Watchdog facts read without opening a device: decimal bootstatus and the CARDRESET bit, hex options,
whether the daemon can set a device's timeout, and which processes hold a device open (/proc)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lockengine.errors import LockError
from lockengine.watchdog import linux as linux_mod
from lockengine.watchdog.linux import LinuxWatchdog
from lockengine.watchdog.sysfs import (
    WDIOF_CARDRESET,
    WDIOF_SETTIMEOUT,
    holders_of,
    last_boot_was_watchdog_reset,
    list_watchdogs,
    timeout_check,
)


def _entry(root: Path, name: str, files: dict[str, str]) -> None:
    d = root / "class" / "watchdog" / name
    d.mkdir(parents=True)
    for k, v in files.items():
        (d / k).write_text(v + "\n")


def test_bootstatus_is_decimal_and_options_hex(tmp_path: Path) -> None:
    # As watchdog_dev.c prints them: bootstatus "%u", options and status "0x%x".
    _entry(tmp_path, "watchdog0", {"bootstatus": "32", "options": "0x8180", "status": "0x8000"})
    _entry(tmp_path, "watchdog1", {"bootstatus": "0"})
    _entry(tmp_path, "watchdog2", {"identity": "no bootstatus"})
    w0, w1, w2 = list_watchdogs(str(tmp_path), str(tmp_path / "dev"))
    assert w0["bootstatus"] == 32 == WDIOF_CARDRESET  # read as hex it would be 50
    assert w0["options"] == 0x8180 and w0["status"] == 0x8000
    assert last_boot_was_watchdog_reset(w0) is True
    assert last_boot_was_watchdog_reset(w1) is False
    assert last_boot_was_watchdog_reset(w2) is None


@pytest.mark.parametrize(
    ("entry", "ok", "why"),
    [
        ({"timeout": 60}, True, "timeout is 60"),
        ({"timeout": 30, "options": WDIOF_SETTIMEOUT}, True, "sets its timeout"),
        ({"timeout": 30, "options": WDIOF_SETTIMEOUT, "min_timeout": 1, "max_timeout": 65535}, True, "sets"),
        ({"timeout": 30, "options": WDIOF_SETTIMEOUT, "min_timeout": 1, "max_timeout": 0}, True, "sets"),
        ({"timeout": 30, "options": 0x8100}, False, "cannot change it"),
        ({"timeout": 30}, False, "does not say"),
        ({"timeout": 30, "options": WDIOF_SETTIMEOUT, "max_timeout": 40}, False, "largest timeout is 40"),
        ({"timeout": 90, "options": WDIOF_SETTIMEOUT, "min_timeout": 90}, False, "smallest timeout is 90"),
    ],
)
def test_timeout_check(entry: dict[str, object], ok: bool, why: str) -> None:
    got_ok, got_why = timeout_check(entry, 60)
    assert (got_ok, why in got_why) == (ok, True), got_why


def test_holders_from_a_proc_tree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm, targets in ((7, "wdmd", ["/dev/null"]), (9, "other", [str(tmp_path)]), (12, "twice", ["/dev/null"] * 2)):
        fd = proc / str(pid) / "fd"
        fd.mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        for i, target in enumerate(targets):
            (fd / str(i)).symlink_to(target)
    (proc / "self").mkdir()  # not a pid
    assert holders_of("/dev/null", str(tmp_path / "sys"), str(proc)) == [
        {"pid": 7, "comm": "wdmd"}, {"pid": 12, "comm": "twice"}]
    assert holders_of(str(tmp_path / "missing"), str(tmp_path / "sys"), str(proc)) == []


def test_holders_from_the_real_proc() -> None:
    fd = os.open("/dev/null", os.O_WRONLY)
    try:
        assert {"pid": os.getpid(), "comm": Path("/proc/self/comm").read_text().strip()} in holders_of("/dev/null")
    finally:
        os.close(fd)
    # A regular file is never a watchdog: nobody is listed.
    assert holders_of(__file__) == []


def test_ebusy_names_the_holder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_open = os.open

    def busy_open(path: str, flags: int, *a: int) -> int:
        if path == "/dev/null" and flags & os.O_WRONLY:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_open(path, flags, *a)

    held = os.open("/dev/null", os.O_RDONLY)  # this process is a holder
    monkeypatch.setattr(linux_mod.os, "open", busy_open)
    try:
        with pytest.raises(LockError) as exc:
            LinuxWatchdog("/dev/null", 60, sysfs_root=str(tmp_path)).open()
    finally:
        os.close(held)
    assert exc.value.name == "WD_ERROR"
    assert f"pid {os.getpid()} (" in str(exc.value) and "only one process may open it" in str(exc.value)
