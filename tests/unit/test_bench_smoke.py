"""The side-by-side bench's own code paths (devkit/bench), without daemons or timing: how clients
share the leases, and that the report renders every row it measured. The bench itself never runs
in CI (it needs sanlock, a loop device and minutes)."""

from __future__ import annotations

from devkit.bench.compare import render
from devkit.bench.throughput import shares


def test_every_lease_goes_to_exactly_one_client_and_none_is_idle() -> None:
    offsets = list(range(10))
    parts = shares(offsets, 4)
    assert sorted(x for p in parts for x in p) == offsets
    assert len(parts) == 4 and all(parts)
    assert len(shares(offsets, 32)) == 10  # never more clients than leases


def test_the_report_shows_each_measured_figure_and_its_ratio() -> None:
    le = {"acquire_ms": 2.0, "release_ms": 1.0, "acquire_per_s_8": 300.0, "rss_mib_ls10": 40.0,
          "cli_status_ms": 50.0, "bare_python_ms": 25.0}
    sl = {"acquire_ms": 4.0, "release_ms": 0.5, "acquire_per_s_8": 600.0, "rss_mib_ls10": 20.0}
    ratios = {k: le[k] / sl[k] for k in sl}
    out = render({"device": "/dev/loopX", "io_timeout": 1, "count": 5, "resources": 8, "clients": [8],
                  "lockspaces": 0, "leases": 0, "growth": [10], "growth_idle": 1.0, "lockengine": le,
                  "sanlock": sl, "ratio_lockengine_to_sanlock": ratios})
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert lines["acquire median (ms)"].split()[-1] == "0.50x"
    assert lines["release median (ms)"].split()[-1] == "2.00x"
    assert lines["acquires/s, 8 client(s)"].split()[-1] == "0.50x"
    assert lines["RSS, 10 lockspace(s) (MiB)"].split()[-1] == "2.00x"
    assert out.splitlines()[-1].endswith("2.00x")  # client status / bare interpreter


def test_the_report_shows_the_daemons_cpu_per_lease_operation() -> None:
    le = {"acquire_cpu_ms_8": 1.5, "release_cpu_ms_8": 0.5}
    sl = {"acquire_cpu_ms_8": 0.5, "release_cpu_ms_8": 0.1}
    out = render({"device": "/dev/loopX", "io_timeout": 1, "count": 5, "resources": 8, "clients": [8],
                  "lockspaces": 0, "leases": 0, "growth": [], "growth_idle": 1.0, "lockengine": le,
                  "sanlock": sl, "ratio_lockengine_to_sanlock": {k: le[k] / sl[k] for k in sl}})
    rows = [line.split() for line in out.splitlines() if "daemon CPU per" in line]
    assert [r[3] for r in rows] == ["acquire", "release"]
    assert [r[-1] for r in rows] == ["3.00x", "5.00x"]
