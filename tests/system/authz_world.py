"""The setting of the authorization tests (test_authz.py: the JSON socket; test_sanlock_authz.py: the
sanlock socket), made in one place.

``authz_world(...)`` makes real groups (the socket's, the admin group) and users (a member of the socket
group, an administrator, an outsider) with ``TestUsers``; two loop devices, one the member's group may
open (root:<its group> 0660) and one only root may (0600); a run directory others may traverse with a
``scratch`` directory the member may write; and a daemon started with ``socket_group`` and ``admin_group``
(and a sanlock socket when asked). At the end it stops the daemon (printing its log when the test
failed), gives the loop devices back their owner and mode, removes the run directory, and removes
exactly the users and groups it made.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lockengine.cli.main import main as cli_main
from tests.support.daemons import FIRE, GRACE, IO, REPO, TestDaemon, env_for, wait_ready

from .unprivileged import TestUsers, User


@dataclass
class AuthzWorld:
    daemon: TestDaemon
    user: User  # in the socket group only
    admin: User  # in the socket group and the admin group
    outsider: User  # in neither
    sock_group: str
    user_disk: str  # root:<user's group> 0660
    root_disk: str  # root only, 0600
    scratch: Path  # a directory the user may write (killpath output)
    sanlock_sock: str  # the sanlock socket ("" when the daemon has none)


def start_daemon(run_dir: Path, config: dict[str, Any]) -> TestDaemon:
    """A daemon (watchdog ``none``) with ``config`` over the authz defaults, ready (sd_notify) or stopped."""
    cfg = {"host_name": "authz", "io_timeout": IO, "watchdog_fire_timeout": FIRE, "kill_grace": GRACE,
           "log_level": "debug", "syslog": False, **config}
    conf = run_dir / "lockengine.conf"
    conf.write_text(json.dumps(cfg))
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(str(run_dir / "notify.sock"))
    env = env_for(run_dir)
    env["NOTIFY_SOCKET"] = str(run_dir / "notify.sock")
    log_path = run_dir / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lockengine.daemon.main", "--config", str(conf), "--watchdog",
                                 "none"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    d = TestDaemon("authz", run_dir, proc, log_path, cfg)
    try:
        wait_ready(nsock, proc, log_path)
    except BaseException:
        d.stop()
        raise
    finally:
        nsock.close()
    return d


def init_area(path: str, resources: tuple[str, ...]) -> None:
    """``lockengine direct init`` of LS at 0 and resources at 1M, 2M..., in this process (quicker)."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["direct", "init", "-s", f"LS:0:{path}:0", "-o", str(IO)]) == 0, out.getvalue()
        for i, res in enumerate(resources, start=1):
            assert cli_main(["direct", "init", "-r", f"LS:{res}:{path}:{i}M"]) == 0, out.getvalue()


@contextlib.contextmanager
def authz_world(loop_device: Any, request: pytest.FixtureRequest, *, user_prefix: str, name: str,
                root_resources: tuple[str, ...] = (), sanlock_socket: bool = False) -> Iterator[AuthzWorld]:
    """``user_prefix``: the test users' and groups' name prefix (the pid is appended); ``name``: in the
    run directory's name; ``root_resources``: resources on the root-only disk (the member's has R1..R3)."""
    users = TestUsers(f"{user_prefix}{os.getpid() % 100000}")
    # A run dir others may traverse to the sockets (pytest's own tmp dirs are root-only).
    run_dir = Path(tempfile.mkdtemp(prefix=f"lockengine-{name}-"))
    os.chmod(run_dir, 0o755)
    disks: list[tuple[str, os.stat_result]] = []
    d: TestDaemon | None = None
    try:
        sock_group = users.group("sock")
        admin_group = users.group("adm")
        user = users.user("u", [sock_group])
        admin = users.user("a", [sock_group, admin_group])
        outsider = users.user("o", [])
        scratch = run_dir / "scratch"
        scratch.mkdir()
        os.chown(scratch, user.uid, user.gid)
        user_disk, root_disk = str(loop_device()), str(loop_device())
        for path, resources in ((user_disk, ("R1", "R2", "R3")), (root_disk, root_resources)):
            disks.append((path, os.stat(path)))
            init_area(path, resources)
        os.chown(user_disk, 0, user.gid)
        os.chmod(user_disk, 0o660)
        os.chmod(root_disk, 0o600)
        config: dict[str, Any] = {"socket_group": sock_group, "admin_group": admin_group}
        sanlock_sock = str(run_dir / "sanlock" / "sanlock.sock") if sanlock_socket else ""
        if sanlock_sock:
            config["sanlock_socket"] = sanlock_sock
        d = start_daemon(run_dir, config)
        yield AuthzWorld(d, user, admin, outsider, sock_group, user_disk, root_disk, scratch, sanlock_sock)
    finally:
        if d is not None:
            d.stop()
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                sys.stderr.write(f"\n===== daemon log =====\n{d.log_text()[-20000:]}\n")
        for path, st in disks:  # loop device nodes outlive this test: give them back as they were
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, st.st_mode & 0o7777)
        shutil.rmtree(run_dir, ignore_errors=True)
        users.remove()
