"""Several local processes share one shared lease (sanlock allows it): the host's shared mode stays on
disk until the last of them is gone, so another host cannot take the lease exclusively before that."""

from __future__ import annotations

import time

from tests.support.daemons import DaemonFactory, Holder, TestDaemon

from .test_daemon_leases import two_hosts


def _resources(d: TestDaemon) -> list[tuple[str, int, bool]]:
    return sorted((r["resource"], r["pid"], r["shared"]) for r in d.call("status")["resources"])


def _wait_resources(d: TestDaemon, want: list[tuple[str, int, bool]]) -> None:
    deadline = time.monotonic() + 30
    while (got := _resources(d)) != want:
        assert time.monotonic() < deadline, got
        time.sleep(0.1)


def test_local_shared_holders(daemons: DaemonFactory, loop_device: object, holders: list[Holder]) -> None:
    h1, h2, p1, p2 = two_hosts(daemons, loop_device)
    shared = f"LS:R1:{p1}:1M:SH"
    a, b = h1.holder(shared), h1.holder(shared)
    holders += [a, b]
    assert a.acquired is not None and b.acquired is not None, (a.first, b.first)
    _wait_resources(h1, sorted([("R1", a.pid, True), ("R1", b.pid, True)]))
    assert h1.call("inquire", pid=b.pid)["resources"] == [shared.replace(":1M:", ":1048576:")]

    # An exclusive request here while it is shared: still EEXIST.
    c = h1.holder(f"LS:R1:{p1}:1M")
    holders.append(c)
    assert c.error is not None and c.error["name"] == "EEXIST", c.first

    def exclusive_on_host2() -> Holder:
        x = h2.holder(f"LS:R1:{p2}:1M")
        holders.append(x)
        return x

    assert exclusive_on_host2().error is not None  # host 1 shares it
    a.stop()
    _wait_resources(h1, [("R1", b.pid, True)])
    x = exclusive_on_host2()
    assert x.error is not None, x.first  # b still shares it: host 1's shared mode is still on disk
    b.stop()
    _wait_resources(h1, [])
    x = exclusive_on_host2()
    assert x.acquired is not None, x.first
    assert "Traceback" not in h1.log_text()
