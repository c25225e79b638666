"""Requests move a lease between daemons: the request record plus the owner's bit in our delta lease."""

from __future__ import annotations

import time
from typing import Any

from lockengine.client import Client, RemoteError
from tests.support.daemons import IO, DaemonFactory, Holder, TestDaemon, init_disk, read_leader

from .test_daemon_leases import two_hosts
from .test_daemon_recovery import ExitClock


def acquire_when_free(client: Client, resource: str, timeout: float) -> dict[str, Any]:
    """Retry ACQUIRE_IDLIVE until the owner has released (as a sanlock client would)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.acquire([resource])
        except RemoteError as exc:
            if exc.name != "ACQUIRE_IDLIVE" or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def request(d: TestDaemon, resource: str, mode: str) -> dict[str, Any]:
    rc, doc = d.cli_json("request", "-r", resource, "-f", mode)
    assert rc == 0 and doc["ok"] is True, doc
    return doc


def test_graceful_and_force_requests_move_leases(daemons: DaemonFactory, loop_device: object,
                                                 holders: list[Holder]) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    polite = h1.holder(f"LS:R1:{p1}:1M")
    stubborn = h1.holder(f"LS:R2:{p1}:2M", ignore_term=True)
    holders += [polite, stubborn]
    polite_exit, stubborn_exit = ExitClock(polite), ExitClock(stubborn)

    with h2.client() as me:
        me.register(name="requester")

        # graceful: SIGTERM at host 1's next renewal; the holder exits, host 1 releases, we acquire.
        asked = time.monotonic()
        doc = request(h2, f"LS:R1:{p2}:1M", "graceful")
        assert (doc["owner_id"], doc["lver"], doc["force_mode"], doc["notified"]) == (1, 2, 2, True)
        polite_exit.join(2 * IO + 3)
        # Our bit goes out at once (an early renewal); host 1 reads it at its next renewal (<= 2·io).
        assert polite_exit.at is not None and polite_exit.at < asked + 2 * IO + 1.5
        got = acquire_when_free(me, f"LS:R1:{p2}:1M", 5)
        assert got["lver"] == 2
        assert read_leader(p2, "LS", "R1", 1 << 20)["owner_id"] == 2

        # graceful does not kill a holder that ignores SIGTERM ...
        doc = request(h2, f"LS:R2:{p2}:2M", "graceful")
        time.sleep(2 * IO + 1)
        assert stubborn.proc.poll() is None
        # ... force does (SIGKILL), and the lease moves.
        doc = request(h2, f"LS:R2:{p2}:2M", "force")
        assert (doc["lver"], doc["force_mode"]) == (2, 1)  # the same lver, upgraded to force
        stubborn_exit.join(2 * IO + 3)
        got = acquire_when_free(me, f"LS:R2:{p2}:2M", 5)
        assert got["lver"] == 2

    log = "\n".join(h1.call("log_dump")["lines"])
    assert f"kill pid {polite.pid} (holder) SIGTERM count 1: graceful request for LS:R1:" in log
    assert f"kill pid {stubborn.pid} (holder) SIGKILL count 1: force request for LS:R2:" in log

    # A request for a free lease writes nothing and says so.
    doc = request(h2, f"LS:R3:{p2}:3M", "force")
    assert doc["free"] is True and doc["notified"] is False


def test_request_for_a_lease_held_here_acts_at_once(daemons: DaemonFactory, loop_device: object,
                                                    holders: list[Holder]) -> None:
    d1 = loop_device()  # type: ignore[operator]
    init_disk(d1.path)
    h1 = daemons("host1")
    h1.join("LS", 1, d1.path)
    marker = h1.run_dir / "killpath-ran"
    with_killpath = h1.holder(f"LS:R1:{d1.path}:1M", killpath=["/bin/sh", "-c", f"touch {marker}"])
    plain = h1.holder(f"LS:R2:{d1.path}:2M")
    holders += [with_killpath, plain]
    plain_exit = ExitClock(plain)

    # No bit to wait for: the daemon examines its own leases when the owner is itself.
    doc = request(h1, f"LS:R2:{d1.path}:2M", "graceful")
    assert doc["local"] is True and doc["acted"] == [f"LS:R2:{d1.path}:2097152:1"]
    plain_exit.join(2)

    # graceful with a killpath registered: the program runs instead of SIGTERM.
    doc = request(h1, f"LS:R1:{d1.path}:1M", "graceful")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.05)
    assert marker.exists()
    assert with_killpath.proc.poll() is None
    assert any("ran killpath /bin/sh" in line for line in h1.call("log_dump")["lines"])
