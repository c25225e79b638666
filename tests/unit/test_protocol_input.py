"""Refusals of user input on the daemon's socket: sanlock-style names with the field, never ERROR (-201)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lockengine.daemon.commands import lockspace_spec, resource_spec
from lockengine.daemon.protocol import ProtocolError, arg_int, arg_str, decode_request, encode_error, error_dict
from lockengine.errors import InputError, read_only_error


@pytest.mark.parametrize("line, field", [
    (b'{"id": NaN, "cmd": "hello"}', None),
    (b'{"id": 1, "cmd": "hello", "args": {"host_id": Infinity}}', None),
    (b'{"id": 1, "cmd": "hello", "args": {"host_id": -Infinity}}', None),
    (b'{"id": 1, "cmd": "hello", "args": {"offset": 1e999}}', None),
    (b'{"id": 1, "cmd": "register", "args": {"name": "a\\ud800b"}}', "args.name"),
    (b'{"id": 1, "cmd": "acquire", "args": {"resources": ["\\udfff"]}}', "args.resources[0]"),
    (b'{"id": [1], "cmd": "hello"}', "id"),
    (b'{"id": {"a": 1}, "cmd": "hello"}', "id"),
])
def test_values_json_cannot_carry_are_refused(line: bytes, field: str | None) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_request(line)
    err = exc.value.as_dict()
    assert (err["name"], err["code"]) == ("EINVAL", -22)
    assert err.get("field") == field
    reply = encode_error(exc.value.request_id, err)  # the reply itself is strict JSON
    json.loads(reply, parse_constant=lambda c: pytest.fail(f"{c} in a reply"))
    reply.decode("utf-8")


@pytest.mark.parametrize("args, field, words", [
    ({"lockspace": "LS", "host_id": 1, "path": "/dev/x", "offset": 513}, "offset", "multiple of 1 MiB"),
    ({"lockspace": "LS", "host_id": [1], "path": "/dev/x"}, "host_id", "whole number"),
    ({"lockspace": "L\nS", "host_id": 1, "path": "/dev/x"}, "lockspace", "control characters"),
    ({"lockspace": "LS", "host_id": 1, "path": "/dev/x\x1b[2J"}, "path", "control characters"),
])
def test_lockspace_arguments(args: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InputError) as exc:
        lockspace_spec(args)
    assert exc.value.field == field and words in str(exc.value)
    assert error_dict(exc.value)["name"] == "EINVAL"


@pytest.mark.parametrize("item, field", [
    ("LS:R1:/dev/x:513", "resource offset"),
    ({"lockspace": "LS", "resource": "R1", "path": "/dev/x", "offset": 513}, "offset"),
    ({"lockspace": "LS", "resource": "R1", "path": "/dev/x", "offset": [1]}, "offset"),
    ({"lockspace": "LS", "resource": "R\n1", "path": "/dev/x"}, "resource"),
    ("LS:R1:/dev/x\n:1048576", "resource"),
])
def test_resource_arguments(item: object, field: str) -> None:
    with pytest.raises(InputError) as exc:
        resource_spec(item, "resource")
    assert exc.value.field == field


def test_names_without_control_characters() -> None:
    with pytest.raises(InputError) as exc:
        arg_str({"name": "x\nr LS:R1:/dev/sda:1048576:99 p 1"}, "name")
    assert exc.value.field == "name" and "control characters" in str(exc.value)
    assert arg_str({"name": "vm-1 ü"}, "name") == "vm-1 ü"
    with pytest.raises(InputError):
        arg_int({"host_id": [1]}, "host_id")


def test_read_only_names_the_path() -> None:
    err = read_only_error(OSError(1, "Operation not permitted", "/dev/loop9"))
    assert err is not None and err.name == "EROFS" and "/dev/loop9 is read-only" in err.message
    assert error_dict(OSError(30, "Read-only file system", "/dev/loop9"))["name"] == "EROFS"
    assert read_only_error(OSError(1, "Operation not permitted")) is None  # no path: not a storage write
    assert read_only_error(OSError(13, "Permission denied", "/x")) is None


def test_delta_record_errors_name_the_record_on_disk() -> None:
    from lockengine.errors import LockError
    from lockengine.ondisk import verify_delta_leader

    with pytest.raises(LockError) as exc:
        verify_delta_leader(bytes(512), 0, "LS", at=1048576 + 512)  # host 2's record, lockspace at 1M
    assert exc.value.name == "LEADER_MAGIC" and "delta record at byte 1049088" in exc.value.message
    with pytest.raises(LockError) as exc:
        verify_delta_leader(bytes(1024), 512, "LS")
    assert "delta record at byte 512" in exc.value.message


def test_control_characters_in_resource_strings_and_killpath() -> None:
    from lockengine.daemon.commands import killpath_argv

    for text in ("L\nS:R1:/dev/x:1048576", "LS:R\r1:/dev/x:1048576"):
        with pytest.raises(InputError) as exc:
            resource_spec(text, "resource")
        assert exc.value.field == "resource" and "control characters" in str(exc.value)
    with pytest.raises(InputError) as exc:
        killpath_argv({"killpath": ["/bin/x\nforged log line"]}, "killpath")
    assert exc.value.field == "killpath[0]"
    assert killpath_argv({"killpath": ["/bin/sh", "-c", "a\nb"]}, "killpath") == ["/bin/sh", "-c", "a\nb"]
