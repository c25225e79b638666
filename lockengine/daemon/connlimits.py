"""What one client can cost a socket listener: the rules both of the daemon's sockets share.

The JSON socket (server.py) and the sanlock-protocol socket (sanlock/server.py) frame their requests
differently but bound their clients the same way, through one ``Gate`` per listener:

* **connection cap**: at most ``max_connections`` connections at once; one more gets the protocol's
  EAGAIN reply (``admit``) and is closed, with one log line per LOG_EVERY seconds;
* **descriptor pause**: when accept fails for lack of descriptors (EMFILE/ENFILE) the listener leaves
  the selector for ACCEPT_PAUSE seconds or until a connection closes (``resume``), instead of the loop
  spinning on a listener it cannot serve;
* **output bound**: a connection whose unsent replies pass ``max_output_bytes`` is dropped (``output_over``):
  a client that does not read cannot make the daemon hold more than that for it;
* **half-close**: a peer that shut its side for writing (SHUT_WR) still gets the replies to what it sent;
  the connection closes once nothing is in flight, unsent or left to serve (``done_after_eof``).

Input is bounded by each server's framing (a request's largest size), which only it knows.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import time

ACCEPT_PAUSE = 0.5  # seconds the listener rests after EMFILE/ENFILE
LOG_EVERY = 10.0  # seconds between two log lines of one recurring refusal


class RateLimitedLog:
    """One log line per LOG_EVERY seconds for a recurring condition, with the count in between."""

    def __init__(self, log: logging.Logger, every: float = LOG_EVERY) -> None:
        self.log = log
        self.every = every
        self.last = -every
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last such line)" if self.suppressed else ""
        self.log.warning(msg + more, *args)
        self.last = now
        self.suppressed = 0


class Gate:
    """One listener's bounds. Loop thread only (``close`` may come from the thread stopping the server)."""

    def __init__(self, sel: selectors.BaseSelector, listener: socket.socket, key: object, max_connections: int,
                 max_output: int, log: logging.Logger) -> None:
        self.sel = sel
        self.listener = listener
        self.key = key
        self.max_connections = max_connections
        self.max_output = max_output
        self.log = log
        self.paused_until: float | None = None
        self.closed = False
        self._fd_log = RateLimitedLog(log)
        self._cap_log = RateLimitedLog(log)

    def accept(self) -> socket.socket | None:
        """One new connection (non-blocking), or None when there is none now — or when descriptors ran
        out: then the listener rests for ACCEPT_PAUSE seconds or until a connection closes."""
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._fd_log.warning("accept: %s; not accepting for %.1f s or until a connection closes",
                                     exc.strerror, ACCEPT_PAUSE)
                self.pause()
            return None
        sock.setblocking(False)
        return sock

    def admit(self, sock: socket.socket, open_conns: int, who: str, refusal: bytes) -> bool:
        """True when ``sock`` may join the ``open_conns`` open ones; else it gets ``refusal`` and is closed."""
        if open_conns < self.max_connections:
            return True
        self._cap_log.warning("connection from %s refused: %d connections open (max_connections)", who, open_conns)
        with contextlib.suppress(OSError):
            sock.send(refusal)
        sock.close()
        return False

    def output_over(self, unsent: int, who: str) -> bool:
        """True (and one log line) when a connection holds more unsent bytes than allowed: drop it."""
        if unsent <= self.max_output:
            return False
        self.log.warning("%s does not read its replies: %d bytes unsent (max_output_bytes %d); connection dropped",
                         who, unsent, self.max_output)
        return True

    def timeout(self, wanted: float | None) -> float | None:
        """The selector timeout: ``wanted``, shortened to when a resting listener is due back (and it is
        put back when it is due)."""
        if self.paused_until is None:
            return wanted
        left = self.paused_until - time.monotonic()
        if left <= 0:
            self.resume()
            return wanted
        return left if wanted is None else min(left, wanted)

    def pause(self) -> None:
        if self.paused_until is None:
            self.sel.unregister(self.listener)
        self.paused_until = time.monotonic() + ACCEPT_PAUSE

    def resume(self) -> None:
        """A descriptor is free again (a connection closed, or the pause is over): accept again."""
        if self.paused_until is not None and not self.closed:
            self.paused_until = None
            self.sel.register(self.listener, selectors.EVENT_READ, self.key)

    def close(self) -> None:
        """The server is stopping: the listener never comes back."""
        self.closed = True
        self.paused_until = None


def done_after_eof(eof: bool, busy: bool, unsent: int, more_requests: bool) -> bool:
    """A half-closed connection is finished once nothing is in flight, unsent or left to serve."""
    return eof and not busy and not unsent and not more_requests


def who(pid: int, uid: int) -> str:
    return f"pid {pid} (uid {uid})"
