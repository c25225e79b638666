"""The Linux watchdog driver: /dev/watchdogN through the WDIOC ioctls, or by writes alone.

A device that refuses the ioctls (ENOTTY/EINVAL) — such as the test hosts' FIFO bound at
/dev/watchdog0 — is driven by writes alone and assumed to use the configured fire timeout, as a
device that cannot set its timeout would be. A pet never writes "V": the kernel treats a "V" as the
first half of a magic close.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct

from ..errors import LockError
from .sysfs import holders_of, last_boot_was_watchdog_reset, sysfs_entry_for

log = logging.getLogger("lockengine.watchdog")

# <linux/watchdog.h>: _IOR/_IOWR('W', nr, ...) on a 64-bit-agnostic layout.
_WATCHDOG_INFO = struct.Struct("<II32s")  # options, firmware_version, identity
WDIOC_GETSUPPORT = 0x80000000 | (_WATCHDOG_INFO.size << 16) | (ord("W") << 8) | 0
WDIOC_KEEPALIVE = 0x80045705
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000

_NO_IOCTL = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP)
PET_BYTE = b"\0"


def _wd_error(message: str) -> LockError:
    return LockError("WD_ERROR", message)


class LinuxWatchdog:
    """One /dev/watchdogN (or a FIFO standing in for it)."""

    name = "linux"
    protects = True

    def __init__(self, device: str, fire_timeout: int, *, sysfs_root: str = "/sys") -> None:
        self.device: str | None = device
        self.fire_timeout = fire_timeout
        self.sysfs_root = sysfs_root
        self.fd: int | None = None
        self.ioctls = False
        self.options = 0
        self.is_fifo = False
        self._identity = "unknown (not open)"
        self._timeout = fire_timeout
        self._warnings: list[str] = []

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    def _warn(self, message: str) -> None:
        self._warnings.append(message)
        log.warning("watchdog %s: %s", self.device, message)

    # -- open -----------------------------------------------------------------------------------
    def open(self) -> None:
        if self.fd is not None:
            return
        path = self._path()
        self._warnings = []
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise _wd_error(
                f"watchdog device {path} does not exist; load a watchdog driver (e.g. modprobe softdog) "
                "or set watchdog.device to an existing /dev/watchdogN"
            ) from None
        except OSError as e:
            raise _wd_error(f"cannot stat watchdog device {path}: {e.strerror}") from None
        if stat.S_ISFIFO(st.st_mode):
            self.fd = self._open_fifo(path)
            self.is_fifo = True
        elif stat.S_ISCHR(st.st_mode):
            self.fd = self._open_device(path)
        else:
            raise _wd_error(f"{path} is neither a watchdog character device nor a FIFO; refusing to use it")
        try:
            self._configure()
        except BaseException:
            # Nothing relies on this device yet: disarm it rather than leave a reset pending.
            self.magic_close()
            raise
        log.info(
            "watchdog %s opened (armed): identity %r, timeout %d s, %s",
            path,
            self._identity,
            self._timeout,
            "ioctls" if self.ioctls else "writes only",
        )

    def _path(self) -> str:
        if not self.device:
            raise _wd_error("no watchdog device configured; set watchdog.device (e.g. /dev/watchdog0)")
        return self.device

    @staticmethod
    def _open_fifo(path: str) -> int:
        # A FIFO writer's open blocks until a reader exists; the harness must already be reading.
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise _wd_error(
                    f"no reader on the watchdog FIFO {path}: the process playing the watchdog is not running"
                ) from None
            raise _wd_error(f"cannot open watchdog FIFO {path}: {e.strerror}") from None

    def _open_device(self, path: str) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.EBUSY:
                holders = holders_of(path, self.sysfs_root)
                who = ", ".join(f"pid {h['pid']} ({h['comm']})" for h in holders) or "another process"
                raise _wd_error(
                    f"watchdog device {path} is already open by {who} (wdmd, watchdog, or systemd's "
                    "RuntimeWatchdogSec=); only one process may open it: stop that one or choose another "
                    "/dev/watchdogN"
                ) from None
            raise _wd_error(f"cannot open watchdog device {path}: {e.strerror}") from None

    def _configure(self) -> None:
        fd = self.fd
        assert fd is not None
        try:
            raw = fcntl.ioctl(fd, WDIOC_GETSUPPORT, bytes(_WATCHDOG_INFO.size))
        except OSError as e:
            if e.errno not in _NO_IOCTL:
                raise _wd_error(f"WDIOC_GETSUPPORT on {self.device} failed: {e.strerror}") from None
            self.ioctls = False
            self._identity = "unknown (device refuses watchdog ioctls)"
            self._timeout = self.fire_timeout
            self._warn(
                f"device refuses watchdog ioctls ({errno.errorcode.get(e.errno or 0, e.errno)}): petting by writes "
                f"alone; its timeout cannot be set or read and is assumed to be the configured {self.fire_timeout} s"
            )
            return
        self.ioctls = True
        options, _fw, ident = _WATCHDOG_INFO.unpack(raw)
        self.options = options
        self._identity = ident.split(b"\0", 1)[0].decode("ascii", "replace") or "unknown"
        self._timeout = self._set_timeout()
        if not options & WDIOF_MAGICCLOSE:
            self._warn(
                "the driver does not support magic close: ANY close stops it, so a crash of lockengined "
                "will NOT reset the host"
            )
        entry = sysfs_entry_for(self._path(), self.sysfs_root)
        if entry is not None and entry.get("nowayout") == 1:
            self._warn("nowayout is set: even a clean shutdown cannot disarm it; something must keep petting it")
        if entry is not None and last_boot_was_watchdog_reset(entry):
            self._warn("the last boot was a reset by this watchdog (bootstatus has WDIOF_CARDRESET)")

    def _set_timeout(self) -> int:
        fd = self.fd
        assert fd is not None
        if self.options & WDIOF_SETTIMEOUT:
            try:
                fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", self.fire_timeout))
            except OSError as e:
                log.warning("watchdog %s: WDIOC_SETTIMEOUT %d failed: %s", self.device, self.fire_timeout, e.strerror)
        try:
            timeout = int(struct.unpack("i", fcntl.ioctl(fd, WDIOC_GETTIMEOUT, struct.pack("i", 0)))[0])
        except OSError as e:
            self._warn(f"WDIOC_GETTIMEOUT failed ({e.strerror}); assuming the configured {self.fire_timeout} s")
            return self.fire_timeout
        if timeout <= 0:
            self._warn(f"device reports timeout {timeout}; assuming the configured {self.fire_timeout} s")
            return self.fire_timeout
        if timeout > self.fire_timeout:
            # It would fire after other hosts consider us dead and take our leases: unsafe.
            raise _wd_error(
                f"watchdog {self.device} timeout is {timeout} s and cannot be set to the fire timeout "
                f"{self.fire_timeout} s; a longer timeout would let other hosts take leases before this host "
                "is reset. Choose another device or raise watchdog_fire_timeout on every host"
            )
        if timeout < self.fire_timeout:
            self._warn(f"device timeout is {timeout} s, shorter than the fire timeout {self.fire_timeout} s")
        return timeout

    # -- pet / close ----------------------------------------------------------------------------
    def pet(self) -> None:
        fd = self.fd
        if fd is None:
            raise _wd_error(f"watchdog {self.device} is not open")
        try:
            if self.ioctls and self.options & WDIOF_KEEPALIVEPING:
                fcntl.ioctl(fd, WDIOC_KEEPALIVE, struct.pack("i", 0))
            else:
                os.write(fd, PET_BYTE)
        except OSError as e:
            hint = " (the process playing the watchdog went away)" if e.errno == errno.EPIPE and self.is_fifo else ""
            raise _wd_error(f"pet of watchdog {self.device} failed: {e.strerror}{hint}") from None

    def magic_close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.write(fd, b"V")
        except OSError as e:
            log.error("watchdog %s: magic close write failed (%s); it stays armed", self.device, e.strerror)
        finally:
            os.close(fd)
        log.info("watchdog %s: magic close (disarmed)", self.device)

    def close_unclean(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        os.close(fd)
        log.warning("watchdog %s closed without magic close: it stays armed and resets the host "
                    "%d s after the last pet", self.device, self._timeout)
