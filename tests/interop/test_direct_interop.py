"""The real sanlock 3.8.5 and `lockengine direct` read each other's disks (facts §1-§3, §11).

Only `sanlock direct` commands are used: no sanlock daemon runs here. Lockspaces are initialised
with io_timeout 1 so that a host-id acquire (2·io) takes 2 s, by sanlock and by us.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lockengine.cli.main import main
from tests.conftest import LoopDevice, LoopFactory

pytestmark = pytest.mark.interop

M = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Where one geometry puts the lockspace and two resources on a device."""

    sector_size: int
    align: int
    max_hosts: int

    @property
    def sanlock_sizes(self) -> list[str]:
        return ["-Z", str(self.sector_size), "-A", f"{self.align // M}M"]

    @property
    def our_sizes(self) -> list[str]:
        return ["-A", f"{self.align // M}M"]


LAYOUTS = [Layout(512, M, 2000), Layout(4096, 2 * M, 500)]
IDS = ["512-1M", "4K-2M"]


def sanlock_run(sanlock: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sanlock, *args], capture_output=True, text=True, check=False, timeout=120)
    if ok:
        assert proc.returncode == 0, f"sanlock {' '.join(args)}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def sanlock_leader(sanlock: str, kind: str, spec: str) -> dict[str, str]:
    out = sanlock_run(sanlock, "direct", "read_leader", kind, spec).stdout.splitlines()
    assert out[0] == "read_leader done 0", out
    fields = {}
    for line in out[1:]:
        key, _, value = line.partition(" ")
        fields[key] = value
    return fields


def ours(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 0, doc
    assert isinstance(doc, dict)
    return doc


def ours_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, _ = capsys.readouterr()
    assert code == 0
    return out


def ours_fails(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False, doc
    err = doc["error"]
    assert isinstance(err, dict)
    return err


def parse_sanlock_dump(text: str) -> dict[str, list[tuple[str, ...]]]:
    """Lines of `sanlock direct dump -f 2`, split into records, dblocks and shared holders."""
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["offset", "lockspace", "resource"]
    out: dict[str, list[tuple[str, ...]]] = {"records": [], "dblocks": [], "shared": []}
    for line in lines[1:]:
        f = tuple(line.split())
        if f[0].startswith("dblock["):
            out["dblocks"].append(f)
        elif f[-1] == "SH":
            out["shared"].append(f)
        else:
            out["records"].append(f)
    return out


def compare_leader(ls_fields: dict[str, str], doc: dict[str, Any], extra: tuple[str, str, str]) -> None:
    """sanlock's read_leader text against our read-leader JSON, field for field."""
    for key in ("magic", "version", "flags", "checksum"):
        assert int(ls_fields[key], 16) == doc[key], key
    for key in ("sector_size", "num_hosts", "max_hosts", "owner_id", "owner_generation", "lver", "timestamp", "io_timeout"):
        assert int(ls_fields[key]) == doc[key], key
    assert ls_fields["space_name"] == doc["space_name"]
    assert ls_fields["resource_name"] == doc["resource_name"]
    for theirs, mine in zip(extra, ("write_id", "write_generation", "write_timestamp"), strict=False):
        assert int(ls_fields[theirs]) == doc[mine], theirs


DELTA_EXTRA = ("extra1", "extra2", "extra3")
PAXOS_EXTRA = ("write_id", "write_generation", "write_timestamp")


def device(loop_device: LoopFactory, layout: Layout) -> LoopDevice:
    return loop_device(size=16 * M, sector_size=layout.sector_size)


# --------------------------------------------------------------------------- sanlock reads ours


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_sanlock_reads_what_we_init(
    capsys: pytest.CaptureFixture[str], sanlock: str, loop_device: LoopFactory, layout: Layout
) -> None:
    dev = device(loop_device, layout)
    a = layout.align
    ours(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1", *layout.our_sizes)
    ours(capsys, "direct", "init", "-r", f"LS:R1:{dev}:{a}", *layout.our_sizes)
    ours(capsys, "direct", "init", "-r", f"LS:R2:{dev}:{2 * a}", "-n", "8", *layout.our_sizes)

    # sanlock validates magic, version, names and checksum on read_leader
    for host_id in (1, 2, layout.max_hosts):
        theirs = sanlock_leader(sanlock, "-s", f"LS:{host_id}:{dev}:0")
        mine = ours(capsys, "direct", "read-leader", "-s", f"LS:{host_id}:{dev}:0")
        compare_leader(theirs, mine, DELTA_EXTRA)
        assert (theirs["sector_size"], theirs["max_hosts"], theirs["io_timeout"]) == (str(layout.sector_size), "1", "1")
    for name, off, num_hosts in (("R1", a, layout.max_hosts), ("R2", 2 * a, 8)):
        theirs = sanlock_leader(sanlock, "-r", f"LS:{name}:{dev}:{off}")
        compare_leader(theirs, ours(capsys, "direct", "read-leader", "-r", f"LS:{name}:{dev}:{off}"), PAXOS_EXTRA)
        assert (theirs["num_hosts"], theirs["max_hosts"], theirs["timestamp"]) == (str(num_hosts), str(layout.max_hosts), "0")

    # a host id acquired by us shows in sanlock's dump (never-acquired slots are not listed)
    ours(capsys, "direct", "acquire-id", "-s", f"LS:3:{dev}:0", "--host-name", "lockengine-host3", "-o", "1")
    text = sanlock_run(sanlock, "direct", "dump", dev.path, "-f", "2").stdout
    dumped = parse_sanlock_dump(text)
    assert [r[:2] + r[2:3] + r[4:6] for r in dumped["records"]] == [
        (f"{2 * layout.sector_size:08d}", "LS", "lockengine-host3", "0003", "0001"),
        (f"{a:08d}", "LS", "R1", "0000", "0000"),
        (f"{2 * a:08d}", "LS", "R2", "0000", "0000"),
    ]
    assert dumped["dblocks"] == [] and dumped["shared"] == []
    # and our text dump is byte for byte sanlock's
    assert ours_text(capsys, "direct", "dump", dev.path, "-f", "2") == text


# --------------------------------------------------------------------------- we read sanlock's


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_we_read_what_sanlock_wrote(
    capsys: pytest.CaptureFixture[str], sanlock: str, loop_device: LoopFactory, layout: Layout
) -> None:
    dev = device(loop_device, layout)
    a = layout.align
    sanlock_run(sanlock, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1", *layout.sanlock_sizes)
    sanlock_run(sanlock, "direct", "init", "-r", f"LS:R1:{dev}:{a}", *layout.sanlock_sizes)
    sanlock_run(sanlock, "direct", "init", "-r", f"LS:R2:{dev}:{2 * a}", "-n", "8", *layout.sanlock_sizes)
    sanlock_run(sanlock, "direct", "acquire_id", "-s", f"LS:2:{dev}:0")
    sanlock_run(sanlock, "direct", "acquire", "-r", f"LS:R1:{dev}:{a}", "-i", "2", "-g", "1")

    text = sanlock_run(sanlock, "direct", "dump", dev.path, "-f", "2").stdout
    theirs = parse_sanlock_dump(text)
    doc = ours(capsys, "direct", "dump", dev.path, "-f", "2")
    ls, r1, r2 = doc["areas"]
    assert (ls["kind"], ls["sector_size"], ls["align_size"], ls["max_hosts"]) == ("lockspace", layout.sector_size, a, layout.max_hosts)
    (host,) = ls["hosts"]
    rec = theirs["records"]
    assert rec[0] == (
        f"{ls['offset'] + (host['host_id'] - 1) * layout.sector_size:08d}", ls["lockspace"], host["host_name"],
        f"{host['timestamp']:010d}", f"{host['owner_id']:04d}", f"{host['generation']:04d}",
    )
    # sanlock's acquire waited 2·1 s (the record's io_timeout) and then wrote its own io_timeout, 10
    assert (host["host_id"], host["owner_id"], host["generation"], host["io_timeout"], host["valid"]) == (2, 2, 1, 10, True)
    for area, line in ((r1, rec[1]), (r2, rec[2])):
        assert line == (
            f"{area['offset']:08d}", area["lockspace"], area["resource"], f"{area['timestamp']:010d}",
            f"{area['owner_id']:04d}", f"{area['owner_generation']:04d}",
            f"{area['lver']}/{area['request']['lver']}/{area['request']['force_mode']}",
        )
        assert area["valid"] is True
    assert (r1["owner_id"], r1["owner_generation"], r1["lver"], r1["write_id"], r2["num_hosts"]) == (2, 1, 1, 2, 8)
    assert r1["timestamp"] > 0 and r2["timestamp"] == 0
    (d,) = r1["dblocks"]
    assert theirs["dblocks"] == [
        (f"dblock[{d['host_id'] - 1:04d}]", "mbal", str(d["mbal"]), "bal", str(d["bal"]), "inp", str(d["inp"]),
         "inp2", str(d["inp2"]), "inp3", str(d["inp3"]), "lver", str(d["lver"]), "sum", f"{d['checksum']:x}"),
    ]
    assert (d["host_id"], d["inp"], d["inp2"], d["lver"], d["valid"]) == (2, 2, 1, 1, True)
    assert ours_text(capsys, "direct", "dump", dev.path, "-f", "2") == text

    for spec, extra in ((f"LS:2:{dev}:0", DELTA_EXTRA), (f"LS:1:{dev}:0", DELTA_EXTRA)):
        compare_leader(sanlock_leader(sanlock, "-s", spec), ours(capsys, "direct", "read-leader", "-s", spec), extra)
    for spec in (f"LS:R1:{dev}:{a}", f"LS:R2:{dev}:{2 * a}"):
        compare_leader(sanlock_leader(sanlock, "-r", spec), ours(capsys, "direct", "read-leader", "-r", spec), PAXOS_EXTRA)


# --------------------------------------------------------------------------- leases across implementations


def test_sanlock_sees_our_lease_and_cannot_take_it(
    capsys: pytest.CaptureFixture[str], sanlock: str, loop_device: LoopFactory, tmp_path: Path
) -> None:
    dev = loop_device(size=8 * M)
    ours(capsys, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    ours(capsys, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    gen = ours(capsys, "direct", "acquire-id", "-s", f"LS:1:{dev}:0", "--host-name", "h1", "-o", "1")["generation"]
    got = ours(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", str(gen), "-o", "1")
    assert (got["owner_id"], got["owner_generation"], got["lver"]) == (1, gen, 1)

    dumped = parse_sanlock_dump(sanlock_run(sanlock, "direct", "dump", dev.path, "-f", "2").stdout)
    r1 = [r for r in dumped["records"] if r[2] == "R1"][0]
    assert (r1[4], r1[5], r1[6]) == ("0001", f"{gen:04d}", "1/0/0") and r1[3] != "0000000000"
    (db,) = dumped["dblocks"]
    assert db[0] == "dblock[0000]" and db[db.index("inp") + 1] == "1" and db[db.index("lver") + 1] == "1"
    leader = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:1M")
    assert (leader["owner_id"], leader["owner_generation"], leader["lver"], leader["write_id"]) == ("1", str(gen), "1", "1")

    # sanlock, as host 2, must not get a lease we hold
    proc = sanlock_run(sanlock, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1", ok=False)
    assert proc.returncode != 0 and "acquire done 0" not in proc.stdout
    after = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:1M")
    assert (after["owner_id"], after["lver"], after["timestamp"]) == ("1", "1", leader["timestamp"])

    # once we release, sanlock's ballot builds on ours: lver 2, its mbal beyond ours
    ours(capsys, "direct", "release", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", str(gen),
         "--force", "--reason", "interop test: our own lease", "--audit-log", str(tmp_path / "audit.log"))
    sanlock_run(sanlock, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1")
    doc = ours(capsys, "direct", "dump", f"{dev}:1M:1M", "-f", "2")
    (res,) = doc["areas"]
    assert (res["owner_id"], res["owner_generation"], res["lver"], res["write_id"]) == (2, 1, 2, 2)
    by_host = {d["host_id"]: d for d in res["dblocks"]}
    assert by_host[1]["released"] is True and by_host[1]["lver"] == 1
    assert by_host[2]["lver"] == 2 and by_host[2]["mbal"] % 2000 == 2 and by_host[2]["mbal"] > by_host[1]["mbal"]


def test_we_see_sanlocks_lease_and_respect_its_owner(
    capsys: pytest.CaptureFixture[str], sanlock: str, loop_device: LoopFactory
) -> None:
    dev = loop_device(size=8 * M)
    sanlock_run(sanlock, "direct", "init", "-s", f"LS:0:{dev}:0", "-o", "1")
    sanlock_run(sanlock, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    sanlock_run(sanlock, "direct", "acquire_id", "-s", f"LS:2:{dev}:0")
    sanlock_run(sanlock, "direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "2", "-g", "1")

    (res,) = ours(capsys, "direct", "dump", f"{dev}:1M:1M", "-f", "2")["areas"]
    assert (res["owner_id"], res["owner_generation"], res["lver"], res["valid"]) == (2, 1, 1, True)
    assert [(d["host_id"], d["inp"], d["inp2"], d["lver"]) for d in res["dblocks"]] == [(2, 2, 1, 1)]

    ours(capsys, "direct", "acquire-id", "-s", f"LS:1:{dev}:0", "--host-name", "h1", "-o", "1")
    acquire = ["direct", "acquire", "-r", f"LS:R1:{dev}:1M", "-i", "1", "-g", "1", "-o", "1"]
    # without a lockspace to judge it, a held lease is refused at once
    assert ours_fails(capsys, *acquire)["name"] == "ACQUIRE_IDLIVE"
    # its owner's host id is held but not renewing: not dead yet, so not ours either
    err = ours_fails(capsys, *acquire, "-s", f"LS:0:{dev}:0", "--nowait")
    assert err["name"] == "ACQUIRE_OWNED_RETRY"
    after = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:1M")
    assert (after["owner_id"], after["lver"]) == ("2", "1")

    # the owner gives up its host id: it holds nothing any more, and we may take the lease
    sanlock_run(sanlock, "direct", "release_id", "-s", f"LS:2:{dev}:0")
    got = ours(capsys, *acquire, "-s", f"LS:0:{dev}:0", "--nowait")
    assert (got["owner_id"], got["lver"]) == (1, 2)
    leader = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:1M")
    assert (leader["owner_id"], leader["owner_generation"], leader["lver"], leader["write_id"]) == ("1", "1", "2", "1")


def test_shared_holders_show_in_sanlocks_dump(
    capsys: pytest.CaptureFixture[str], sanlock: str, loop_device: LoopFactory
) -> None:
    dev = loop_device(size=4 * M)
    sanlock_run(sanlock, "direct", "init", "-r", f"LS:R1:{dev}:1M")
    ours(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M:SH", "-i", "3", "-g", "1")
    ours(capsys, "direct", "acquire", "-r", f"LS:R1:{dev}:1M:SH", "-i", "5", "-g", "2")
    text = sanlock_run(sanlock, "direct", "dump", f"{dev}:1M:1M", "-f", "2").stdout
    assert parse_sanlock_dump(text)["shared"] == [("0003", "0001", "SH"), ("0005", "0002", "SH")]
    assert ours_text(capsys, "direct", "dump", f"{dev}:1M:1M", "-f", "2") == text
    leader = sanlock_leader(sanlock, "-r", f"LS:R1:{dev}:1M")
    assert leader["timestamp"] == "0", "shared holders leave the leader free"
    (res,) = ours(capsys, "direct", "dump", f"{dev}:1M:1M")["areas"]
    assert res["shared"] == [{"host_id": 3, "generation": 1}, {"host_id": 5, "generation": 2}]
    # (`sanlock direct acquire` is no judge of shared holders: it takes such a lease exclusively,
    # because the check for live shared holders lives in sanlock's daemon, not in its paxos code.)
