"""The states' wire strings: the str-valued Enums leave the daemon as exactly these strings.

The daemon's JSON replies, the CLI's text, the metrics' labels and the sanlock socket's flags all carry the
members' values; the Ansible modules and sanlock's tools parse them. A member must equal, print and
serialise as its string, and the strings themselves must not change. A plain ``Enum`` in their place is
shown to break the pin.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

import pytest

from lockengine import metrics
from lockengine.daemon.escalation import Action
from lockengine.daemon.protocol import encode_reply
from lockengine.daemon.sanlock import views, wire
from lockengine.delta import HostInfo
from lockengine.liveness import ALIVE, RUN, WAIT, Verdict
from lockengine.states import HostState, LockspaceState, ResourceState

WIRE = {
    LockspaceState: ["ADD", "JOINED", "FAILED", "REM"],
    HostState: ["FREE", "LIVE", "FAIL", "DEAD", "UNKNOWN"],
    ResourceState: ["ACQUIRING", "HELD", "ORPHAN", "RELEASING"],
    Verdict: ["RUN", "ALIVE", "WAIT"],
    Action: ["SIGTERM", "SIGKILL", "killpath", "wait"],
}


def wire_problems(member: enum.Enum, text: str) -> list[str]:
    """How ``member`` differs from ``text`` where it reaches the wire (empty: it does not)."""
    out = []
    if member != text:
        out.append("compares unequal")
    logged = "%s" % member  # noqa: UP031 -- how the daemon's log lines format it
    if f"{member}" != text or str(member) != text or logged != text:
        out.append("prints differently")
    try:
        if json.loads(json.dumps({"state": member}))["state"] != text:
            out.append("serialises differently")
    except TypeError:
        out.append("does not serialise")
    return out


@pytest.mark.parametrize("kind", list(WIRE), ids=lambda k: k.__name__)
def test_members_are_their_wire_strings(kind: type[enum.Enum]) -> None:
    assert [m.value for m in kind] == WIRE[kind]
    for member, text in zip(kind, WIRE[kind], strict=True):
        assert wire_problems(member, text) == [], member
        assert kind(text) is member  # what comes back off the wire is the member again


def test_a_plain_enum_breaks_the_pin() -> None:
    class Plain(enum.Enum):
        JOINED = "JOINED"

    assert wire_problems(Plain.JOINED, "JOINED") == ["compares unequal", "prints differently", "does not serialise"]


def test_the_daemons_reply_carries_the_strings() -> None:
    info = HostInfo(host_id=2, owner_id=2, generation=3, timestamp=50, host_name="h2", io_timeout=1,
                    first_check=1.0, last_check=2.0, last_live=2.0, state=HostState.DEAD)
    reply = encode_reply(7, {"state": LockspaceState.JOINED, "hosts": [info.as_dict()],
                             "resources": [{"state": ResourceState.HELD}]})
    assert b'"state":"JOINED"' in reply and b'"state":"DEAD"' in reply and b'"state":"HELD"' in reply
    assert b"LockspaceState" not in reply and b"HostState" not in reply


def test_sanlock_flags_from_members_and_from_parsed_strings() -> None:
    info: dict[str, Any] = HostInfo(host_id=2, owner_id=2, generation=3, timestamp=50, host_name="h2",
                                    io_timeout=1, first_check=1.0, last_check=2.0, last_live=2.0,
                                    state=HostState.FAIL).as_dict()
    parsed = json.loads(json.dumps(info))  # a plain str again, as a JSON reader sees it
    for h in (info, parsed):
        assert wire.decode_host(views.host_list([h], 0)[0], 0).flags == wire.HOST_FAIL
    spaces = [{"lockspace": "A", "host_id": 1, "path": "/d", "offset": 0, "state": st}
              for st in (LockspaceState.ADD, "ADD", LockspaceState.JOINED, "JOINED", LockspaceState.REM)]
    flags = [struct.unpack_from("<I", b, 56)[0] for b in views.lockspace_list(spaces)]
    assert flags == [wire.LSF_ADD, wire.LSF_ADD, 0, 0, wire.LSF_REM]


def test_metric_labels_keep_their_values() -> None:
    assert metrics.LOCKSPACE_STATES == ("ADD", "JOINED", "REM", "FAILED")
    assert metrics.HOST_STATES == ("free", "live", "fail", "dead", "unknown")


def test_the_short_verdict_names_are_the_members() -> None:
    assert (RUN, ALIVE, WAIT) == (Verdict.RUN, Verdict.ALIVE, Verdict.WAIT)
    assert all(isinstance(v, Verdict) for v in (RUN, ALIVE, WAIT))
