"""The daemon's counters (lockengine/daemon/counters.py) as metrics.py renders them, read back with
prometheus_client's parser: counters get _total, latency is a histogram whose buckets are cumulative and
end in +Inf = _count, and the multiplexer tells the daemon which lockspace stopped the petting (once per
stop, not once per pass)."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from lockengine.daemon.counters import ACQUIRE_SECONDS, ACQUIRES, ESCALATION, RELEASES, Counters
from lockengine.metrics import Snapshot, render
from lockengine.watchdog.backends import make_backend
from lockengine.watchdog.multiplexer import WatchdogMultiplexer


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def status_with(counters: Counters) -> dict[str, object]:
    return {"daemon": {"version": "0", "host_name": "h", "uptime": 1.0}, "lockspaces": [], "clients": [],
            "resources": [], "recovering": [], "counters": counters.snapshot()}


def test_counters_render_as_prometheus_counters_and_histograms() -> None:
    c = Counters()
    c.call(ACQUIRES, ["LS"], "ok", 0.003)
    c.call(ACQUIRES, ["LS"], "ok", 0.2)
    c.call(ACQUIRES, ["LS", "LS2", "LS"], "ACQUIRE_IDLIVE", 1000.0)  # above every bucket: +Inf only
    c.call(RELEASES, ["LS"], "ok", 0.01, cause="exit")
    c.inc(ESCALATION, lockspace="LS", step="sigterm", cause="recovery")
    c.inc(ESCALATION, lockspace="LS", step="sigterm", cause="recovery")
    text = render(Snapshot(monotime=1.0, status=status_with(c)))
    kinds = {name: f.type for name, f in families(text).items()}  # type: ignore[attr-defined]
    assert kinds["lockengine_lease_acquires"] == "counter"
    assert kinds["lockengine_lease_acquire_seconds"] == "histogram"
    assert kinds["lockengine_escalation_steps"] == "counter"
    m = samples(text)
    assert m[("lockengine_lease_acquires_total", (("lockspace", "LS"), ("result", "ok")))] == 2
    assert m[("lockengine_lease_acquires_total", (("lockspace", "LS"), ("result", "ACQUIRE_IDLIVE")))] == 1
    assert m[("lockengine_lease_acquires_total", (("lockspace", "LS2"), ("result", "ACQUIRE_IDLIVE")))] == 1
    ls = (("lockspace", "LS"),)
    assert m[("lockengine_lease_acquire_seconds_count", ls)] == 3
    assert m[("lockengine_lease_acquire_seconds_sum", ls)] == 1000.203
    assert m[("lockengine_lease_acquire_seconds_bucket", (("le", "0.005"), ("lockspace", "LS")))] == 1
    assert m[("lockengine_lease_acquire_seconds_bucket", (("le", "0.25"), ("lockspace", "LS")))] == 2
    assert m[("lockengine_lease_acquire_seconds_bucket", (("le", "300.0"), ("lockspace", "LS")))] == 2
    assert m[("lockengine_lease_acquire_seconds_bucket", (("le", "+Inf"), ("lockspace", "LS")))] == 3
    assert m[("lockengine_lease_releases_total", (("cause", "exit"), ("lockspace", "LS"), ("result", "ok")))] == 1
    assert m[("lockengine_escalation_steps_total",
              (("cause", "recovery"), ("lockspace", "LS"), ("step", "sigterm")))] == 2
    assert not [k for k in m if k[0].startswith("lockengine_lease_release_seconds") and k[1] == (("lockspace", "LS2"),)]


def test_no_counters_no_families_and_an_old_daemon_renders() -> None:
    text = render(Snapshot(monotime=1.0, status=status_with(Counters())))
    assert not [n for n in families(text) if "acquire" in n or "escalation" in n]
    old = status_with(Counters())
    del old["counters"]  # a daemon from before the counters
    assert samples(render(Snapshot(monotime=1.0, status=old)))[("lockengine_up", ())] == 1


def test_counters_are_thread_safe() -> None:
    c = Counters()

    def work() -> None:
        for _ in range(2000):
            c.call(ACQUIRES, ["LS"], "ok", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = c.snapshot()
    assert snap[ACQUIRES] == [{"lockspace": "LS", "result": "ok", "count": 8000}]
    assert snap[ACQUIRE_SECONDS][0]["count"] == 8000 and snap[ACQUIRE_SECONDS][0]["buckets"][0] == [0.005, 8000]


def test_the_multiplexer_names_the_lockspace_that_stopped_petting_once_per_stop() -> None:
    now = [100.0]
    mux = WatchdogMultiplexer(make_backend("none", "", 10), 10, test_interval=2.0, clock=lambda: now[0])
    stopped: list[str] = []
    mux.on_stopped = stopped.append
    mux.start(thread=False)
    mux.register("lockengine_A:1", 120.0)
    mux.register("lockengine_B:2", 110.0)
    assert mux.check() and stopped == []
    now[0] = 108.5  # B within the test interval of its expiry
    assert not mux.check() and stopped == ["lockengine_B:2"]
    now[0] = 111.0  # B expired: still the same stop
    assert not mux.check() and stopped == ["lockengine_B:2"]
    mux.unregister("lockengine_B:2")
    assert mux.check()  # petting resumed
    now[0] = 119.0
    assert not mux.check() and stopped == ["lockengine_B:2", "lockengine_A:1"]
