"""The harness's undo registry (no root needed): every kind `up` logs is registered by its own module,
entries round-trip through state.json unchanged, and `down` undoes newest first, past failures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from testhosts import teardown, undo
from testhosts.errors import HarnessError
from testhosts.records import UndoRecord
from testhosts.state import State

# One entry of each kind, as state.json has held them since the harness began (docs/harness.md).
ENTRIES: list[UndoRecord] = [
    {"kind": "netns-dir", "made_dir": False, "made_mount": True},
    {"kind": "bridge", "name": "lebr7"},
    {"kind": "guard-route", "dst": "10.238.0.0/16"},
    {"kind": "cgroup-parent", "path": "/sys/fs/cgroup/freezer/lockengine-testhosts-7"},
    {"kind": "cgroup", "path": "/sys/fs/cgroup/freezer/lockengine-testhosts-7/node1"},
    {"kind": "netns", "name": "le7-node1"},
    {"kind": "link", "name": "lev7-node1"},
    {"kind": "disk", "backing": "/run/x/disks/disk0.img"},
    {"kind": "process", "role": "watchdog", "host": "node1", "pid": 4242, "start": 123456},
    {"kind": "nspawn-runtime", "made": True, "hosts": ["node1", "node2"]},
    {"kind": "root-overlay", "host": "node1", "root": "/run/x/hosts/node1/root"},
    {"kind": "nspawn", "host": "node1"},
]


def test_every_kind_is_registered_by_its_own_module() -> None:
    kinds = undo.registered()
    assert sorted(kinds) == sorted(str(e["kind"]) for e in ENTRIES)
    owners = {name: cls.__module__ for name, cls in kinds.items()}
    assert owners["bridge"] == "testhosts.network" and owners["disk"] == "testhosts.storage"
    assert owners["cgroup"] == "testhosts.cgroups" and owners["nspawn"] == "testhosts.nspawn"
    assert owners["process"] == "testhosts.procs"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: str(e["kind"]))
def test_entries_round_trip_unchanged(entry: UndoRecord) -> None:
    step = undo.parse(json.loads(json.dumps(entry)))
    assert entry["kind"] == type(step).KIND
    assert step.to_record() == entry


def test_unknown_or_malformed_entries_are_refused() -> None:
    with pytest.raises(HarnessError, match="unknown undo entry 'teleporter'"):
        undo.parse({"kind": "teleporter"})
    with pytest.raises(HarnessError, match=r"fields \['nam'\], expected \['name'\]"):
        undo.parse({"kind": "bridge", "nam": "lebr7"})


def test_a_kind_is_registered_once() -> None:
    @dataclasses.dataclass(frozen=True)
    class Bridge2(undo.UndoStep):
        KIND = "bridge"

    with pytest.raises(RuntimeError, match="registered twice"):
        undo.kind(Bridge2)
    assert undo.registered()["bridge"].__name__ == "Bridge"


def test_down_undoes_newest_first_and_keeps_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[str] = []

    @dataclasses.dataclass(frozen=True)
    class Probe(undo.UndoStep):
        KIND = "probe"
        name: str

        def undo(self, state: State) -> None:
            if self.name == "stuck":
                raise HarnessError("still busy")
            done.append(self.name)

    monkeypatch.setitem(undo._KINDS, "probe", Probe)
    state = State.new(tmp_path, made_state_dir=False)
    for name in ("first", "stuck", "last"):
        Probe(name=name).log(state)
    with pytest.raises(HarnessError, match=r"(?s)could not remove everything.*probe .*stuck.*still busy"):
        teardown.undo_all(state)
    assert done == ["last", "first"]
    kept = State.load(tmp_path)
    assert kept is not None and kept.undo == [{"kind": "probe", "name": "stuck"}]
    assert kept.data["phase"] == "destroying"
