"""`lockengine direct ...` on real loop devices: output, JSON, errors, and nothing written on bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lockengine import audit, ondisk
from lockengine.cli.main import main
from lockengine.errors import InputError
from lockengine.storage import DirectStorage
from tests.conftest import LoopDevice, LoopFactory

M = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, *argv, "--json")
    doc = json.loads(out)  # exactly one JSON document, nothing else on stdout
    assert isinstance(doc, dict)
    return code, doc


def digest(dev: LoopDevice) -> str:
    """Hash of every byte on the device, read with O_DIRECT (what another host would see)."""
    h = hashlib.sha256()
    with DirectStorage(dev.path, readonly=True) as st:
        for off in range(0, dev.size, M):
            h.update(st.read(off, M, 10))
    return h.hexdigest()


def records(log: Path) -> list[dict[str, str]]:
    """The audit log's records, parsed (none when it was never written)."""
    return [audit.parse_record(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def dev(loop_device: LoopFactory) -> LoopDevice:
    return loop_device(size=8 * M)


@pytest.fixture
def dev4k(loop_device: LoopFactory) -> LoopDevice:
    return loop_device(size=8 * M, sector_size=4096)


# --------------------------------------------------------------------------- init / dump / read-leader


def test_init_and_dump_text_has_sanlocks_columns(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    assert run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0") == (0, "init done 0\n", "")
    assert run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")[0] == 0
    code, out, _ = run(capsys, "direct", "dump", dev.path)
    assert code == 0
    assert out.splitlines() == [
        "  offset                            lockspace                                         resource  timestamp  own  gen lver",
        "01048576                                   LS                                               R1 0000000000 0000 0000 0",
    ]
    code, out, _ = run(capsys, "direct", "dump", dev.path, "-f", "1")
    assert out.splitlines()[0].endswith(" lver/req/mode")
    assert out.splitlines()[1].endswith(" 0/0/0")


def test_init_json_and_dump_json(capsys: pytest.CaptureFixture[str], dev4k: LoopDevice) -> None:
    code, doc = run_json(capsys, "direct", "init", "-s", f"LS:0:{dev4k}:0", "-A", "2M", "-o", "5")
    assert code == 0
    assert doc == {
        "ok": True, "kind": "lockspace", "path": dev4k.path, "offset": 0, "lockspace": "LS",
        "sector_size": 4096, "align_size": 2 * M, "max_hosts": 500, "io_timeout": 5,
    }
    code, doc = run_json(capsys, "direct", "init", "-r", f"LS:R1:{dev4k}:2M", "-A", "2M", "-n", "16")
    assert (code, doc["num_hosts"], doc["max_hosts"], doc["cleared"]) == (0, 16, 500, False)
    code, doc = run_json(capsys, "direct", "dump", f"{dev4k}:0:8M", "-f", "2")
    assert code == 0
    (ls, res) = doc["areas"]
    assert (ls["kind"], ls["lockspace"], ls["sector_size"], ls["align_size"], ls["hosts"]) == ("lockspace", "LS", 4096, 2 * M, [])
    assert (res["offset"], res["resource"], res["num_hosts"], res["lver"], res["dblocks"], res["shared"]) == (
        2 * M, "R1", 16, 0, [], [],
    )


def test_default_geometry_of_a_4k_device_is_4k_8m(capsys: pytest.CaptureFixture[str], loop_device: LoopFactory) -> None:
    big = loop_device(size=16 * M, sector_size=4096)
    code, doc = run_json(capsys, "direct", "init", "-s", f"LS:0:{big}:8M")
    assert (code, doc["sector_size"], doc["align_size"], doc["max_hosts"]) == (0, 4096, 8 * M, 2000)


def test_read_leader(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0")
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    code, out, _ = run(capsys, "direct", "read-leader", "-s", f"LS:1:{dev}:0")
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == ["magic 0x12212010", "version 0x30004", "flags 0x10", "sector_size 512"]
    assert "checksum 0xb0f174c0" in lines and "io_timeout 10" in lines and lines[-1] == "read_leader done 0"
    code, doc = run_json(capsys, "direct", "read_leader", "-r", f"LS:R1:{dev}:1M")
    assert code == 0
    assert (doc["kind"], doc["magic"], doc["checksum"], doc["num_hosts"], doc["resource_name"]) == (
        "resource", ondisk.PAXOS_DISK_MAGIC, 0x2073A773, 2000, "R1",
    )
    code, doc = run_json(capsys, "direct", "read-leader", "-r", f"LS:R2:{dev}:1M")
    assert (code, doc["ok"], doc["error"]["name"], doc["error"]["code"]) == (1, False, "LEADER_RESOURCE", -227)
    code, doc = run_json(capsys, "direct", "read-leader", "-s", f"XX:1:{dev}:0")
    assert doc["error"]["name"] == "LEADER_LOCKSPACE"
    code, doc = run_json(capsys, "direct", "read-leader", "-s", f"LS:2001:{dev}:0")
    assert doc["error"]["field"] == "-s LOCKSPACE host_id"


# --------------------------------------------------------------------------- bad input writes nothing


BAD_INIT = [
    # (argv with {dev}, field named in the error)
    (["-r", "LS:R1:{dev}:1000"], "offset"),
    (["-r", "LS:R1:{dev}:8M"], "offset"),  # device too small: the area would end past 8 MiB
    (["-r", "LS:R1:{dev}:0", "-Z", "512", "-A", "2M"], "sector_size/align_size"),
    (["-r", "LS:R1:{dev}:0", "-Z", "1024"], "sector_size"),
    (["-r", "LS:R1:{dev}:0", "-A", "3M"], "align_size"),
    (["-r", "LS:" + "R" * 49 + ":{dev}:0"], "-r RESOURCE resource name"),
    (["-s", "L" * 49 + ":0:{dev}:0"], "-s LOCKSPACE name"),
    (["-s", "LS:2001:{dev}:0"], "-s LOCKSPACE host_id"),
    (["-s", "LS:0:{dev}:0", "-o", "0"], "io_timeout"),
    (["-s", "LS:0:{dev}:0", "-o", "256"], "io_timeout"),
    (["-r", "LS:R1:{dev}:0", "-n", "2001"], "num_hosts"),
    (["-r", "LS:R1:{dev}:0:5"], "-r RESOURCE"),
    (["-r", "LS:R1:{dev}:0", "-z", "2"], "clear"),
]


@pytest.mark.parametrize(("argv", "field"), BAD_INIT, ids=[f for _, f in BAD_INIT])
def test_bad_init_names_the_field_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, argv: list[str], field: str
) -> None:
    run(capsys, "direct", "init", "-r", f"LS:OLD:{dev}:1M")
    before = digest(dev)
    code, doc = run_json(capsys, "direct", "init", *[a.replace("{dev}", dev.path) for a in argv])
    assert code == 1
    assert doc["ok"] is False
    assert (doc["error"]["name"], doc["error"]["code"], doc["error"]["field"]) == ("EINVAL", -22, field)
    assert digest(dev) == before


@pytest.mark.parametrize(
    ("argv", "field", "hint"),
    [
        (["-s", "LS:251:{dev}:0", "-A", "1M"], "-s LOCKSPACE host_id", "1..250"),
        (["-r", "LS:R1:{dev}:0", "-A", "1M", "-n", "251"], "num_hosts", "1..250"),
        (["-r", "LS:R1:{dev}:0", "-Z", "512"], "sector_size", "4096-byte sectors"),
    ],
)
def test_bad_init_on_a_4k_device(
    capsys: pytest.CaptureFixture[str], dev4k: LoopDevice, argv: list[str], field: str, hint: str
) -> None:
    before = digest(dev4k)
    code, out, err = run(capsys, "direct", "init", *[a.replace("{dev}", dev4k.path) for a in argv])
    assert (code, out) == (1, "")
    assert err.startswith("lockengine: EINVAL (-22): ") and field in err and hint in err, err
    assert digest(dev4k) == before


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["direct", "init", "--json"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["direct", "init", "-s", "LS:0:/d:0", "-r", "LS:R:/d:0"])
    assert e.value.code == 2
    capsys.readouterr()


def test_missing_device_names_the_path(capsys: pytest.CaptureFixture[str], disk_dir: Path) -> None:
    code, doc = run_json(capsys, "direct", "dump", str(disk_dir / "nope.img"))
    assert (code, doc["error"]["field"]) == (1, "path")


# --------------------------------------------------------------------------- refusing to overwrite leases in use


def _hold_resource(dev: LoopDevice, offset: int) -> None:
    with DirectStorage(dev.path) as st:
        raw = st.read(offset, 512, 10)
        ld = ondisk.decode_leader(raw)
        held = replace(ld, owner_id=3, owner_generation=2, lver=4, timestamp=99)
        sector = bytearray(512)
        sector[: ondisk.LEADER_SIZE] = held.encode()
        st.write(offset, bytes(sector), 10)


def test_init_refuses_over_a_held_lease_unless_forced(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    _hold_resource(dev, M)
    before = digest(dev)
    for argv in (["-r", f"LS:R1:{dev}:1M"], ["-s", f"LS:0:{dev}:1M"]):
        code, doc = run_json(capsys, "direct", "init", *argv)
        assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "EBUSY", -16)
        assert "held by host 3 (generation 2, lver 4)" in doc["error"]["message"]
        assert "--force" in doc["error"]["message"]
        assert digest(dev) == before
    code, doc = run_json(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M", "--force")
    assert code == 0
    code, doc = run_json(capsys, "direct", "dump", f"{dev}:1M:1M")
    assert doc["areas"][0]["timestamp"] == 0 and doc["areas"][0]["lver"] == 0


def test_init_refuses_over_a_live_host_and_a_corrupt_record(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0")
    with DirectStorage(dev.path) as st:
        g = ondisk.Geometry(512, M)
        first = ondisk.new_delta_leader("LS", g, 10)
        live = replace(first, owner_id=7, owner_generation=1, timestamp=5, resource_name="h7")
        st.write(g.host_offset(7), ondisk.DeltaRecord(live).encode_sector(512), 10)
        code, doc = run_json(capsys, "direct", "init", "-s", f"LS:0:{dev}:0")
        assert doc["error"]["name"] == "EBUSY" and "host id 7 is held by 'h7'" in doc["error"]["message"]
        # released (timestamp 0) but then corrupted: failing validation never counts as free
        sector = bytearray(ondisk.DeltaRecord(replace(live, timestamp=0)).encode_sector(512))
        sector[100] ^= 1
        st.write(g.host_offset(7), bytes(sector), 10)
        before = digest(dev)
        code, doc = run_json(capsys, "direct", "init", "-r", f"LS:R9:{dev}:0")
        assert doc["error"]["name"] == "EBUSY" and "slot 7 fails validation (LEADER_CHECKSUM)" in doc["error"]["message"]
        assert digest(dev) == before


def test_a_torn_lockspace_init_is_never_valid(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    """The first write leaves record 0 invalid: a crash before the commit leaves no usable lockspace."""
    with DirectStorage(dev.path) as st:
        st.write(0, ondisk.lockspace_area("LS", ondisk.Geometry(512, M), 10), 10)
    code, doc = run_json(capsys, "direct", "read-leader", "-s", f"LS:1:{dev}:0")
    assert (code, doc["error"]["name"]) == (1, "LEADER_MAGIC")
    code, doc = run_json(capsys, "direct", "dump", dev.path)
    assert doc["areas"] == []


# --------------------------------------------------------------------------- leases


def test_acquire_and_release_through_the_cli(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")  # 2·io = 2 s host-id acquire
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    code, doc = run_json(capsys, "direct", "acquire-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "-o", "1")
    assert (code, doc["generation"], doc["host_name"], doc["io_timeout"]) == (0, 1, "one", 1)
    code, doc = run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "-o", "1")
    assert (code, doc["owner_id"], doc["owner_generation"], doc["lver"]) == (0, 1, 1, 1)
    code, doc = run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1", "-o", "1")
    assert (code, doc["error"]["name"]) == (1, "ACQUIRE_IDLIVE")
    log = tmp_path / "audit" / "force-release.log"
    judge = ("-s", f"LS:0:{dev}:0", "--audit-log", str(log))
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1", *judge)
    assert (code, doc["error"]["name"]) == (1, "RELEASE_OWNER")
    code, doc = run_json(capsys, "direct", "dump", dev.path, "-f", "2")
    res = doc["areas"][1]
    assert (res["owner_id"], res["owner_generation"], res["lver"], res["timestamp"] > 0) == (1, 1, 1, True)
    assert [(d["host_id"], d["inp"], d["lver"], d["released"]) for d in res["dblocks"]] == [(1, 1, 1, False)]
    code, doc = run_json(capsys, "direct", "renew-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "-o", "1")
    assert (code, doc["generation"]) == (0, 1)
    code, doc = run_json(capsys, "direct", "renew-id", "-s", f"LS:1:{dev}:0", "--host-name", "other")
    assert (code, doc["error"]["name"]) == (1, "RENEW_OWNER")
    # Host 1 is not renewing, but it is not dead yet either (8·io + fire timeout): no release without a wait.
    before = digest(dev)
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", *judge, "--nowait")
    assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "EAGAIN", -11)
    code, doc = run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "--nowait",
                         "--audit-log", str(log))
    assert (code, doc["error"]["name"]) == (1, "EAGAIN")
    assert digest(dev) == before and records(log) == []
    # Its host id released (forced, recorded), host 1 holds nothing: its lease is released on its behalf.
    code, doc = run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "--force",
                         "--reason", "test: host one is gone", "--audit-log", str(log))
    assert (code, doc["timestamp"], doc["generation"], doc["host_name"], doc["grounds"]) == (0, 0, 1, "one", "forced")
    code, out, _ = run(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", *judge)
    assert (code, out) == (0, "release done 0\n")
    code, doc = run_json(capsys, "direct", "dump", dev.path, "-f", "2")
    res = doc["areas"][1]
    assert (res["owner_id"], res["lver"], res["timestamp"], res["dblocks"][0]["released"]) == (1, 1, 0, True)
    forced, dead = records(log)
    assert (forced["command"], forced["owner_id"], forced["owner_generation"], forced["grounds"], forced["result"]) == (
        "release_id", "1", "1", "forced", "released")
    assert forced["reason"] == "test: host one is gone"
    assert (dead["command"], dead["resource"], dead["owner_id"], dead["lver"], dead["grounds"], dead["result"]) == (
        "release", "R1", "1", "1", "dead", "released")


def test_python_dash_m_runs_the_cli(dev: LoopDevice) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "lockengine", "direct", "init", "-r", f"LS:R1:{dev}:0", "--json"],
        capture_output=True, text=True, env=env, check=False, cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["resource"] == "R1"
    proc = subprocess.run(
        [sys.executable, "-m", "lockengine", "--version"], capture_output=True, text=True, env=env, check=False, cwd="/"
    )
    assert proc.returncode == 0 and proc.stdout.startswith("lockengine ")


def test_acquire_id_defaults_to_the_daemons_host_name(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    """Without --host-name the slot gets lockengined's own name, so the daemon rejoins it on the fast path."""
    from lockengine.config import load_config

    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    code, doc = run_json(capsys, "direct", "acquire-id", "-s", f"LS:2:{dev}:0", "-o", "1")
    assert (code, doc["host_name"]) == (0, load_config().host_name)
    code, doc = run_json(capsys, "direct", "release-id", "-s", f"LS:2:{dev}:0", "--force", "--reason", "test",
                         "--audit-log", str(tmp_path / "audit.log"))
    assert (code, doc["timestamp"]) == (0, 0)


def test_direct_works_without_the_client_module_and_a_broken_one_is_not_hidden(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lockengine direct` never imports the client verbs; `lockengine client` imports them plainly, so a
    broken module of ours fails loudly instead of being turned into an error reply."""
    import lockengine.cli

    monkeypatch.setitem(sys.modules, "lockengine.cli.client", None)  # makes its import fail
    monkeypatch.delattr(lockengine.cli, "client", raising=False)
    assert run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:0")[0] == 0
    with pytest.raises(ImportError):
        main(["client", "status", "--json"])


def test_each_command_loads_only_its_own_modules() -> None:
    probe = (
        "import json, sys; from lockengine.cli.main import build_parser; build_parser(sys.argv[1]); "
        "print(json.dumps([m for m in sys.modules if m.startswith('lockengine.')]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loaded = {}
    for command in ("client", "direct"):
        proc = subprocess.run([sys.executable, "-c", probe, command], capture_output=True, text=True, env=env,
                              check=True, cwd="/")
        loaded[command] = set(json.loads(proc.stdout))
    assert "lockengine.cli.client" in loaded["client"] and "lockengine.paxos" not in loaded["client"]
    assert "lockengine.cli.direct" not in loaded["client"]
    assert "lockengine.paxos" in loaded["direct"] and "lockengine.cli.client" not in loaded["direct"]


# --------------------------------------------------------------------------- release on behalf of another host


RES_AREA = (M, 2 * M)  # the resource area of R1 in these tests


def area_bytes(dev: LoopDevice, span: tuple[int, int] = RES_AREA) -> bytes:
    with DirectStorage(dev.path, readonly=True) as st:
        return st.read(span[0], span[1] - span[0], 10)


def held_by_host_1(capsys: pytest.CaptureFixture[str], dev: LoopDevice) -> None:
    """LS at 0 and R1 at 1M; host 1 (generation 1) holds R1, its host id still acquired."""
    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    assert run_json(capsys, "direct", "acquire-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "-o", "1")[0] == 0
    assert run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "-o", "1")[0] == 0


def flip_dblock_byte(dev: LoopDevice, host_id: int, at: int = 32) -> None:
    """Change one byte of host_id's dblock in R1 (inp3 by default) without fixing its checksum."""
    off = M + ondisk.Geometry(512, M).dblock_offset(host_id)
    with DirectStorage(dev.path) as st:
        sector = bytearray(st.read(off, 512, 10))
        sector[at] ^= 0x40
        st.write(off, bytes(sector), 10)


def test_release_needs_a_lockspace_to_judge_or_force_with_a_reason(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    held_by_host_1(capsys, dev)
    log = tmp_path / "audit.log"
    before = digest(dev)
    base = ("direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--audit-log", str(log))
    code, doc = run_json(capsys, *base)  # the old command line: released a lease whatever its holder's state
    assert (code, doc["error"]["name"], doc["error"]["field"]) == (1, "EINVAL", "-s LOCKSPACE")
    code, doc = run_json(capsys, *base, "--force")
    assert (code, doc["error"]["name"], doc["error"]["field"]) == (1, "EINVAL", "--reason")
    assert "--force needs --reason" in doc["error"]["message"]
    code, doc = run_json(capsys, *base, "--force", "--reason", "   ")
    assert (code, doc["error"]["field"]) == (1, "--reason")
    code, doc = run_json(capsys, *base, "--force", "--reason", "INC-7", "--context", "grounds=x")
    assert (code, doc["error"]["field"]) == (1, "--context")
    code, doc = run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "--force",
                         "--audit-log", str(log))
    assert (code, doc["error"]["field"]) == (1, "--reason")
    assert digest(dev) == before and records(log) == []


def test_a_forced_release_is_recorded_with_who_when_what_and_why(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    held_by_host_1(capsys, dev)
    log = tmp_path / "var" / "log" / "lockengine" / "force-release.log"
    code, doc = run_json(
        capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--force",
        "--reason", 'INC-42: node1 powered off, "fenced"', "--audit-log", str(log), "--context", "owner_fenced=true",
    )
    assert (code, doc["grounds"], doc["timestamp"], doc["audit_log"]) == (0, "forced", 0, str(log))
    (rec,) = records(log)
    assert doc["audit"] == log.read_text().rstrip("\n")
    assert (log.parent.stat().st_mode & 0o777, log.stat().st_mode & 0o777) == (0o750, 0o640)
    assert rec["time"].endswith("Z") and len(rec["time"]) == len("2026-01-01T00:00:00Z")
    import getpass
    import socket

    assert (rec["host"], rec["user"], rec["pid"]) == (socket.gethostname(), getpass.getuser(), str(os.getpid()))
    assert {k: rec[k] for k in ("command", "lockspace", "resource", "path", "offset", "owner_id", "owner_generation",
                                "lver", "grounds", "result", "reason", "owner_fenced")} == {
        "command": "release", "lockspace": "LS", "resource": "R1", "path": dev.path, "offset": str(M),
        "owner_id": "1", "owner_generation": "1", "lver": "1", "grounds": "forced", "result": "released",
        "reason": 'INC-42: node1 powered off, "fenced"', "owner_fenced": "true",
    }
    code, doc = run_json(capsys, "direct", "dump", f"{dev}:1M:1M", "-f", "2")
    assert (doc["areas"][0]["timestamp"], doc["areas"][0]["dblocks"][0]["released"]) == (0, True)
    # Nothing to release any more: refused before any write, so nothing is written and nothing recorded.
    before = digest(dev)
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--force",
                         "--reason", "again", "--audit-log", str(log))
    assert (code, doc["error"]["name"]) == (1, "RELEASE_OWNER")
    assert digest(dev) == before and len(records(log)) == 1


def test_an_audit_log_that_cannot_be_written_stops_the_release(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    held_by_host_1(capsys, dev)
    (tmp_path / "file").write_text("")
    before = digest(dev)
    for bad in (str(tmp_path / "file" / "log"), "relative.log"):
        code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--force",
                             "--reason", "r", "--audit-log", bad)
        assert (code, doc["error"]["name"], doc["error"]["field"]) == (1, "EINVAL", "--audit-log")
    assert digest(dev) == before


@pytest.mark.parametrize("judged", ["forced", "dead"])
def test_a_dblock_failing_its_checksum_is_never_rewritten(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path, judged: str
) -> None:
    """The old code rewrote a corrupt dblock as a valid one (lver 3 in the report) and every other host then
    failed with DBLOCK_LVER; sanlock refuses with DBLOCK_CHECKSUM (-214) and writes nothing."""
    held_by_host_1(capsys, dev)
    log = tmp_path / "audit.log"
    # Host 1 is gone: its host id released, so the lockspace judges it dead at once.
    assert run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "--force",
                    "--reason", "setup", "--audit-log", str(tmp_path / "setup.log"))[0] == 0
    flip_dblock_byte(dev, 1)
    before = area_bytes(dev)
    how = ("--force", "--reason", "INC-9") if judged == "forced" else ("-s", f"LS:0:{dev}:0")
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", *how,
                         "--audit-log", str(log))
    assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "DBLOCK_CHECKSUM", -214)
    assert area_bytes(dev) == before and records(log) == []
    code, doc = run_json(capsys, "direct", "dump", f"{dev}:1M:1M", "-f", "2")
    assert doc["areas"][0]["timestamp"] != 0 and doc["areas"][0]["dblocks"][0]["valid"] is False


def test_a_leader_failing_its_checksum_is_never_rewritten(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    held_by_host_1(capsys, dev)
    with DirectStorage(dev.path) as st:
        sector = bytearray(st.read(M, 512, 10))
        sector[120] ^= 1  # inside the timestamp: covered by the leader checksum
        st.write(M, bytes(sector), 10)
    before = area_bytes(dev)
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--force",
                         "--reason", "r", "--audit-log", str(tmp_path / "a.log"))
    assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "LEADER_CHECKSUM", -229)
    assert area_bytes(dev) == before


def test_release_of_a_renewing_hosts_lease_is_refused_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    """Issue 8 item 2: host 1 renews and holds R1; `direct release -i 1 -g 1` zeroed the leader and let
    host 2 in at once. Now it sees host 1 renewing (the engine's liveness judge) and writes nothing."""
    import threading

    from lockengine.delta import DeltaLease

    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    log = tmp_path / "audit.log"
    with DirectStorage(dev.path) as st:
        host1 = DeltaLease(st, "LS", 1, 0, host_name="one", io_timeout=1, fire_timeout=5)
        host1.acquire()
        stop = threading.Event()

        def renew() -> None:  # host 1's renewal loop, every io_timeout
            while not stop.wait(1.0):
                host1.renew()

        renewer = threading.Thread(target=renew, daemon=True)
        renewer.start()
        try:
            gen = str(host1.generation)
            assert run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", gen)[0] == 0
            before = area_bytes(dev)
            for extra in ((), ("--nowait",)):
                code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", gen,
                                     "-s", f"LS:0:{dev}:0", "--audit-log", str(log), *extra)
                if extra and doc["error"]["name"] == "EAGAIN":
                    continue  # --nowait may decide before it saw a renewal; it wrote nothing either way
                assert (code, doc["error"]["name"], doc["error"]["code"]) == (1, "EBUSY", -16)
                assert "which is alive" in doc["error"]["message"] and "--force --reason" in doc["error"]["message"]
            assert area_bytes(dev) == before and records(log) == []
            # Host 2 still cannot take it: the lease was left as it was.
            code, doc = run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1")
            assert (code, doc["error"]["name"]) == (1, "ACQUIRE_IDLIVE")
            # The same for its host id.
            lsb = area_bytes(dev, (0, 512))
            code, doc = run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one",
                                 "--audit-log", str(log))
            assert (code, doc["error"]["name"]) == (1, "EBUSY")
            assert ondisk.decode_leader(area_bytes(dev, (0, 512))).timestamp != 0 and lsb[:8] == area_bytes(dev, (0, 512))[:8]
            assert records(log) == []
        finally:
            stop.set()
            renewer.join(10)


def test_release_waits_until_a_silent_host_is_dead(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    """Without --nowait the holder is watched for host_dead (8·io + the configured fire timeout, here
    8 + 5 s), then its lease is released on its behalf and recorded."""
    held_by_host_1(capsys, dev)
    config = tmp_path / "lockengine.conf"
    config.write_text(json.dumps({"watchdog_fire_timeout": 5}))
    log = tmp_path / "audit.log"
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1",
                         "-s", f"LS:0:{dev}:0", "--config", str(config), "--audit-log", str(log),
                         "--context", "ticket=INC-1")
    assert (code, doc["grounds"], doc["timestamp"]) == (0, "dead", 0)
    (rec,) = records(log)
    assert (rec["grounds"], rec["result"], rec["reason"], rec["ticket"]) == ("dead", "released", "", "INC-1")


def test_audit_records_are_one_line_and_parse_back() -> None:
    import datetime

    when = datetime.datetime(2026, 11, 30, 13, 0, tzinfo=datetime.UTC)
    fields = {"host": "h", "user": "u", "pid": 1, "command": "release", "path": "/dev/a b", "reason": 'x\ny "z"=1'}
    line = audit.format_record(fields, {"note": "a=b c"}, when)
    assert "\n" not in line and line.startswith("2026-11-30T13:00:00Z host=h user=u pid=1 command=release ")
    assert audit.parse_record(line) == {"time": "2026-11-30T13:00:00Z", **{k: str(v) for k, v in fields.items()},
                                        "note": "a=b c"}
    with pytest.raises(InputError):
        audit.parse_context(["reason=x"])
    with pytest.raises(InputError):
        audit.parse_context(["Bad=1"])
    assert audit.parse_context(["owner_state=dead"]) == {"owner_state": "dead"}


def test_a_dead_hosts_shared_lease_is_released_on_its_behalf(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path
) -> None:
    run(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    run(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    assert run_json(capsys, "direct", "acquire-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "-o", "1")[0] == 0
    assert run_json(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M:SH", "-i", "1", "-g", "1", "-o", "1")[0] == 0
    code, doc = run_json(capsys, "direct", "dump", f"{dev}:1M:1M")
    assert doc["areas"][0]["shared"] == [{"host_id": 1, "generation": 1}]
    log = tmp_path / "audit.log"
    shared = ("direct", "release", "-r", f"LS:R1:{dev}:1M:SH", "-i", "1", "-g", "1", "-s", f"LS:0:{dev}:0",
              "--audit-log", str(log))
    code, doc = run_json(capsys, *shared, "--nowait")  # host 1 not seen renewing, not dead yet
    assert (code, doc["error"]["name"]) == (1, "EAGAIN")
    assert run_json(capsys, "direct", "release-id", "-s", f"LS:1:{dev}:0", "--host-name", "one", "--force",
                    "--reason", "host one is gone", "--audit-log", str(log))[0] == 0
    code, doc = run_json(capsys, *shared)
    assert (code, doc["grounds"], doc["shared"]) == (0, "dead", True)
    code, doc = run_json(capsys, "direct", "dump", f"{dev}:1M:1M")
    assert doc["areas"][0]["shared"] == []
    assert [(r["command"], r["grounds"]) for r in records(log)] == [("release_id", "forced"), ("release", "dead")]


def test_a_release_that_fails_after_it_was_authorised_is_recorded_as_failed(
    capsys: pytest.CaptureFixture[str], dev: LoopDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error during the release itself (injected at the write; the real device under it)."""
    import errno

    from lockengine.paxos import PaxosLease

    held_by_host_1(capsys, dev)

    def eio(self: PaxosLease) -> None:
        raise OSError(errno.EIO, "Input/output error", dev.path)

    monkeypatch.setattr(PaxosLease, "release", eio)
    log = tmp_path / "audit.log"
    before = digest(dev)
    code, doc = run_json(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "--force",
                         "--reason", "INC-3", "--audit-log", str(log))
    assert (code, doc["error"]["name"]) == (1, "EIO")
    assert digest(dev) == before
    (rec,) = records(log)
    assert (rec["grounds"], rec["result"], rec["reason"]) == ("forced", "failed:EIO", "INC-3")
