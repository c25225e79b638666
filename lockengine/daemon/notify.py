"""systemd's sd_notify protocol, written with the stdlib: one datagram to $NOTIFY_SOCKET.

Used for ``Type=notify`` (READY=1 once the socket listens, STATUS=, STOPPING=1) and, when the unit
sets WatchdogSec=, for WATCHDOG=1 keep-alives. Without $NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def _address(raw: str) -> str:
    # A leading '@' names a socket in the abstract namespace.
    return "\0" + raw[1:] if raw.startswith("@") else raw


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send one notification; True when a notify socket was configured and the send worked."""
    environ = os.environ if env is None else env
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(path))
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Half of WatchdogSec (systemd's advice), when the watchdog is meant for this process."""
    environ = os.environ if env is None else env
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6
