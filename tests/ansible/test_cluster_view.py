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


def gets_obs(host: str, my_id: int, state: str, states: dict[int, str]) -> dict[str, Any]:
    """An observation built from `lockengine client gets -h 1 --json`: hosts name themselves host_name and
    carry the daemon's upper-case states."""
    return {"host": host, "reachable": True, "reason": "",
            "lockspaces": {"LS": {"state": state, "host_id": my_id,
                                  "hosts": [{"host_id": i, "host_name": f"abc.n{i}", "state": s}
                                            for i, s in states.items()]}},
            "leases": []}


def test_a_failed_lockspace_keeps_its_stale_view_and_the_live_host_is_marked() -> None:
    # storage_loss: node2's path hangs; its lockspace is FAILED (its holder waits in D state), its table is
    # that of its last renewal, aged: node3 fail. node1 and node3 renew and see node3 live.
    table = cluster_view_table([gets_obs("node1", 1, "JOINED", {1: "LIVE", 2: "FAIL", 3: "LIVE"}),
                                gets_obs("node2", 2, "FAILED", {1: "FAIL", 2: "LIVE", 3: "FAIL"}),
                                gets_obs("node3", 3, "JOINED", {1: "LIVE", 2: "FAIL", 3: "LIVE"})])
    assert table["disagreements"] == ["LS host 1: node1 sees live, node2 sees fail, node3 sees live",
                                      "LS host 3: node1 sees live, node2 sees fail, node3 sees live"]
    by_id = {r.split()[0]: r for r in rows(table)}
    assert by_id["2"].split()[1] == "abc.n2" and MARK not in by_id["2"]   # node2 sees itself fail, as the others do
    assert MARK in by_id["3"]


def test_waiting_requests_unread_disks_and_left_lockspaces_are_listed_not_marked() -> None:
    leases = [{"lockspace": "LS", "resource": "R1", "state": "ACQUIRING"},
              {"lockspace": "LS", "resource": "R2", "lver": 3, "state": "HELD", "host_id": 1, "disk_owner_id": None,
               "disk_error": "async task did not complete within the requested time - 5s"},
              {"lockspace": "LS", "resource": "R3", "lver": 2, "state": "HELD", "host_id": None, "disk_owner_id": 1}]
    table = cluster_view_table([obs("node1", 1, {1: "LIVE"}, leases=leases)])
    assert table["disagreements"] == []
    assert "  node1 waits for LS:R1 (acquiring)" in table["lines"]
    assert ("  node1 holds LS:R2 lver 3; disk not read (async task did not complete within the requested time - 5s),"
            " its id 1") in table["lines"]
    assert "  node1 holds LS:R3 lver 2; disk owner 1; lockspace LS not joined here (its id unknown)" in table["lines"]


def test_a_held_lease_the_disk_does_not_name_at_all_is_marked() -> None:
    # lease_info answered, but with no lease there: the disk says otherwise (no owner), which is a disagreement.
    lease = {"lockspace": "LS", "resource": "R1", "lver": 1, "state": "HELD", "host_id": 1, "disk_owner_id": None,
             "disk_error": None}
    table = cluster_view_table([obs("node1", 1, {1: "LIVE"}, leases=[lease])])
    assert table["disagreements"] == ["node1 believes it holds LS:R1 but the disk names owner None"]
