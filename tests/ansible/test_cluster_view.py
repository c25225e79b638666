"""The cluster view's table (filter lockengine.cluster.cluster_view_table): rows per lockspace and host id,
one column per host, disagreements marked — hosts that see a host differently, a lease a host believes it
holds while the disk names another owner — and hosts without a view listed."""

from __future__ import annotations

from typing import Any

from ansible_collections.lockengine.cluster.plugins.filter.cluster_view import MARK, cluster_view_table


def obs(host: str, my_id: int, states: dict[int, str], state: str = "JOINED",
        leases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"host": host, "reachable": True, "reason": "",
            "lockspaces": {"LS": {"state": state, "host_id": my_id,
                                  "hosts": [{"host_id": i, "name": f"n{i}", "state": s} for i, s in states.items()]}},
            "leases": leases or []}


def rows(table: dict[str, Any]) -> list[str]:
    return [line for line in table["lines"] if line.startswith("  ") and line.split()[0].isdigit()]


def test_agreement_has_no_mark() -> None:
    table = cluster_view_table([obs(f"node{i}", i, {1: "LIVE", 2: "LIVE", 3: "LIVE"}) for i in (1, 2, 3)])
    assert table["disagreements"] == []
    assert len(rows(table)) == 3 and not any(MARK in r for r in rows(table))
    assert table["lines"][-1] == "0 disagreement(s)"


def test_host_seen_live_by_one_and_fail_by_another_is_marked() -> None:
    table = cluster_view_table([obs("node1", 1, {1: "LIVE", 2: "LIVE", 3: "LIVE"}),
                                obs("node2", 2, {1: "LIVE", 2: "LIVE", 3: "FAIL"}),
                                obs("node3", 3, {1: "FAIL", 2: "FAIL", 3: "LIVE"}, state="FAILED")])
    marked = [r for r in rows(table) if MARK in r]
    assert [r.split()[0] for r in marked] == ["1", "2", "3"]
    assert "LS host 3: node1 sees live, node2 sees fail, node3 sees fail" in table["disagreements"]
    # node3's own lockspace FAILED is its view of itself
    assert "node3 sees fail" in table["disagreements"][2]


def test_a_lease_the_disk_gives_to_another_host_is_marked() -> None:
    lease = {"lockspace": "LS", "resource": "R1", "lver": 4, "host_id": 3, "disk_owner_id": 2}
    good = {"lockspace": "LS", "resource": "R2", "lver": 1, "host_id": 1, "disk_owner_id": 1}
    table = cluster_view_table([obs("node1", 1, {1: "LIVE", 3: "LIVE"}, leases=[good]),
                                obs("node3", 3, {1: "LIVE", 3: "LIVE"}, leases=[lease])])
    assert table["disagreements"] == ["node3 believes it holds LS:R1 but the disk names owner 2"]
    assert any("node3 holds LS:R1" in line and MARK in line for line in table["lines"])
    assert any("node1 holds LS:R2" in line and MARK not in line for line in table["lines"])


def test_unreachable_host_is_listed_not_counted() -> None:
    down = {"host": "node3", "reachable": False, "reason": "ssh: no route", "lockspaces": {}, "leases": []}
    table = cluster_view_table([obs("node1", 1, {1: "LIVE", 2: "LIVE", 3: "DEAD"}),
                                obs("node2", 2, {1: "LIVE", 2: "LIVE", 3: "DEAD"}),
                                down])
    assert table["disagreements"] == []
    assert "node3: no view (ssh: no route)" in table["lines"]
    assert any(r.split()[0] == "3" and "dead" in r and r.rstrip().endswith("-") for r in rows(table))
