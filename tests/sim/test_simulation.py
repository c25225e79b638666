"""The CI run: at least a million simulated host-seconds of whole daemons with every fault, 0 violations.

One 250-host world (4K/1M, one lockspace) and then small worlds (5-8 hosts, 512 and 4K, per-host
io_timeouts, misconfigured watchdog devices) until the host-seconds are reached. The summary line is
printed by conftest.py; a failing seed's replay command is in the assertion message.
"""

from __future__ import annotations

from .conftest import SUMMARY
from .run import ALL_FAULTS, run_many

HOST_SECONDS = 1_000_000


def test_a_million_host_seconds_of_whole_daemons() -> None:
    totals = run_many(HOST_SECONDS, first_seed=1, big_seeds=(1,))
    SUMMARY.append(totals.line())
    assert totals.host_seconds >= HOST_SECONDS
    missing = [k for k in ALL_FAULTS if not totals.faults.get(k)]
    missing += [k for k in ("per_host_io_timeout", "fire_timeout_mismatch") if not totals.faults.get(k)]
    assert not missing, f"faults never injected: {missing}"
    report = "\n".join(f"{v}\n  replay: {replay}" for replay, v in totals.violations[:10])
    assert not totals.violations, f"{len(totals.violations)} violation(s):\n{report}"
