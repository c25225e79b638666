"""``lockengine client metrics`` against a real daemon on a real loop device, read back with Prometheus's
own text parser (prometheus_client): the values move when a lease is taken and when the lockspace fails
(``blockdev --setro`` on the host's path), and a daemon that does not answer is ``lockengine_up 0``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemons import IO, REPO, DaemonFactory, Holder, TestDaemon, env_for, init_disk

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(d: TestDaemon, *extra: str) -> tuple[Samples, dict[str, str]]:
    proc = d.cli("metrics", *extra, check=True)
    samples: Samples = {}
    kinds: dict[str, str] = {}
    for family in text_string_to_metric_families(proc.stdout):
        kinds[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, kinds


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no {name}{labels}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_follow_leases_and_a_failed_lockspace(daemons: DaemonFactory, loop_device: object, tmp_path: Path,
                                                      holders: list[Holder]) -> None:
    dev = loop_device()  # type: ignore[operator]
    init_disk(dev.path)
    h = daemons("host1")
    h.join("LS", 1, dev.path, wait=False)
    h.wait_joined("LS")
    audit = tmp_path / "force-release.log"
    audit.write_text("time=2026-01-01T00:00:00Z host=a lease=LS:R1 owner=2 result=released reason=''\n"
                     "time=2026-01-01T00:00:01Z host=a lease=LS:R2 owner=3 result=refused reason=''\n"
                     "time=2026-01-01T00:00:02Z host=a lease=LS:R3 owner=3 result=released reason='x y'\n")
    time.sleep(2 * IO + 0.5)  # one renewal after the join: latencies in the history
    m, kinds = scrape(h, "--audit-log", str(audit))
    assert value(m, "lockengine_up") == 1
    assert value(m, "lockengine_lockspace_state", lockspace="LS", state="JOINED") == 1
    assert value(m, "lockengine_lockspace_state", lockspace="LS", state="FAILED") == 0
    assert value(m, "lockengine_lockspace_host_id", lockspace="LS") == 1
    fail_after = value(m, "lockengine_lockspace_renewal_fail_seconds", lockspace="LS")
    assert fail_after == 8 * IO
    assert 0 <= value(m, "lockengine_lockspace_renewal_age_seconds", lockspace="LS") < fail_after
    assert value(m, "lockengine_renewal_read_seconds", lockspace="LS") > 0
    assert value(m, "lockengine_renewal_write_seconds_max", lockspace="LS") > 0
    assert value(m, "lockengine_renewal_errors", lockspace="LS") == 0
    assert value(m, "lockengine_hosts", lockspace="LS", state="live") == 1
    assert value(m, "lockengine_host_live", lockspace="LS", host_id="1", host_name="host1") == 1
    assert not [k for k in m if k[0] == "lockengine_leases"], "no lease is held yet"
    assert value(m, "lockengine_clients") == 0
    assert value(m, "lockengine_force_releases_total", result="released") == 2
    assert value(m, "lockengine_force_releases_total", result="refused") == 1
    assert kinds["lockengine_force_releases"] == "counter" and kinds["lockengine_up"] == "gauge"
    assert value(m, "lockengine_watchdog_protected", backend="none", device="") == 0

    holder = h.holder(f"LS:R1:{dev.path}:1M", ignore_term=True)  # recovery lasts kill_grace: FAILED is seen
    holders.append(holder)
    assert holder.acquired
    m, _ = scrape(h, "--audit-log", str(tmp_path / "absent.log"))
    assert value(m, "lockengine_leases", lockspace="LS", mode="exclusive", state="HELD") == 1
    assert value(m, "lockengine_clients") == 1
    assert not [k for k in m if k[0] == "lockengine_force_releases_total"], "no audit log, nothing counted"

    subprocess.run(["blockdev", "--setro", dev.path], check=True)
    try:
        deadline = time.monotonic() + 8 * IO + 10
        while True:
            m, _ = scrape(h)
            if value(m, "lockengine_lockspace_state", lockspace="LS", state="JOINED") == 0:
                break
            assert time.monotonic() < deadline, "the lockspace did not leave JOINED after its storage failed"
            time.sleep(0.2)
        assert value(m, "lockengine_lockspace_state", lockspace="LS", state="FAILED") == 1
        assert value(m, "lockengine_lockspace_renewal_age_seconds", lockspace="LS") >= fail_after
        assert value(m, "lockengine_renewal_errors", lockspace="LS") >= 1
        assert value(m, "lockengine_recovering", lockspace="LS", reason=next(
            k[1][1][1] for k in m if k[0] == "lockengine_recovering")) == 1
        assert value(m, "lockengine_watchdog_petting", backend="none", device="") == 0
    finally:
        subprocess.run(["blockdev", "--setrw", dev.path], check=True)


def test_metrics_without_a_daemon_say_up_0_and_write_atomically(tmp_path: Path) -> None:
    out = tmp_path / "lockengine.prom"
    proc = subprocess.run([sys.executable, "-m", "lockengine", "client", "metrics", "-o", str(out),
                           "--audit-log", str(tmp_path / "none")], env=env_for(tmp_path / "nothing"),
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    families = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    assert [s.value for s in families["lockengine_up"].samples] == [0]
    assert list(tmp_path.glob(".lockengine-metrics.*")) == [], "no temporary file left behind"
    assert oct(out.stat().st_mode & 0o777) == "0o644"
