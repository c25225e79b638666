"""The who-may-do-what rules (daemon/authz.py) and the path check with a client's credentials (paths.py)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockengine.config import Config, load_config
from lockengine.daemon import authz, paths
from lockengine.daemon.authz import Refused
from lockengine.daemon.clients import Client, PeerCred
from lockengine.errors import InputError

NOBODY = 65534
CONFIG = Config(host_name="h", host_name_source="config", admin_group="lkadmins")
ROOT = PeerCred(1, 0, 0, (), True)
USER = PeerCred(2, 1000, 1000, (1000, 50), False)
ADMIN = PeerCred(3, 1001, 1001, (77,), True)


def client(uid: int, pid: int = 99) -> Client:
    return Client(pid, uid, "c", 1, None)


def test_admin_is_root_or_the_admin_group() -> None:
    assert authz.is_admin(0, 0, (), None)
    assert authz.is_admin(5, 5, (77,), 77) and authz.is_admin(5, 77, (), 77)
    assert not authz.is_admin(5, 5, (78,), 77) and not authz.is_admin(5, 5, (77,), None)


@pytest.mark.parametrize("cmd", sorted(authz.ADMIN_COMMANDS))
def test_admin_commands(cmd: str) -> None:
    authz.check_command(ROOT, cmd, CONFIG)
    authz.check_command(ADMIN, cmd, CONFIG)
    with pytest.raises(Refused) as exc:
        authz.check_command(USER, cmd, CONFIG)
    assert exc.value.name == "EPERM" and exc.value.code == -1
    assert "root or members of group lkadmins" in exc.value.message and "uid 1000" in exc.value.message


def test_everything_else_is_open() -> None:
    for cmd in ("hello", "register", "killpath", "acquire", "release", "inquire", "request", "status", "gets",
                "log_dump", "inq_lockspace", "host_status", "renewal", "get_events"):
        authz.check_command(USER, cmd, CONFIG)


def test_targets_of_another_uid() -> None:
    authz.check_target(USER, client(1000), CONFIG)
    authz.check_target(ROOT, client(1000), CONFIG)
    authz.check_target(ADMIN, client(0), CONFIG)
    with pytest.raises(Refused) as exc:
        authz.check_target(USER, client(0, pid=42), CONFIG)
    assert exc.value.as_dict()["field"] == "pid" and "pid 42 belongs to uid 0" in exc.value.message


def test_requests() -> None:
    authz.check_request(USER, "LS:R1", [client(1000)], CONFIG)
    authz.check_request(ADMIN, "LS:R1", [], CONFIG)  # a lease held elsewhere: administrators
    for holders in ([], [client(0)], [client(1000), client(0)]):
        with pytest.raises(Refused) as exc:
            authz.check_request(USER, "LS:R1", holders, CONFIG)
        assert exc.value.name == "EPERM" and exc.value.as_dict()["field"] == "resource"


def test_peer_groups_come_from_the_kernel() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert set(authz.peer_groups(a, os.getpid())) == set(os.getgroups())
        cred = authz.caller_cred(a, PeerCred(os.getpid(), os.getuid(), os.getgid()), None)
        assert cred.admin is (os.getuid() == 0)


def test_admin_group_config(tmp_path: Path) -> None:
    conf = tmp_path / "c.json"
    conf.write_text('{"host_name": "h", "admin_group": "root", "path_prefixes": ["/dev/disk/", "/srv//leases"], '
                    '"max_connections": 8, "max_output_bytes": 65536}')
    cfg = load_config(str(conf), environ={})
    assert cfg.admin_group == "root" and cfg.path_prefixes == ("/dev/disk", "/srv/leases")
    assert (cfg.max_connections, cfg.max_output_bytes) == (8, 65536)
    assert authz.admin_gid(cfg) == 0
    for bad, field in (('"admin_group": "a b"', "admin_group"), ('"path_prefixes": ["dev"]', "path_prefixes[0]"),
                       ('"max_connections": 1', "max_connections"), ('"max_output_bytes": 10', "max_output_bytes")):
        conf.write_text(f'{{"host_name": "h", {bad}}}')
        with pytest.raises(InputError) as exc:
            load_config(str(conf), environ={})
        assert exc.value.field == field


# --------------------------------------------------------------------------- paths, with real credentials

NOBODY_CRED = PeerCred(1, NOBODY, NOBODY, (), False)


@pytest.fixture
def files() -> Iterator[Path]:
    """Files under a directory others may traverse (pytest's own tmp dirs are root-only)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="lockengine-paths-"))
    os.chmod(tmp_path, 0o755)
    try:
        yield from _populate(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _populate(tmp_path: Path) -> Iterator[Path]:
    for name, mode in (("open", 0o666), ("private", 0o600), ("readonly", 0o644)):
        (tmp_path / name).write_bytes(b"toor" * 128)
        os.chmod(tmp_path / name, mode)
    os.mkdir(tmp_path / "dir")
    os.mkfifo(tmp_path / "fifo")
    yield tmp_path


def test_paths_are_opened_with_the_clients_credentials(files: Path) -> None:
    fid = paths.authorize_path(str(files / "open"), NOBODY_CRED, ())
    st = os.stat(files / "open")
    assert (fid.dev, fid.ino) == (st.st_dev, st.st_ino)
    for name in ("private", "readonly"):
        with pytest.raises(Refused) as exc:
            paths.authorize_path(str(files / name), NOBODY_CRED, (), "resources[0].path")
        err = exc.value.as_dict()
        assert err["name"] == "EACCES" and err["field"] == "resources[0].path"
        assert "toor" not in str(err) and "512" not in str(err) and f"uid {NOBODY}" in str(err)
    # Root may name them; nobody as a member of the file's group may too.
    paths.authorize_path(str(files / "private"), ROOT, ())
    os.chown(files / "private", 0, 4242)
    os.chmod(files / "private", 0o660)
    paths.authorize_path(str(files / "private"), PeerCred(1, NOBODY, NOBODY, (4242,), False), ())


def test_only_block_devices_and_regular_files(files: Path) -> None:
    for name, kind in (("dir", "a directory"), ("fifo", "a FIFO")):
        for cred in (NOBODY_CRED, ROOT):
            with pytest.raises(InputError) as exc:
                paths.authorize_path(str(files / name), cred, ())
            assert exc.value.field == "path" and kind in str(exc.value)
    with pytest.raises(InputError) as exc:
        paths.authorize_path("/dev/null", ROOT, ())
    assert "a character device" in str(exc.value)
    with pytest.raises(InputError) as exc:
        paths.authorize_path(str(files / "absent"), NOBODY_CRED, ())
    assert "no such file" in str(exc.value)


def test_prefixes_bind_clients_not_administrators(files: Path) -> None:
    os.symlink(files / "open", files / "dir" / "link")
    paths.authorize_path(str(files / "dir" / "link"), NOBODY_CRED, (str(files),))
    with pytest.raises(Refused) as exc:  # the link leads out of the prefix
        paths.authorize_path(str(files / "dir" / "link"), NOBODY_CRED, (str(files / "dir"),))
    assert exc.value.name == "EACCES" and "outside the paths" in exc.value.message
    paths.authorize_path(str(files / "open"), ADMIN, (str(files / "dir"),))


def test_a_swapped_path_is_refused(files: Path) -> None:
    fid = paths.authorize_path(str(files / "open"), NOBODY_CRED, ())
    paths.check_same(str(files / "open"), fid, os.stat(files / "open"))
    with pytest.raises(Refused) as exc:
        paths.check_same(str(files / "open"), fid, os.stat(files / "readonly"))
    assert "changed while it was checked" in exc.value.message
    assert stat.S_ISREG(os.stat(files / "open").st_mode)
