"""Device protocol, version 1: the one definition of what devices and the monitor exchange.

Device -> monitor (one JSON object per text frame):
    {"type": "reading", "v": 1, "device_id": ..., "seq": int, "ts": RFC3339,
     "values": {signal: number, ...}, "source": "nibp" (optional)}
    {"type": "heartbeat", "v": 1, "device_id": ..., "ts": RFC3339}
Monitor -> device:
    {"type": "ack", "seq": int}
    {"type": "error", "seq": int|null, "code": CODE, "detail": text}

Validation is pure: ``now`` (the monitor's clock) is an argument. Each rejection carries a
stable code from ``ErrorCode``; the codes are documented in docs/protocol.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from monitor.core.model import CUFF_SIGNALS, SIGNAL_RANGES, parse_rfc3339, to_rfc3339

VERSION: Final = 1
MAX_FUTURE_SKEW_S: Final = 300.0
SOURCES: Final = frozenset({"nibp"})
_ALLOWED_READING_KEYS: Final = frozenset(
    {"type", "v", "device_id", "seq", "ts", "values", "source"}
)
_ALLOWED_HEARTBEAT_KEYS: Final = frozenset({"type", "v", "device_id", "ts"})
# seq is a 64-bit signed counter in storage.
_MAX_SEQ: Final = 2**63 - 1


class ErrorCode(StrEnum):
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    BINARY_FRAME = "binary_frame"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_SEQ = "invalid_seq"
    INVALID_TS = "invalid_ts"
    TS_IN_FUTURE = "ts_in_future"
    DEVICE_MISMATCH = "device_mismatch"
    EMPTY_VALUES = "empty_values"
    UNKNOWN_SIGNAL = "unknown_signal"
    INVALID_VALUE = "invalid_value"
    INCONSISTENT_CUFF = "inconsistent_cuff"
    INVALID_SOURCE = "invalid_source"
    SEQ_CONFLICT = "seq_conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


# Codes that mean "the device measured something impossible": these count toward the
# device's artefact technical alarm. Framing mistakes are software faults, still counted.
ARTEFACT_CODES: Final = frozenset(
    {ErrorCode.INVALID_VALUE, ErrorCode.INCONSISTENT_CUFF, ErrorCode.EMPTY_VALUES}
)


class ProtocolError(Exception):
    """A frame the monitor will not store; ``seq`` is echoed when it could be read."""

    def __init__(self, code: ErrorCode, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.seq = seq


@dataclass(frozen=True, slots=True)
class ReadingMsg:
    device_id: str
    seq: int
    ts: float
    values: dict[str, float]
    source: str | None


@dataclass(frozen=True, slots=True)
class HeartbeatMsg:
    device_id: str
    ts: float | None


Message = ReadingMsg | HeartbeatMsg


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _seq_of(obj: dict[str, Any]) -> int | None:
    seq = obj.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= _MAX_SEQ:
        return seq
    return None


def parse_frame(data: str | bytes, *, device_id: str, now: float) -> Message:
    """Parse and validate one text frame from the device authenticated as ``device_id``."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError(ErrorCode.NOT_JSON, "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.NOT_OBJECT, "frame must be a JSON object")
    return validate(obj, device_id=device_id, now=now)


def validate(obj: dict[str, Any], *, device_id: str, now: float) -> Message:
    seq = _seq_of(obj)
    mtype = obj.get("type")
    if mtype not in ("reading", "heartbeat"):
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {mtype!r:.40}", seq)
    if obj.get("v") != VERSION or isinstance(obj.get("v"), bool):
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"version must be {VERSION}", seq)
    claimed = obj.get("device_id")
    if claimed != device_id:
        raise ProtocolError(
            ErrorCode.DEVICE_MISMATCH, "device_id does not match the authenticated device", seq
        )
    if mtype == "heartbeat":
        extra = obj.keys() - _ALLOWED_HEARTBEAT_KEYS
        if extra:
            raise ProtocolError(ErrorCode.UNKNOWN_FIELD, f"unknown field {sorted(extra)[0]!r:.40}")
        ts_hb = _parse_ts(obj.get("ts"), now, seq=None, required=False)
        return HeartbeatMsg(device_id=device_id, ts=ts_hb)

    extra = obj.keys() - _ALLOWED_READING_KEYS
    if extra:
        raise ProtocolError(ErrorCode.UNKNOWN_FIELD, f"unknown field {sorted(extra)[0]!r:.40}", seq)
    if seq is None:
        raise ProtocolError(
            ErrorCode.INVALID_SEQ, "seq must be an integer between 0 and 2^63-1", None
        )
    ts = _parse_ts(obj.get("ts"), now, seq=seq, required=True)
    assert ts is not None
    source = obj.get("source")
    if source is not None and (not isinstance(source, str) or source not in SOURCES):
        raise ProtocolError(ErrorCode.INVALID_SOURCE, "source must be 'nibp' when present", seq)
    values = _parse_values(obj.get("values"), seq)
    return ReadingMsg(device_id=device_id, seq=seq, ts=ts, values=values, source=source)


def _parse_ts(raw: object, now: float, *, seq: int | None, required: bool) -> float | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str):
        raise ProtocolError(ErrorCode.INVALID_TS, "ts must be an RFC 3339 UTC timestamp", seq)
    try:
        ts = parse_rfc3339(raw)
    except (ValueError, OverflowError):
        raise ProtocolError(
            ErrorCode.INVALID_TS, "ts must be an RFC 3339 UTC timestamp", seq
        ) from None
    if ts > now + MAX_FUTURE_SKEW_S:
        raise ProtocolError(
            ErrorCode.TS_IN_FUTURE, "ts is more than 5 minutes ahead of the monitor's clock", seq
        )
    return ts


def validate_values(raw: object, seq: int | None = None) -> dict[str, float]:
    """Check a values object against the protocol (ranges, cuff consistency); for other edges."""
    return _parse_values(raw, seq)


def _parse_values(raw: object, seq: int | None) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise ProtocolError(ErrorCode.EMPTY_VALUES, "values must be a non-empty object", seq)
    values: dict[str, float] = {}
    for key, value in raw.items():
        bounds = SIGNAL_RANGES.get(key)
        if bounds is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SIGNAL, f"unknown signal {key!r:.40}", seq)
        if not _is_number(value) or not math.isfinite(value):
            raise ProtocolError(ErrorCode.INVALID_VALUE, f"{key} must be a finite number", seq)
        lo, hi = bounds
        if not lo <= value <= hi:
            raise ProtocolError(
                ErrorCode.INVALID_VALUE, f"{key} must be within {lo:g}..{hi:g}", seq
            )
        values[key] = float(value)
    sbp, dbp = values.get("sbp"), values.get("dbp")
    if sbp is not None and dbp is not None and dbp >= sbp:
        raise ProtocolError(ErrorCode.INCONSISTENT_CUFF, "dbp must be below sbp", seq)
    mean = values.get("map")
    if mean is not None and sbp is not None and dbp is not None and not dbp <= mean <= sbp:
        raise ProtocolError(ErrorCode.INCONSISTENT_CUFF, "map must lie between dbp and sbp", seq)
    return values


# --- encoders: the one place frames are built, for the monitor and for simulated devices ---


def encode_ack(seq: int) -> str:
    return orjson.dumps({"type": "ack", "seq": seq}).decode()


def encode_error(code: ErrorCode | str, detail: str, seq: int | None = None) -> str:
    return orjson.dumps({"type": "error", "seq": seq, "code": str(code), "detail": detail}).decode()


def encode_reading(
    device_id: str,
    seq: int,
    ts: float,
    values: dict[str, float],
    source: str | None = None,
) -> str:
    msg: dict[str, Any] = {
        "type": "reading",
        "v": VERSION,
        "device_id": device_id,
        "seq": seq,
        "ts": to_rfc3339(ts),
        "values": values,
    }
    if source is not None:
        msg["source"] = source
    return orjson.dumps(msg).decode()


def encode_heartbeat(device_id: str, ts: float) -> str:
    return orjson.dumps(
        {"type": "heartbeat", "v": VERSION, "device_id": device_id, "ts": to_rfc3339(ts)}
    ).decode()


def is_cuff(values: Mapping[str, float]) -> bool:
    return any(k in CUFF_SIGNALS for k in values)
