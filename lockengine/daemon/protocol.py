"""The lockengined wire protocol: newline-delimited JSON, one request and one reply per line.

Request: ``{"v": 1, "id": <any>, "cmd": "acquire", "args": {...}}`` (``id`` is optional and echoed).
Reply:   ``{"v": 1, "id": <echo>, "ok": true, "result": {...}}`` or
         ``{"v": 1, "id": <echo>, "ok": false, "error": {"name": "ACQUIRE_IDLIVE", "code": -243,
         "message": "...", "field": "..."}}`` — sanlock's error names and numbers (facts §11).

Pure code: framing limits, encoding, argument checking. No sockets here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from ..endpoint import DEFAULT_RUN_DIR as DEFAULT_RUN_DIR
from ..endpoint import RUN_DIR_ENV as RUN_DIR_ENV
from ..endpoint import SOCKET_NAME as SOCKET_NAME
from ..endpoint import VERSION as VERSION
from ..errors import CODES, InputError, error_document

# A request carries at most 8 resources with paths < 1024 bytes; 64 KiB leaves room and bounds
# what one misbehaving client can make the daemon buffer.
MAX_REQUEST = 64 * 1024
ALIGN = 1 << 20  # every lease area starts at a multiple of the smallest align size (facts §0)
# C0/C1 controls and DEL: a newline in a name would forge a line of ``client status`` or of the log.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ProtocolError(Exception):
    """A request line that is not a valid request; the reply says why and the daemon keeps serving."""

    def __init__(self, message: str, field: str | None = None, request_id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.request_id = request_id  # echoed when the line was an object that carried an id

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": "EINVAL", "code": CODES["EINVAL"], "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class Request:
    cmd: str
    args: dict[str, Any]
    id: Any = None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number; give a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range; give a finite number")
    return value


def _check_strings(value: Any, where: str, depth: int = 0) -> None:
    """Refuse lone surrogates (not encodable as UTF-8) anywhere in the request, naming where."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ProtocolError(f"{where} holds a lone UTF-16 surrogate; give valid Unicode text", where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k, where, depth + 1)
            _check_strings(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{where}[{i}]", depth + 1)


# Built once: json.loads/dumps with options build a new decoder/encoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_ENCODER_ANY = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False)


def decode_request(line: bytes) -> Request:
    """Parse one line (without its newline). Raises ProtocolError naming what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"request is not UTF-8 (byte {exc.start})") from None
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"request is not JSON: {exc}"[:300]) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"request must be a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    try:
        # Valid UTF-8 decodes to no surrogate: only a \uD800-\uDFFF escape can make one.
        if "\\u" in text:
            _check_strings(obj, "")
    except ProtocolError as exc:
        raise ProtocolError(exc.message, exc.field, None) from None
    if not (rid is None or isinstance(rid, (int, str)) and not isinstance(rid, bool)):
        raise ProtocolError("\"id\" must be a number or a string", "id")
    version = obj.get("v", VERSION)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version!r} is not supported; this daemon speaks {VERSION}", "v", rid)
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError("request needs \"cmd\": a command name string", "cmd", rid)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("\"args\" must be a JSON object", "args", rid)
    return Request(cmd, args, rid)


def encode_request(cmd: str, args: dict[str, Any], request_id: Any = None) -> bytes:
    msg: dict[str, Any] = {"v": VERSION, "cmd": cmd, "args": args}
    if request_id is not None:
        msg["id"] = request_id
    return _ENCODER.encode(msg).encode() + b"\n"


def encode_reply(request_id: Any, result: dict[str, Any]) -> bytes:
    msg = {"v": VERSION, "id": request_id, "ok": True, "result": result}
    return _ENCODER_ANY.encode(msg).encode() + b"\n"


def encode_error(request_id: Any, error: dict[str, object]) -> bytes:
    msg = {"v": VERSION, "id": request_id, "ok": False, "error": error}
    return _ENCODER_ANY.encode(msg).encode() + b"\n"


def error_dict(exc: BaseException) -> dict[str, object]:
    """The wire form of any failure: errors.error_document, the same mapping the CLI prints."""
    return error_document(exc)


# --------------------------------------------------------------------------- argument checking


def arg_str(args: dict[str, Any], name: str, default: str | None = None, max_len: int = 1024) -> str:
    value = args.get(name, default)
    if value is None:
        raise InputError(name, None, f"give \"{name}\" (a string)")
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InputError(name, value, f"give a non-empty string of at most {max_len} characters")
    if CONTROL.search(value):
        raise InputError(name, value, "give text without control characters (newline, tab, escape...)")
    return value


def arg_offset(args: dict[str, Any], name: str, high: int) -> int:
    """A lease area's byte offset: a multiple of 1 MiB, refused here rather than at the first I/O."""
    value = arg_int(args, name, 0, 0, high)
    if value % ALIGN:
        raise InputError(name, value, f"give a multiple of 1 MiB ({ALIGN}), e.g. 0 or 1048576; lease areas start "
                                      "on align-size boundaries")
    return value


def arg_int(args: dict[str, Any], name: str, default: int | None = None, low: int = 0, high: int = 2**63 - 1) -> int:
    value = args.get(name, default)
    if value is None:
        raise InputError(name, None, f"give \"{name}\" (a whole number from {low} to {high})")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(name, value, f"give a whole number from {low} to {high}")
    return value


def arg_bool(args: dict[str, Any], name: str, default: bool = False) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise InputError(name, value, "give true or false")
    return value


def arg_list(args: dict[str, Any], name: str, max_items: int) -> list[Any]:
    value = args.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= max_items:
        raise InputError(name, value, f"give a list of 1 to {max_items} items")
    return value


def arg_str_list(args: dict[str, Any], name: str, max_items: int = 64) -> list[str] | None:
    value = args.get(name)
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > max_items
            or not all(isinstance(v, str) and len(v) <= 4096 for v in value)):
        raise InputError(name, value, f"give a list of at most {max_items} strings")
    return value
