"""The socket is not root: a hostile member of the socket's group tries every abuse of issue 10.

Real users and groups (made here, removed after), a real daemon on real loop devices. The
unprivileged user is refused each abuse with a clear error; it can still register, acquire,
request and release its own leases; root and a member of the admin group can still do everything.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lockengine.client import Client

from .authz_world import AuthzWorld, authz_world
from .unprivileged import User, UserProcess, as_user

World = AuthzWorld


@pytest.fixture
def world(loop_device: Any, request: pytest.FixtureRequest) -> Iterator[World]:
    with authz_world(loop_device, request, user_prefix="lkt", name="authz") as w:
        yield w


def call(w: World, user: User, cmd: str, **args: Any) -> dict[str, Any]:
    """One command as ``user`` on its own connection."""
    sock = w.daemon.socket

    def fn() -> Any:
        with Client(sock, timeout=60) as c:
            return c.call(cmd, args)

    return as_user(user, fn)


def refused(res: dict[str, Any], name: str, *words: str) -> dict[str, Any]:
    assert res["ok"] is False, res
    err: dict[str, Any] = res["error"]
    assert err["name"] == name, err
    for word in words:
        assert word in err["message"], err
    return err


def holder(w: World, user: User, *resources: str, killpath: list[str] | None = None) -> UserProcess:
    """A registered process of ``user`` holding ``resources`` until stopped."""
    sock = w.daemon.socket
    keep: list[Client] = []

    def setup() -> Any:
        c = Client(sock, timeout=60)
        keep.append(c)  # the connection is the registration: it must stay open
        c.register(name="holder", killpath=killpath)
        return c.acquire(list(resources))

    return UserProcess(user, setup)


def root_holder(w: World, *resources: str) -> UserProcess:
    return holder(w, User("root", 0, 0), *resources)


def test_unprivileged_member_is_refused_every_abuse(world: World) -> None:
    w, d, u = world, world.daemon, world.user
    d.join("LS", 1, w.user_disk)
    lease_r1 = f"LS:R1:{w.user_disk}:1048576"
    lease_r2 = f"LS:R2:{w.user_disk}:2097152"

    # What a group member may do: look, register, hold its own leases.
    assert call(w, u, "hello")["value"]["peer_pid"] > 0
    assert call(w, u, "status")["ok"] and call(w, u, "gets")["ok"]
    mine = holder(w, u, lease_r2)
    roots = root_holder(w, lease_r1)
    try:
        assert mine.result["ok"], mine.result
        assert roots.result["ok"], roots.result

        # Lockspaces, shutdown, events, examine: administrators only.
        for cmd, args in (("add_lockspace", {"lockspace": "LS2", "host_id": 1, "path": w.user_disk,
                                              "offset": 0}),
                          ("add_lockspace", {"lockspace": "LS2", "host_id": 1, "path": w.root_disk, "offset": 0}),
                          ("rem_lockspace", {"lockspace": "LS"}),
                          ("shutdown", {"force": True}),
                          ("set_event", {"lockspace": "LS", "host_id": 2, "event": 1}),
                          ("examine", {"lockspace": "LS"})):
            err = refused(call(w, u, cmd, **args), "EPERM", "administrators", f"uid {u.uid}")
            assert cmd in err["message"]

        # Root's holder: not releasable, not acquirable for, not inquirable, not requestable.
        for cmd, args in (("release", {"pid": roots.pid, "all": True}),
                          ("release", {"pid": roots.pid, "resources": [lease_r1]}),
                          ("acquire", {"pid": roots.pid, "resources": [f"LS:R3:{w.user_disk}:3145728"]}),
                          ("inquire", {"pid": roots.pid})):
            refused(call(w, u, cmd, **args), "EPERM", f"pid {roots.pid} belongs to uid 0")
        for mode in ("force", "graceful"):
            err = refused(call(w, u, "request", resource=lease_r1, force_mode=mode), "EPERM", "uid 0")
            assert err["field"] == "resource"
        assert roots.alive()
        assert call(w, User("root", 0, 0), "inquire", pid=roots.pid)["value"]["resources"] == [f"{lease_r1}:1"]

        # Paths it may not open itself: refused, and nothing read from them is echoed.
        shadow_size = os.stat("/etc/shadow").st_size
        for path in ("/etc/passwd", "/etc/shadow", w.root_disk):
            for cmd, args in (("acquire", {"resources": [f"LS:R9:{path}:0"]}),
                              ("request", {"resource": f"LS:R9:{path}:0", "force_mode": "graceful"})):
                res = call(w, u, cmd, **args) if cmd == "request" else as_user(u, _register_and(w, cmd, args))
                err = res["error"]
                assert err["name"] in ("EACCES", "EPERM"), err
                text = json.dumps(err)
                assert "magic" not in text and "0x" not in text and str(shadow_size) not in text, err
        err = refused(as_user(u, _register_and(w, "acquire", {"resources": [f"LS:R9:{w.root_disk}:1048576"]})),
                      "EACCES", w.root_disk, f"uid {u.uid}", "may not open it")
        assert err["field"] == "resources[0].path"

        # Not a device or file: a directory, a FIFO.
        fifo = w.scratch / "fifo"
        os.mkfifo(fifo)
        for path, kind in ((str(w.scratch), "a directory"), (str(fifo), "a FIFO")):
            refused(as_user(u, _register_and(w, "acquire", {"resources": [f"LS:R9:{path}:0"]})), "EINVAL", kind)

        # A newline in a registration name would forge a line of `client status`.
        err = refused(call(w, u, "register", name="x\nr LS:R1:/dev/sda:1048576:99 p 1"), "EINVAL",
                      "control characters")
        assert err["field"] == "name"

        # Nor would its process name (comm), which the process sets itself.
        def forged_comm() -> Any:
            ctypes.CDLL(None).prctl(15, b"a\nr LS:R1 p 1", 0, 0, 0)  # PR_SET_NAME
            with Client(d.socket, timeout=60) as c:
                return c.register()["name"]

        assert as_user(u, forged_comm)["value"] == "a?r LS:R1 p 1"

        # Its own lease: request (graceful, acts at once here) then release works.
        assert call(w, u, "request", resource=lease_r2, force_mode=0)["ok"]
        assert mine.alive() and roots.alive()
    finally:
        mine.stop()
        roots.stop()
    check_killpath_runs_as_the_registering_user(w)
    check_socket_permission_names_the_real_group(w)
    assert "Traceback" not in d.log_text()


def _register_and(w: World, cmd: str, args: dict[str, Any]) -> Any:
    sock = w.daemon.socket

    def fn() -> Any:
        with Client(sock, timeout=60) as c:
            c.register()
            return c.call(cmd, args)

    return fn


def check_killpath_runs_as_the_registering_user(w: World) -> None:
    d, u = w.daemon, w.user
    out = w.scratch / "killpath.out"
    script = (f"id -u > {out}; id -G >> {out}; grep NoNewPrivs /proc/self/status >> {out}; "
              f"ls /proc/self/fd | wc -l >> {out}; env | sort >> {out}; "
              f"cat /etc/shadow >/dev/null 2>&1 && echo SHADOW-READ >> {out}; echo done >> {out}")
    mine = holder(w, u, f"LS:R3:{w.user_disk}:3145728", killpath=["/bin/sh", "-c", script])
    try:
        assert mine.result["ok"], mine.result
        res = call(w, u, "request", resource=f"LS:R3:{w.user_disk}:3145728", force_mode="graceful")
        assert res["ok"] and res["value"]["local"] is True, res
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().endswith("done\n")):
            assert time.monotonic() < deadline, "the killpath did not run"
            time.sleep(0.1)
        lines = out.read_text().splitlines()
        assert lines[0] == str(u.uid)
        sock_gid = int(subprocess.run(["getent", "group", w.sock_group], capture_output=True, text=True,
                                      check=True).stdout.split(":")[2])
        assert sorted(int(g) for g in lines[1].split()) == sorted({u.gid, sock_gid})
        assert lines[2].split() == ["NoNewPrivs:", "1"]
        assert int(lines[3]) <= 4  # 0, 1, 2 and ls's own directory fd: nothing of the daemon's
        env = dict(line.split("=", 1) for line in lines[4:-1] if "=" in line)
        assert "LOCKENGINE_RUN_DIR" not in env and "NOTIFY_SOCKET" not in env
        assert "SHADOW-READ" not in lines
        assert f"ran killpath /bin/sh for pid {mine.pid} (holder) as uid {u.uid}" in d.log_text()
    finally:
        mine.stop()


def test_administrators_and_root_still_do_everything(world: World) -> None:
    w, d, u, a = world, world.daemon, world.user, world.admin
    root = User("root", 0, 0)
    # The admin group's member joins and leaves a lockspace on a device it may open.
    os.chown(w.user_disk, 0, u.gid)
    res = call(w, a, "add_lockspace", lockspace="LS", host_id=1, path=w.user_disk, offset=0)
    refused(res, "EACCES", "may not open it")  # admin group is not a device group
    os.chmod(w.user_disk, 0o666)
    try:
        assert call(w, a, "add_lockspace", lockspace="LS", host_id=1, path=w.user_disk, offset=0)["ok"]
    finally:
        os.chmod(w.user_disk, 0o660)
    assert call(w, a, "set_event", lockspace="LS", host_id=1, event=1)["ok"]
    # An administrator that is not root still names only paths it may open itself.
    err = refused(call(w, a, "add_lockspace", lockspace="LS2", host_id=1, path="/etc/shadow", offset=0), "EACCES")
    assert str(os.stat("/etc/shadow").st_size) not in json.dumps(err)
    lease = f"LS:R1:{w.user_disk}:1048576"
    theirs = holder(w, u, lease)
    try:
        assert theirs.result["ok"], theirs.result
        # Root may inquire and release another user's holder.
        assert call(w, root, "inquire", pid=theirs.pid)["value"]["resources"] == [f"{lease}:1"]
        assert call(w, root, "release", pid=theirs.pid, all=True)["value"]["released"] == [f"{lease}:1"]
        assert call(w, u, "acquire", pid=theirs.pid, resources=[lease])["ok"]  # its own uid: allowed
        # Root's force request against it: the holder is SIGKILLed.
        res = call(w, root, "request", resource=lease, force_mode="force")
        assert res["ok"] and res["value"]["local"], res
        deadline = time.monotonic() + 20
        while theirs.alive():
            assert time.monotonic() < deadline, "the force request did not kill the holder"
            time.sleep(0.1)
    finally:
        theirs.stop()
    assert call(w, a, "examine", lockspace="LS")["ok"]
    assert call(w, a, "rem_lockspace", lockspace="LS")["ok"]
    assert call(w, root, "add_lockspace", lockspace="LS", host_id=1, path=w.root_disk, offset=0)["ok"]
    assert call(w, root, "rem_lockspace", lockspace="LS")["ok"]
    assert call(w, a, "shutdown")["ok"]
    assert d.proc.wait(30) == 0


def check_socket_permission_names_the_real_group(world: World) -> None:
    sock = world.daemon.socket

    def fn() -> Any:
        Client(sock).hello()

    err = refused(as_user(world.outsider, fn), "EACCES", repr(world.sock_group), "0660")
    assert "'lockengine'" not in err["message"]
