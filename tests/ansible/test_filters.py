"""The controller-side filters: host id assignment (role lockspace) and offsets."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.lockengine.cluster.plugins.filter.host_ids import assign_host_ids
from ansible_collections.lockengine.cluster.plugins.filter.offsets import lease_offset


def member(host: str, explicit: object = None, name: str | None = None) -> dict[str, object]:
    return {"host": host, "host_name": name or f"abcd.{host}", "explicit_id": explicit}


def slot(host_id: int, name: str, timestamp: int = 0, generation: int = 1) -> dict[str, object]:
    return {"host_id": host_id, "name": name, "timestamp": timestamp, "generation": generation}


def test_fresh_lockspace_gets_the_lowest_ids_in_host_order() -> None:
    ids = assign_host_ids([member("node3"), member("node1"), member("node2")], [])
    assert ids == {"node1": 1, "node2": 2, "node3": 3}


def test_explicit_id_wins_and_others_fill_the_gaps() -> None:
    ids = assign_host_ids([member("a"), member("b", explicit=1), member("c", explicit="5")], [])
    assert ids == {"b": 1, "c": 5, "a": 2}


def test_a_host_gets_back_the_slot_its_name_owns_on_disk() -> None:
    slots = [slot(1, "abcd.other", timestamp=0), slot(7, "abcd.b", timestamp=99)]
    ids = assign_host_ids([member("a"), member("b")], slots)
    # b keeps 7 (fast rejoin); slot 1 was released by a foreign host, so it is free for a.
    assert ids == {"a": 1, "b": 7}


def test_live_foreign_slots_and_slots_named_by_play_hosts_are_not_free() -> None:
    slots = [slot(1, "abcd.foreign", timestamp=123), slot(2, "abcd.b", timestamp=0)]
    ids = assign_host_ids([member("a"), member("b", explicit=4)], slots)
    # 1 is live for a foreign host; 2 is b's own old slot (b moves to 4 explicitly), kept reserved.
    assert ids == {"b": 4, "a": 3}


def test_second_run_gives_the_same_ids() -> None:
    members = [member("n1"), member("n2"), member("n3")]
    first = assign_host_ids(members, [])
    slots = [slot(i, f"abcd.{h}", timestamp=50 + i) for h, i in first.items()]
    assert assign_host_ids(members, slots) == first


def test_duplicate_explicit_ids_are_refused_naming_both_hosts() -> None:
    with pytest.raises(AnsibleFilterError, match=r"lockengine_host_id 3 is given to both a and b"):
        assign_host_ids([member("a", explicit=3), member("b", explicit=3)], [])


def test_duplicate_names_are_refused_as_cloned_machines() -> None:
    with pytest.raises(AnsibleFilterError, match=r"same lockengine host name .*machine-id"):
        assign_host_ids([member("a", name="x.n"), member("b", name="x.n")], [])


def test_missing_name_says_the_daemon_is_needed() -> None:
    with pytest.raises(AnsibleFilterError, match=r"lockengined running"):
        assign_host_ids([{"host": "a", "host_name": "", "explicit_id": None}], [])


def test_explicit_id_on_a_slot_live_for_another_name_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match=r"in use on disk .*'abcd.b' \(b\).*lockengine_host_id_allow_busy"):
        assign_host_ids([member("a", explicit=1), member("b")], [slot(1, "abcd.b", timestamp=77)])
    ids = assign_host_ids([member("a", explicit=1), member("b")], [slot(1, "abcd.b", timestamp=77)], allow_busy=True)
    assert ids == {"a": 1, "b": 2}


def test_out_of_range_and_exhausted() -> None:
    with pytest.raises(AnsibleFilterError, match=r"out of range .* \(1 to 250\)"):
        assign_host_ids([member("a", explicit=251)], [], 250)
    with pytest.raises(AnsibleFilterError, match=r"no free host id left"):
        assign_host_ids([member("a"), member("b")], [slot(1, "abcd.x", timestamp=5)], 2)
    with pytest.raises(AnsibleFilterError, match=r"not a number"):
        assign_host_ids([member("a", explicit="three")], [])


def test_none_like_explicit_ids_mean_unset() -> None:
    # Older ansible-core templates an undefined id to the string "None".
    assert assign_host_ids([member("a", explicit="None"), member("b", explicit="")], []) == {"a": 1, "b": 2}


@pytest.mark.parametrize(("value", "expected"), [(0, 0), ("0", 0), ("1M", 1 << 20), ("3m", 3 << 20),
                                                 (2097152, 2097152), (" 8M ", 8 << 20)])
def test_lease_offset(value: object, expected: int) -> None:
    assert lease_offset(value) == expected


@pytest.mark.parametrize("value", ["1G", "-1", "1.5M", "", True, None])
def test_lease_offset_refuses_other_forms(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match=r"offset: .* is not an offset"):
        lease_offset(value)
