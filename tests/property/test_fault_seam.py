"""FaultyStorage itself: each fault does what docs/testing.md says, on a real O_DIRECT file, and the
rules are deterministic given the Random, settable at run time and safe to use from many threads."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit.faults import Fault, FaultRules, FaultyStorage, IoRecord
from lockengine.errors import InputError, LockError
from lockengine.storage import DirectStorage

S = 512


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "seam.img"
    with open(p, "wb") as f:
        f.truncate(64 * S)
    return p


@pytest.fixture
def raw(path: Path) -> Iterator[DirectStorage]:
    with DirectStorage(str(path)) as st:
        yield st


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def seam(path: Path, rules: FaultRules | None = None, seed: int = 1, **kw: object) -> FaultyStorage:
    return FaultyStorage(DirectStorage(str(path)), random.Random(seed), rules, **kw)  # type: ignore[arg-type]


def test_no_rules_passes_everything_through(path: Path, raw: DirectStorage) -> None:
    fs = seam(path)
    data = os.urandom(2 * S)
    fs.write(4 * S, data, 1)
    assert fs.read(4 * S, 2 * S, 1) == data == raw.read(4 * S, 2 * S, 1)
    assert (fs.path, fs.sector_size, fs.size()) == (str(path), S, 64 * S)
    assert [(r.op, r.outcome, r.landed) for r in fs.log] == [("write", "ok", True), ("read", "ok", False)]
    fs.close()


def test_eio_on_reads_and_writes_writes_nothing(path: Path, raw: DirectStorage) -> None:
    fs = seam(path, FaultRules(read_eio=1.0, write_eio=1.0))
    with pytest.raises(OSError) as e:
        fs.write(0, b"\x01" * S, 1)
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        fs.read(0, S, 1)
    assert e.value.errno == errno.EIO
    assert raw.read(0, S, 1) == bytes(S)
    assert fs.stats.eio == 2
    fs.close()


def test_delay_sleeps_less_than_the_io_timeout(path: Path) -> None:
    sleeps = Sleeps()
    fs = seam(path, FaultRules(delay=1.0, max_delay=50.0), sleep=sleeps)
    for _ in range(20):
        fs.read(0, S, 1.0)
    assert len(sleeps.calls) == 20 and all(0 <= s < 1.0 for s in sleeps.calls)
    assert fs.stats.delays == 20
    fs.close()


@pytest.mark.parametrize("lands", [True, False])
def test_hung_write_times_out_after_exactly_its_timeout(path: Path, raw: DirectStorage, lands: bool) -> None:
    sleeps = Sleeps()
    fs = seam(path, sleep=sleeps)
    fs.inject(Fault("hang", "write", lands=lands))
    with pytest.raises(LockError) as e:
        fs.write(S, b"\x07" * S, 3.0)
    assert e.value.name == "AIO_TIMEOUT"
    assert sum(sleeps.calls) == pytest.approx(3.0)
    assert raw.read(S, S, 1) == (b"\x07" * S if lands else bytes(S))
    assert fs.log[-1].outcome == "timeout" and fs.log[-1].landed is lands
    fs.inject(Fault("hang", "read"))
    with pytest.raises(LockError):
        fs.read(0, S, 2.0)
    fs.close()


@pytest.mark.parametrize("cut", [1, 100, 511, 512, 700, 1535])
def test_torn_write_lands_a_prefix_read_modify_write_of_its_sector(path: Path, raw: DirectStorage, cut: int) -> None:
    old = os.urandom(4 * S)
    raw.write(8 * S, old, 1)
    new = os.urandom(3 * S)
    fs = seam(path)
    fs.inject(Fault("torn", "write", cut=cut))
    with pytest.raises(OSError) as e:
        fs.write(8 * S, new, 1)
    assert e.value.errno == errno.EIO
    after = raw.read(8 * S, 4 * S, 1)
    assert after[:cut] == new[:cut]
    assert after[cut:] == old[cut:]  # the rest of the cut sector, later sectors and beyond: untouched
    assert fs.log[-1].outcome == f"torn:{cut}"
    fs.close()


def test_scripted_fault_matches_op_and_offset_once(path: Path) -> None:
    fs = seam(path)
    fs.inject(Fault("eio", "read", offset=10 * S + 7))
    fs.read(0, S, 1)  # does not cover the offset
    fs.write(10 * S, bytes(S), 1)  # a write, not a read
    with pytest.raises(OSError):
        fs.read(9 * S, 2 * S, 1)
    fs.read(9 * S, 2 * S, 1)  # used up
    assert fs.pending() == []
    fs.close()


def test_rules_change_at_run_time_and_heal(path: Path) -> None:
    fs = seam(path)
    fs.read(0, S, 1)
    fs.set_rules(read_eio=1.0)
    with pytest.raises(OSError):
        fs.read(0, S, 1)
    assert fs.rules.read_eio == 1.0
    fs.inject(Fault("eio", "write"))
    fs.heal()
    fs.read(0, S, 1)
    fs.write(0, bytes(S), 1)
    fs.close()


@pytest.mark.parametrize(
    ("kw", "field"), [({"read_eio": 1.5}, "read_eio"), ({"torn": -0.1}, "torn"), ({"max_delay": -1}, "max_delay")]
)
def test_bad_rules_name_the_field(kw: dict[str, float], field: str) -> None:
    with pytest.raises(InputError) as e:
        FaultRules(**kw)
    assert e.value.field == field


def test_gate_and_observer_see_every_io(path: Path) -> None:
    gated: list[tuple[str, int, int]] = []
    seen: list[IoRecord] = []
    fs = seam(path, FaultRules(write_eio=1.0), gate=lambda *a: gated.append(a), observer=seen.append)
    fs.read(0, S, 1)
    with pytest.raises(OSError):
        fs.write(S, bytes(S), 1)
    assert gated == [("read", 0, S), ("write", S, S)]
    assert [(r.op, r.outcome) for r in seen] == [("read", "ok"), ("write", "eio")]
    fs.close()


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_same_random_same_faults(tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    p = tmp_path_factory.mktemp("seed") / "d.img"
    with open(p, "wb") as f:
        f.truncate(16 * S)
    rules = FaultRules(delay=0.5, max_delay=0.5, read_eio=0.2, write_eio=0.2, torn=0.3, hang=0.1)

    def run() -> list[str]:
        fs = seam(p, rules, seed=seed, sleep=lambda s: None)
        for i in range(30):
            with contextlib.suppress(OSError, LockError):
                fs.write((i % 8) * S, bytes([i]) * S, 1) if i % 2 else fs.read(0, 2 * S, 1)
        fs.close()
        return [r.outcome for r in fs.log]

    assert run() == run()


def test_thread_safe_under_concurrent_hosts(path: Path) -> None:
    fs = seam(path, FaultRules(read_eio=0.3, write_eio=0.3, torn=0.2, delay=0.5, max_delay=0.001), seed=7)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                try:
                    if i % 2:
                        fs.write(n * S, bytes([n]) * S, 1)
                    else:
                        fs.read(0, 8 * S, 1)
                except OSError:
                    pass
                if i == 25 and n == 0:
                    fs.set_rules(read_eio=0.0)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fs.log) == 400
    st_ = fs.stats
    assert st_.reads + st_.writes == 400
    assert st_.eio + st_.torn == sum(1 for r in fs.log if r.outcome != "ok")
    fs.close()
