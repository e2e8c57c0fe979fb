"""Property-based fuzzing of the device frame parser (docs/reliability.md: hostile input; docs/protocol.md:
device websocket). Near-valid messages, a valid reading or heartbeat with a few mutations,
reach deep into the validation; an oracle written from the contract's wording says which
rules each breaks. The parser must accept exactly the frames that break none, refuse the
others with the code of a rule they break, and never raise anything but ProtocolError."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.model import SIGNAL_RANGES, parse_rfc3339, to_rfc3339
from monitor.wire.device import ErrorCode, HeartbeatMsg, ProtocolError, ReadingMsg, parse_frame
from tests.factories import T0

DEV = "fuzz-mon"
READING_KEYS = {"type", "v", "device_id", "seq", "ts", "values", "source"}
HEARTBEAT_KEYS = {"type", "v", "device_id", "ts"}

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included: they become the NaN/Infinity tokens
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
timestamps = st.one_of(
    st.floats(min_value=T0 - 10 * 86_400, max_value=T0 + 900).map(to_rfc3339),
    st.sampled_from(
        [
            "",
            "yesterday",
            "2026-09-21T14:13:20",
            "2026-13-01T00:00:00Z",
            "2026-09-21T14:13:20+02:00",
            "2026-09-21t14:13:20z",
            "NaN",
        ]
    ),
    any_json,
)
signal_value = st.one_of(
    st.floats(min_value=-10, max_value=400),
    st.integers(min_value=-5, max_value=400),
    any_json,
)
values_strategy = st.one_of(
    st.dictionaries(st.sampled_from(sorted(SIGNAL_RANGES)), signal_value, max_size=6),
    st.dictionaries(
        st.sampled_from([*sorted(SIGNAL_RANGES), "temp", "HR", ""]), signal_value, max_size=4
    ),
    any_json,
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid reading or heartbeat, then up to three mutations of its fields."""
    kind = draw(st.sampled_from(["reading", "reading", "reading", "heartbeat"]))
    obj: dict[str, Any] = {"type": kind, "v": 1, "device_id": DEV, "ts": to_rfc3339(T0 - 5)}
    if kind == "reading":
        obj["seq"] = draw(st.integers(min_value=0, max_value=2**63 - 1))
        obj["values"] = {"hr": 72, "spo2": 97}
        if draw(st.booleans()):
            obj["values"] = {"sbp": 120, "dbp": 80, "map": 93}
            obj["source"] = "nibp"
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        field = draw(
            st.sampled_from(
                ["type", "v", "device_id", "seq", "ts", "values", "source", "extra", "drop"]
            )
        )
        if field == "drop":
            if obj:
                obj.pop(draw(st.sampled_from(sorted(obj))))
        elif field == "ts":
            obj["ts"] = draw(timestamps)
        elif field == "values":
            obj["values"] = draw(values_strategy)
        elif field == "seq":
            obj["seq"] = draw(st.one_of(st.integers(min_value=-(2**64), max_value=2**64), any_json))
        elif field == "type":
            obj["type"] = draw(st.sampled_from(["reading", "heartbeat"]) | any_json)
        elif field == "v":
            obj["v"] = draw(st.sampled_from([1, 2, 0, True, "1", 1.0]) | any_json)
        elif field == "device_id":
            obj["device_id"] = draw(st.sampled_from([DEV, "other-mon", DEV.upper()]) | any_json)
        elif field == "source":
            obj["source"] = draw(st.sampled_from(["nibp", None, "ecg"]) | any_json)
        else:
            obj[draw(st.text(min_size=1, max_size=8))] = draw(any_json)
    return obj


def _has_non_finite(x: Any) -> bool:
    if isinstance(x, float):
        return not math.isfinite(x)
    if isinstance(x, dict):
        return any(_has_non_finite(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_non_finite(v) for v in x)
    return False


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _ts_violations(raw: Any, now: float, required: bool) -> set[ErrorCode]:
    if raw is None and not required:
        return set()
    try:
        ts = parse_rfc3339(raw)
    except (ValueError, OverflowError, TypeError):
        return {ErrorCode.INVALID_TS}
    return {ErrorCode.TS_IN_FUTURE} if ts > now + 300 else set()


def violations(obj: dict[str, Any], now: float) -> set[ErrorCode]:
    """Every contract rule the decoded frame breaks (empty: the frame must be accepted)."""
    found: set[ErrorCode] = set()
    if obj.get("type") not in ("reading", "heartbeat"):
        found.add(ErrorCode.UNKNOWN_TYPE)
    v = obj.get("v")
    if not (_number(v) and v == 1):
        found.add(ErrorCode.UNSUPPORTED_VERSION)
    if obj.get("device_id") != DEV:
        found.add(ErrorCode.DEVICE_MISMATCH)
    if obj.get("type") == "heartbeat":
        if obj.keys() - HEARTBEAT_KEYS:
            found.add(ErrorCode.UNKNOWN_FIELD)
        return found | _ts_violations(obj.get("ts"), now, required=False)
    if obj.keys() - READING_KEYS:
        found.add(ErrorCode.UNKNOWN_FIELD)
    seq = obj.get("seq")
    if not (isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63):
        found.add(ErrorCode.INVALID_SEQ)
    found |= _ts_violations(obj.get("ts"), now, required=True)
    if obj.get("source") not in (None, "nibp"):
        found.add(ErrorCode.INVALID_SOURCE)
    values = obj.get("values")
    if not isinstance(values, dict) or not values:
        found.add(ErrorCode.EMPTY_VALUES)
        return found
    for key, value in values.items():
        if key not in SIGNAL_RANGES:
            found.add(ErrorCode.UNKNOWN_SIGNAL)
        elif not _number(value) or not SIGNAL_RANGES[key][0] <= value <= SIGNAL_RANGES[key][1]:
            found.add(ErrorCode.INVALID_VALUE)
    sbp, dbp, mean = values.get("sbp"), values.get("dbp"), values.get("map")
    if all(_number(x) for x in (sbp, dbp)) and dbp >= sbp:
        found.add(ErrorCode.INCONSISTENT_CUFF)
    if all(_number(x) for x in (sbp, dbp, mean)) and not dbp <= mean <= sbp:
        found.add(ErrorCode.INCONSISTENT_CUFF)
    return found


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid())
def test_parser_accepts_exactly_the_frames_that_break_no_contract_rule(obj: dict[str, Any]) -> None:
    """Accepted iff no rule is broken; a refusal names a rule the frame really breaks."""
    text = json.dumps(obj)  # NaN/Infinity floats become the non-JSON tokens on purpose
    if _has_non_finite(obj):
        expected: set[ErrorCode] = {ErrorCode.NOT_JSON}
    else:
        # What the monitor will see once JSON has had its say (e.g. ints past 64 bits).
        expected = violations(json.loads(text, parse_int=_json_int), T0)
    try:
        msg = parse_frame(text, device_id=DEV, now=T0)
    except ProtocolError as e:
        assert e.code in expected, (e.code, expected, text)
        assert e.detail and len(e.detail) < 200
        return
    assert expected == set(), (expected, text)
    if isinstance(msg, ReadingMsg):
        assert msg.device_id == DEV and msg.seq == obj["seq"]
        assert msg.values == {k: float(v) for k, v in obj["values"].items()}
        assert all(math.isfinite(v) for v in msg.values.values())
        assert msg.ts <= T0 + 300
    else:
        assert isinstance(msg, HeartbeatMsg) and obj["type"] == "heartbeat"


def _json_int(text: str) -> int | float:
    """orjson reads integers beyond 64 bits as floats; mirror that for the oracle."""
    n = int(text)
    return n if -(2**63) <= n < 2**64 else float(n)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parser_never_raises_anything_but_protocol_error_on_raw_bytes(data: bytes) -> None:
    """Arbitrary bytes: parsed or refused with a code, never an unexpected exception."""
    try:
        parse_frame(data, device_id=DEV, now=T0)
    except ProtocolError as e:
        assert isinstance(e.code, ErrorCode)


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-62_135_596_800.0, max_value=253_402_300_799.0))
def test_rfc3339_text_has_four_digit_years_truncated_milliseconds_and_reads_back(
    epoch: float,
) -> None:
    """docs/protocol.md timestamps: RFC 3339 UTC, a four-digit year even before 1000, the
    milliseconds truncated (never rounded into the next second), and parsed back to them."""
    text = to_rfc3339(epoch)
    assert text is not None
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", text), text
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    assert text.startswith(f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:")
    assert text[-4:-1] == f"{dt.microsecond // 1000:03d}"
    held = dt.replace(microsecond=dt.microsecond // 1000 * 1000).timestamp()
    assert parse_rfc3339(text) == pytest.approx(held, abs=1e-6)
