"""The side-by-side bench's own code paths (devkit/bench), without daemons or timing: how clients
share the leases, and that the report renders every row it measured. The bench itself never runs
in CI (it needs sanlock, a loop device and minutes)."""

from __future__ import annotations

from devkit.bench.compare import render, slopes
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


def test_growth_slopes_are_per_added_lockspace_and_per_thousand_held_leases() -> None:
    fig = {"rss_mib_ls1": 30.0, "rss_mib_ls101": 80.0, "threads_ls1": 12.0, "threads_ls101": 112.0,
           "rss_mib_held10": 40.0, "rss_mib_held4010": 60.0, "idle_cpu_percent_held10": 1.0,
           "idle_cpu_percent_held4010": 1.0}
    out = slopes(fig, [1, 101], [10, 4010])
    assert out["rss_mib_slope_ls"] == 0.5 and out["threads_slope_ls"] == 1.0
    assert out["rss_mib_slope_held"] == 5.0 and out["idle_cpu_percent_slope_held"] == 0.0
    assert "idle_rss_mib_slope_ls" not in out  # a figure not measured has no slope
    assert slopes(fig, [1], []) == {}  # one step: nothing to compare


def test_the_report_shows_the_held_leases_rows() -> None:
    le = {"rss_mib_held10": 40.0, "rss_mib_held1000": 50.0, "rss_mib_slope_held": 10.0}
    sl = {"rss_mib_held10": 20.0, "rss_mib_held1000": 25.0, "rss_mib_slope_held": 5.0}
    out = render({"device": "/dev/loopX", "io_timeout": 1, "count": 5, "resources": 0, "clients": [],
                  "lockspaces": 0, "leases": 0, "growth": [], "growth_idle": 1.0, "held_leases": [10, 1000],
                  "lockengine": le, "sanlock": sl, "ratio_lockengine_to_sanlock": {k: le[k] / sl[k] for k in sl}})
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert lines["RSS, 1000 leases held (MiB)"].split()[-1] == "2.00x"
    assert lines["slope: RSS per 1000 held leases (MiB)"].split()[-1] == "2.00x"


def test_the_report_shows_the_daemons_cpu_per_lease_operation() -> None:
    le = {"acquire_cpu_ms_8": 1.5, "release_cpu_ms_8": 0.5}
    sl = {"acquire_cpu_ms_8": 0.5, "release_cpu_ms_8": 0.1}
    out = render({"device": "/dev/loopX", "io_timeout": 1, "count": 5, "resources": 8, "clients": [8],
                  "lockspaces": 0, "leases": 0, "growth": [], "growth_idle": 1.0, "lockengine": le,
                  "sanlock": sl, "ratio_lockengine_to_sanlock": {k: le[k] / sl[k] for k in sl}})
    rows = [line.split() for line in out.splitlines() if "daemon CPU per" in line]
    assert [r[3] for r in rows] == ["acquire", "release"]
    assert [r[-1] for r in rows] == ["3.00x", "5.00x"]
