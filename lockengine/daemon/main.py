"""``lockengined``: the lease daemon. Runs in the foreground; systemd ``Type=notify`` friendly.

    lockengined [--config FILE] [--host-name NAME] [--watchdog none|/dev/watchdogN]
                [--io-timeout N] [--fire-timeout N]

$LOCKENGINE_RUN_DIR (default /run/lockengine) holds the socket and a lock file, so several daemons
can run on one machine as simulated hosts, each with its own run dir, host name and host ids.
SIGTERM/SIGINT stop the daemon like ``client shutdown -f``: lease holders are killed, lockspaces
released, and the watchdog disarmed only when nothing is left to protect.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .. import __version__
from ..config import Config, add_override_arguments, load_config, overrides_from_args
from ..errors import InputError, LockError
from ..watchdog.multiplexer import create_multiplexer
from .engine import Daemon
from .log import get_logger, setup_logging
from .notify import notify, watchdog_interval
from .server import Server, bind_socket

log = get_logger()

LOCK_NAME = "lockengined.pid"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockengined",
        description="lockengine lease daemon (sanlock-compatible storage leases). Runs in the foreground.",
    )
    add_override_arguments(parser)
    parser.add_argument("--version", action="version", version=f"lockengined {__version__}")
    return parser


def lock_run_dir(run_dir: str) -> int:
    """Hold an exclusive lock on <run_dir>/lockengined.pid for the daemon's life: one daemon per dir."""
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise LockError("EBUSY", f"another lockengined (pid {other}) is running with run dir {run_dir}; "
                                 f"set LOCKENGINE_RUN_DIR to run another one") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _systemd_watchdog(stop: threading.Event) -> None:
    interval = watchdog_interval()
    if interval is None:
        return

    def ping() -> None:
        while not stop.wait(interval):
            notify("WATCHDOG=1")

    threading.Thread(target=ping, name="sd-watchdog", daemon=True).start()


# glibc malloc knobs (mallopt): see tune_malloc.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 << 10  # glibc's initial value, now fixed
ARENA_MAX = 2


def tune_malloc() -> bool:
    """Keep the daemon's memory flat and give it back when lockspaces go.

    Renewals no longer allocate (each lockspace reads into its one AreaImage), but every lease
    operation still reads 1 MiB areas into fresh bytes (paxos). By default glibc raises its mmap
    threshold after the first such buffer is freed, so later ones come from arenas that keep the
    freed memory: without this tuning, 300 acquire+release pairs left RSS 6 MiB higher for good
    (with it: +0.3). A fixed threshold serves every large buffer with mmap and returns it on free;
    two arenas bound what small allocations can hold. The price is system CPU per pair (1.6 vs
    0.7 ms), until paxos parses from a reused buffer too (docs/performance.md).
    False where glibc is not the C library (nothing changes then)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))


def run(config: Config) -> int:
    tune_malloc()
    ring = setup_logging(getattr(logging, config.log_level, logging.INFO), config.syslog)
    lock_fd = lock_run_dir(config.run_dir)
    socket_path = config.socket_path
    log.info("lockengined %s starting: host name %s (%s), run dir %s, io_timeout %d, fire_timeout %d, "
             "kill_grace %d", __version__, config.host_name, config.host_name_source, config.run_dir,
             config.io_timeout, config.watchdog_fire_timeout, config.kill_grace)
    if config.sanlock_socket:
        # The sanlock compatibility socket's modules load only when it is configured (~0.5 MiB RSS).
        from .sanlock.server import refuse_if_served, start_sanlock_server

        refuse_if_served(config.sanlock_socket, socket_path)  # before the watchdog is armed
    watchdog = create_multiplexer(config.watchdog.backend, config.watchdog.device, config.watchdog_fire_timeout)
    daemon = Daemon(config, watchdog, ring)  # its start() opens the watchdog, or refuses (armed.py)
    listener, note, restricted = bind_socket(socket_path, config.socket_group)
    log.log(logging.WARNING if restricted else logging.INFO, "%s", note)
    server = Server(daemon, listener)
    compat = None
    if config.sanlock_socket:
        compat = start_sanlock_server(daemon, config.sanlock_socket, config.socket_group)
    stopped = threading.Event()

    def on_stop() -> None:
        stopped.set()
        server.stop()

    daemon.on_stop = on_stop

    def on_signal(signum: int, _frame: object) -> None:
        notify("STOPPING=1")
        # The handler runs between bytecodes of the loop thread: never take locks here.
        threading.Thread(target=daemon.kill_self_signal, args=(signum,), name="signal", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        daemon.start()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
        raise
    state = f"REFUSING (see status): {daemon.refusing}" if daemon.refusing else f"serving on {socket_path}"
    notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS={state}")
    _systemd_watchdog(stopped)
    log.info("ready: serving on %s", socket_path)
    code = 0
    try:
        server.serve_forever()
    except Exception:
        log.exception("socket loop failed; stopping with the watchdog left armed")
        watchdog.shutdown(clean=False)
        code = 1
    notify("STOPPING=1")
    if compat is not None:
        compat.stop()
    with contextlib.suppress(OSError):
        os.unlink(socket_path)
    os.close(lock_fd)
    log.info("exit %d", code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, overrides_from_args(args))
    except (InputError, LockError) as exc:
        print(f"lockengined: configuration: {exc}", file=sys.stderr)
        return 1
    try:
        code = run(config)
    except (InputError, LockError, OSError) as exc:
        print(f"lockengined: {exc}", file=sys.stderr)
        log.error("cannot start: %s", exc)
        return 1
    # Worker threads may still be blocked in storage I/O or a long acquire wait; they hold nothing
    # we must keep (the lockspaces were released or left for the watchdog), so do not wait for them.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
