"""The device protocol v1 (docs/protocol.md; contract: device websocket)."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.wire.device import (
    ErrorCode,
    HeartbeatMsg,
    ProtocolError,
    ReadingMsg,
    encode_reading,
    parse_frame,
)
from tests.factories import T0

DEV = "chair-3-mon"


def frame(**over: object) -> str:
    base: dict[str, object] = {
        "type": "reading",
        "v": 1,
        "device_id": DEV,
        "seq": 42,
        "ts": "2026-09-21T14:13:20.000Z",
        "values": {"hr": 78, "spo2": 97, "rr": 14},
    }
    base.update(over)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...}).decode()


def code_of(text: str | bytes, now: float = T0) -> ErrorCode:
    with pytest.raises(ProtocolError) as e:
        parse_frame(text, device_id=DEV, now=now)
    return e.value.code


def test_contract_example_reading_parses() -> None:
    """A contract reading parses into device time, seq and values."""
    msg = parse_frame(frame(), device_id=DEV, now=T0)
    assert isinstance(msg, ReadingMsg)
    assert msg.seq == 42 and msg.values == {"hr": 78.0, "spo2": 97.0, "rr": 14.0}
    assert msg.ts == pytest.approx(T0)


def test_cuff_reading_keeps_its_source() -> None:
    """A cuff triple tagged source nibp keeps the tag."""
    msg = parse_frame(
        frame(source="nibp", values={"sbp": 128, "dbp": 82, "map": 97}), device_id=DEV, now=T0
    )
    assert isinstance(msg, ReadingMsg) and msg.source == "nibp"


def test_heartbeat_parses() -> None:
    """A heartbeat carries no seq and no values."""
    text = orjson.dumps(
        {"type": "heartbeat", "v": 1, "device_id": DEV, "ts": "2026-09-21T14:13:20Z"}
    )
    assert isinstance(parse_frame(text, device_id=DEV, now=T0), HeartbeatMsg)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.NOT_JSON),
        ("[1, 2]", ErrorCode.NOT_OBJECT),
        ('"reading"', ErrorCode.NOT_OBJECT),
        ('{"a": NaN}', ErrorCode.NOT_JSON),
        (frame(type="waveform"), ErrorCode.UNKNOWN_TYPE),
        (frame(v=2), ErrorCode.UNSUPPORTED_VERSION),
        (frame(v=True), ErrorCode.UNSUPPORTED_VERSION),
        (frame(seq=...), ErrorCode.INVALID_SEQ),
        (frame(seq="42"), ErrorCode.INVALID_SEQ),
        (frame(seq=4.5), ErrorCode.INVALID_SEQ),
        (frame(seq=-1), ErrorCode.INVALID_SEQ),
        (frame(seq=True), ErrorCode.INVALID_SEQ),
        (frame(ts=...), ErrorCode.INVALID_TS),
        (frame(ts="yesterday"), ErrorCode.INVALID_TS),
        (frame(ts="2026-09-21T14:13:20"), ErrorCode.INVALID_TS),
        (frame(ts=1790000000), ErrorCode.INVALID_TS),
        (frame(ts="2026-09-21T14:18:21.000Z"), ErrorCode.TS_IN_FUTURE),
        (frame(device_id="chair-4-mon"), ErrorCode.DEVICE_MISMATCH),
        (frame(values={}), ErrorCode.EMPTY_VALUES),
        (frame(values=[78]), ErrorCode.EMPTY_VALUES),
        (frame(values={"temp": 37}), ErrorCode.UNKNOWN_SIGNAL),
        (frame(values={"hr": None}), ErrorCode.INVALID_VALUE),
        (frame(values={"hr": "78"}), ErrorCode.INVALID_VALUE),
        (frame(values={"hr": True}), ErrorCode.INVALID_VALUE),
        (frame(values={"spo2": 101}), ErrorCode.INVALID_VALUE),
        (frame(values={"hr": 351}), ErrorCode.INVALID_VALUE),
        (frame(values={"rr": -1}), ErrorCode.INVALID_VALUE),
        (frame(values={"rr": 151}), ErrorCode.INVALID_VALUE),
        (frame(values={"sbp": 80, "dbp": 80}), ErrorCode.INCONSISTENT_CUFF),
        (frame(values={"sbp": 120, "dbp": 80, "map": 130}), ErrorCode.INCONSISTENT_CUFF),
        (frame(source="arterial"), ErrorCode.INVALID_SOURCE),
        (frame(extra=1), ErrorCode.UNKNOWN_FIELD),
    ],
)
def test_bad_frames_get_stable_codes(text: str, code: ErrorCode) -> None:
    """Each bad frame of the contract's list is refused with its stable code."""
    assert code_of(text) == code


def test_error_echoes_seq_when_readable() -> None:
    """An error names the seq it refuses, so a device knows which reading failed."""
    with pytest.raises(ProtocolError) as e:
        parse_frame(frame(values={"spo2": 101}), device_id=DEV, now=T0)
    assert e.value.seq == 42
    assert e.value.detail == "spo2 must be within 0..100"


def test_late_readings_are_accepted() -> None:
    """Store-and-forward: readings may arrive late, only not from the future."""
    assert isinstance(parse_frame(frame(), device_id=DEV, now=T0 + 86_400), ReadingMsg)


@given(
    st.dictionaries(
        st.sampled_from(["hr", "spo2", "rr"]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
        min_size=1,
    ),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.floats(min_value=T0 - 1e6, max_value=T0 + 299, allow_nan=False),
)
def test_encode_then_parse_round_trips(values: dict[str, float], seq: int, ts: float) -> None:
    """What the simulators encode, the monitor parses back unchanged (ms precision)."""
    msg = parse_frame(encode_reading(DEV, seq, ts, values), device_id=DEV, now=T0)
    assert isinstance(msg, ReadingMsg)
    assert msg.seq == seq and msg.values == values
    assert math.isclose(msg.ts, ts, abs_tol=0.001)


@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**64 - 1)
            | st.floats()
            | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=6),
            max_leaves=20,
        ).map(
            lambda o: (
                orjson.dumps(o, option=orjson.OPT_SERIALIZE_NUMPY)
                if not isinstance(o, float) or math.isfinite(o)
                else b"0"
            )
        ),
    )
)
def test_parser_never_crashes(data: str | bytes) -> None:
    """Any input either parses or raises ProtocolError with a code: never another exception."""
    try:
        parse_frame(data, device_id=DEV, now=T0)
    except ProtocolError as e:
        assert isinstance(e.code, ErrorCode)
