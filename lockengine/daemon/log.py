"""The daemon's log: an in-memory ring (``client log_dump``), stderr, and syslog/journal via /dev/log.

Lines look like sanlock.log: ``date time <monotime> [thread]: message``, where monotime is the same
whole-second monotonic clock written into delta leases, so a log line can be matched to a timestamp
on disk. Per-lease chatter (acquire/release) goes only to the ring at DEBUG so that a benchmark does
not flood the journal; everything that matters to an operator is INFO or above everywhere.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import socket
import sys
import threading
import time

# The parent of every engine logger (lockengine.watchdog, lockengine.daemon...), so the ring and
# syslog get the engine's lines too.
ROOT_LOGGER = "lockengine"
LOGGER_NAME = "lockengine.daemon"
RING_LINES = 20000


class _Monotime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.monotime = int(time.monotonic())
        return True


FORMAT = "%(asctime)s %(monotime)d [%(threadName)s]: %(message)s"
SYSLOG_FORMAT = "lockengined[%(process)d]: [%(threadName)s] %(message)s"


class RingHandler(logging.Handler):
    """Keeps the last RING_LINES formatted lines in memory."""

    def __init__(self, lines: int = RING_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.ring: collections.deque[str] = collections.deque(maxlen=lines)
        self._ring_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad format argument must not kill the logging thread
            self.handleError(record)
            return
        with self._ring_lock:
            self.ring.append(line)

    def dump(self) -> list[str]:
        with self._ring_lock:
            return list(self.ring)


def setup_logging(stderr_level: int = logging.INFO, use_syslog: bool = True) -> RingHandler:
    """Configure the daemon logger once; returns the ring for log_dump."""
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    mono = _Monotime()
    fmt = logging.Formatter(FORMAT, "%Y-%m-%d %H:%M:%S")

    ring = RingHandler()
    ring.addFilter(mono)
    ring.setFormatter(fmt)
    logger.addHandler(ring)

    err = logging.StreamHandler(sys.stderr)
    err.setLevel(stderr_level)
    err.addFilter(mono)
    err.setFormatter(fmt)
    logger.addHandler(err)

    if use_syslog and os.path.exists("/dev/log"):
        try:
            sys_h = logging.handlers.SysLogHandler(
                "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON, socktype=socket.SOCK_DGRAM
            )
        except OSError as exc:
            logger.warning("syslog: cannot use /dev/log (%s); logging to stderr and the ring only", exc)
        else:
            sys_h.setLevel(logging.INFO)
            sys_h.setFormatter(logging.Formatter(SYSLOG_FORMAT))
            logger.addHandler(sys_h)
    return ring


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")
