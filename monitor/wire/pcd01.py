"""IHE PCD-01 (HL7 v2.6 ORU^R01) to Vigil readings, and HL7 ACKs back: pure, no I/O, no clock.

What is read (docs/integration.md is the gateway-facing description, with the OBX-11 table):
- MSH-9 must be ORU^R01; MSH-10 is the control id echoed in the ACK.
- OBX-3 carries an IEEE 11073 MDC code (``150021`` or its reference id
  ``MDC_PRESS_BLD_NONINV_SYS``, or Philips' MDIL form ``0002-4a05``); the codes in ``CODES``
  map to Vigil signals, anything else is listed in ``Pcd01Result.ignored``.
- OBX-6 must be a unit Vigil knows for that signal (UCUM or MDC unit code): a blood pressure
  without a unit could be kPa read as mmHg, so a missing or unknown unit rejects the message.
- OBX-11 decides what a row is (``STORED_STATUSES``, ``CORRECTION_STATUSES``): a row that
  carries a value is stored, applied as a correction, or the message is refused with
  ``unsupported_status``; a value is never dropped in silence.
- Time of a row: OBX-14, else OBR-7 of its OBR, else MSH-7. Rows with the same time form one
  reading. A time without a UTC offset is in the sender's zone (HL7 v2.6, 2.A.22), which
  MSH-7's offset tells when it has one; else UTC is assumed.
- The device is named by OBX-18 of the MDS row (OBX-3 69965), else the first OBX-18 present,
  else MSH-3; first component in each case (the outside contract). An OBX-18 coded in MDC or
  MDIL (``0002-4bb8^SpO2^MDIL``, the source of a derived value) names a measurement, not
  equipment, and is passed over. When MSH-3's first component is empty,
  ORC-18 (entering device) names it, as Philips Efficia monitors send.

HL7 carries no sequence number, so each reading's ``seq`` is derived from its content:
``epoch_ms * 128 + signal_mask`` (one bit per signal present, ``SEQ_SIGNAL_BIT``). A gateway
resending a message yields the same seqs, so the monitor stores it once; two messages at the
same instant carrying different signals (say SpO2 and a cuff) don't collide. Two messages
with the same time and signals but different values do: the HL7 edge compares them with the
stored reading and refuses the second (``seq_conflict``) unless it is a correction.
``seq // 128`` is the observation time in epoch milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import hl7

from monitor.wire.device import (
    MAX_FUTURE_SKEW_S,
    ProtocolError,
    ReadingMsg,
    validate_values,
)

# One bit per signal, fixed here (not taken from the order of SIGNALS) so that a new signal
# elsewhere never renumbers the seqs of readings already stored.
SEQ_SIGNAL_BIT: Final[Mapping[str, int]] = {
    "hr": 1,
    "spo2": 2,
    "sbp": 4,
    "dbp": 8,
    "map": 16,
    "rr": 32,
    "pr": 64,
}
SEQ_SIGNAL_BITS: Final = 128  # room for every bit of SEQ_SIGNAL_BIT
MDS_CODE: Final = "69965"
NIBP_SOURCE: Final = "nibp"


class Hl7ErrorCode:
    """Stable reasons a message is not stored; they appear in the ACK's ERR segment."""

    PARSE_ERROR: Final = "parse_error"
    NOT_ORU_R01: Final = "not_oru_r01"
    NO_VALUES: Final = "no_values"
    NO_DEVICE: Final = "no_device"
    BAD_TIMESTAMP: Final = "bad_timestamp"
    TS_IN_FUTURE: Final = "ts_in_future"
    UNKNOWN_UNIT: Final = "unknown_unit"
    INVALID_VALUE: Final = "invalid_value"
    INCONSISTENT_CUFF: Final = "inconsistent_cuff"
    UNSUPPORTED_STATUS: Final = "unsupported_status"
    SEQ_CONFLICT: Final = "seq_conflict"
    UNKNOWN_DEVICE: Final = "unknown_device"
    STORAGE_FAILED: Final = "storage_failed"
    INTERNAL_ERROR: Final = "internal_error"


class Hl7Error(Exception):
    """A message Vigil will not store; ``code`` is one of ``Hl7ErrorCode``."""

    def __init__(self, code: str, detail: str, *, control_id: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.control_id = control_id


@dataclass(frozen=True, slots=True)
class MdcCode:
    signal: str
    # Lower ranks win when two rows give the same signal at the same time (ECG HR over
    # oximeter pulse over cuff pulse): the better sensor speaks for the patient.
    rank: int
    nibp: bool


# OBX-3 identifiers (numeric MDC code or its reference id) Vigil understands
# (docs/integration.md, "Codes and units"). ECG heart rate is `hr`; a pulse rate counted
# from a pulse (oximeter, arterial line, cuff) is `pr`: a pulse deficit (hr > pr) is a
# finding, so the two are never merged.
CODES: Final[Mapping[str, MdcCode]] = {
    "147842": MdcCode("hr", 0, False),
    "MDC_ECG_HEART_RATE": MdcCode("hr", 0, False),
    "MDC_ECG_CARD_BEAT_RATE": MdcCode("hr", 0, False),
    "149530": MdcCode("pr", 0, False),
    "MDC_PULS_OXIM_PULS_RATE": MdcCode("pr", 0, False),
    "149522": MdcCode("pr", 1, False),
    "MDC_BLD_PULS_RATE_INV": MdcCode("pr", 1, False),
    # MDC_PULS_RATE, the generic pulse rate: Philips' "Pulse" (MDIL 0002-480a).
    "149514": MdcCode("pr", 2, False),
    "MDC_PULS_RATE": MdcCode("pr", 2, False),
    "149546": MdcCode("pr", 3, True),
    "MDC_BLD_PULS_RATE_NONINV": MdcCode("pr", 3, True),
    "MDC_PULS_RATE_NON_INV": MdcCode("pr", 3, True),  # the name in older RTMMS releases
    "150456": MdcCode("spo2", 0, False),
    "MDC_PULS_OXIM_SAT_O2": MdcCode("spo2", 0, False),
    "150021": MdcCode("sbp", 0, True),
    "MDC_PRESS_BLD_NONINV_SYS": MdcCode("sbp", 0, True),
    "150301": MdcCode("sbp", 0, True),
    "MDC_PRESS_CUFF_SYS": MdcCode("sbp", 0, True),
    "150022": MdcCode("dbp", 0, True),
    "MDC_PRESS_BLD_NONINV_DIA": MdcCode("dbp", 0, True),
    "150302": MdcCode("dbp", 0, True),
    "MDC_PRESS_CUFF_DIA": MdcCode("dbp", 0, True),
    "150023": MdcCode("map", 0, True),
    "MDC_PRESS_BLD_NONINV_MEAN": MdcCode("map", 0, True),
    "150303": MdcCode("map", 0, True),
    "MDC_PRESS_CUFF_MEAN": MdcCode("map", 0, True),
    "151562": MdcCode("rr", 0, False),
    "MDC_RESP_RATE": MdcCode("rr", 0, False),
    # Philips' "Resp" (MDIL 0002-5000, in rpm): the impedance respiration rate.
    "151552": MdcCode("rr", 1, False),
}

# Philips' MDIL notation writes an MDC code as partition-term in hex ("0002-4182" is
# partition 2, term 0x4182 = 147842, MDC_ECG_HEART_RATE); units too ("0004-0aa0" = 264864).
_MDIL_RE: Final = re.compile(r"^([0-9A-Fa-f]{4})-([0-9A-Fa-f]{4})$")


def mdil_to_mdc(text: str) -> str:
    """``0002-4182`` to ``147842``; any other text unchanged."""
    match = _MDIL_RE.match(text)
    if match is None:
        return text
    return str(int(match.group(1), 16) * 65536 + int(match.group(2), 16))


_KPA_TO_MMHG: Final = 760.0 / 101.325


def _same(x: float) -> float:
    return x


def _kpa(x: float) -> float:
    return x * _KPA_TO_MMHG


_RATE_UNITS: Final[Mapping[str, Callable[[float], float]]] = {
    "/min": _same,
    "1/min": _same,
    "{beat}/min": _same,
    "{beats}/min": _same,
    "{breath}/min": _same,
    "{breaths}/min": _same,
    "{resp}/min": _same,
    "264864": _same,  # MDC_DIM_BEAT_PER_MIN
    "MDC_DIM_BEAT_PER_MIN": _same,
    "264928": _same,  # MDC_DIM_RESP_PER_MIN
    "MDC_DIM_RESP_PER_MIN": _same,
}
_PERCENT_UNITS: Final[Mapping[str, Callable[[float], float]]] = {
    "%": _same,
    "262688": _same,  # MDC_DIM_PERCENT
    "MDC_DIM_PERCENT": _same,
}
_PRESSURE_UNITS: Final[Mapping[str, Callable[[float], float]]] = {
    "mm[Hg]": _same,
    "266016": _same,  # MDC_DIM_MMHG
    "MDC_DIM_MMHG": _same,
    "kPa": _kpa,
    "266048": _kpa,  # MDC_DIM_KILO_PASCAL
    "MDC_DIM_KILO_PASCAL": _kpa,
}
UNITS: Final[Mapping[str, Mapping[str, Callable[[float], float]]]] = {
    "hr": _RATE_UNITS,
    "pr": _RATE_UNITS,
    "rr": _RATE_UNITS,
    "spo2": _PERCENT_UNITS,
    "sbp": _PRESSURE_UNITS,
    "dbp": _PRESSURE_UNITS,
    "map": _PRESSURE_UNITS,
}

# OBX-11 (HL7 table 0085) for a row that carries a value; docs/integration.md has the table.
# Stored as a measurement: F final, R entered not verified (what PCD-01 devices send for live
# numerics), P preliminary, S partial, U status changed to final, and no status at all.
STORED_STATUSES: Final = frozenset({"F", "R", "P", "S", "U", ""})
# Applied as a correction: C corrected, A amended. The value replaces what is stored for the
# same device, observation time and signal (stored as new when nothing is there).
CORRECTION_STATUSES: Final = frozenset({"C", "A"})
# D (delete) and W (wrong, e.g. wrong patient) ask to retract a stored result. Vigil's
# record is what its alarms were judged on, so it does not retract: the message is refused
# so the sender knows, whether the row carries a value or not.
RETRACTION_STATUSES: Final = frozenset({"D", "W"})
# X (cannot be obtained), I (pending), O (order only), N (not asked) mean "no result". A row
# with one of these and no value (MDS/VMD/channel rows, an "?" on the monitor) is skipped;
# with a value it contradicts itself and the message is refused.
NO_RESULT_STATUSES: Final = frozenset({"X", "I", "O", "N"})
_STATUS_NAMES: Final[Mapping[str, str]] = {
    "X": "result cannot be obtained",
    "I": "result pending",
    "O": "order detail only",
    "N": "not asked",
    "D": "delete",
    "W": "wrong result",
}

# YYYYMMDDHHMM[SS[.S{1,4}]][+/-ZZZZ]: minute precision at least, a reading needs a time.
_DTM_RE: Final = re.compile(r"^(\d{12}(?:\d{2}(?:\.\d{1,4})?)?)([+-]\d{4})?$")
_NUMBER_RE: Final = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


@dataclass(frozen=True, slots=True)
class IgnoredObx:
    """An OBX row that contributed nothing, and why (for logs and tests)."""

    set_id: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Pcd01Result:
    control_id: str
    device_name: str
    readings: tuple[ReadingMsg, ...]  # oldest first; device_id is ``device_name``
    ignored: tuple[IgnoredObx, ...]
    sending_application: str = ""
    # seqs of the readings that are corrections (OBX-11 C or A in their time group)
    corrections: frozenset[int] = frozenset()
    # value-bearing rows of a Vigil signal that were not stored (another sensor gave the
    # signal at that time): said in the AA's ERR segments with severity W
    warnings: tuple[str, ...] = ()


def derive_seq(ts: float, values: Mapping[str, float]) -> int:
    """The deterministic seq of an HL7 reading: epoch milliseconds * 128 + signal bit mask."""
    mask = 0
    for signal in values:
        mask |= SEQ_SIGNAL_BIT[signal]
    return round(ts * 1000) * SEQ_SIGNAL_BITS + mask


def normalise_segments(text: str) -> str:
    """Segments end in CR on the wire; files and some senders use LF or CRLF."""
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x0b\x1c")


def _get(seg: hl7.Segment, field: int, rep: int = 1, comp: int = 1) -> str:
    """One leaf of a segment, '' when absent (python-hl7 raises on short paths)."""
    try:
        value = seg.extract_field(1, field, rep, comp, 1)
    except (IndexError, TypeError, KeyError):
        return ""
    return str(value).strip()


def parse_hl7_dtm(text: str, *, default_offset: timezone | None = None) -> float:
    """HL7 DTM (minute precision or finer) to epoch seconds; ValueError if unreadable."""
    match = _DTM_RE.match(text)
    if match is None:
        raise ValueError(f"not an HL7 timestamp: {text!r:.40}")
    # python-hl7 has no type hints: its parse_datetime returns a datetime, or None for "".
    dt: datetime | None = hl7.parse_datetime(text)
    if dt is None:
        raise ValueError("empty timestamp")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_offset or UTC)
    else:
        # python-hl7's fixed offset class is fine for arithmetic; normalise for clarity.
        offset = dt.utcoffset() or timedelta(0)
        dt = dt.replace(tzinfo=timezone(offset))
    return dt.timestamp()


def _offset_of(text: str) -> timezone | None:
    match = _DTM_RE.match(text)
    if match is None or match.group(2) is None:
        return None
    raw = match.group(2)
    sign = -1 if raw[0] == "-" else 1
    minutes = int(raw[1:3]) * 60 + int(raw[3:5])
    if minutes >= 24 * 60:
        return None
    return timezone(sign * timedelta(minutes=minutes))


def _parse_message(message_text: str) -> hl7.Message:
    text = normalise_segments(message_text)
    if not text.startswith("MSH"):
        raise Hl7Error(Hl7ErrorCode.PARSE_ERROR, "message does not start with an MSH segment")
    try:
        return hl7.parse(text)
    except Exception as exc:  # python-hl7 raises assorted errors on broken input
        raise Hl7Error(Hl7ErrorCode.PARSE_ERROR, f"unparsable HL7: {exc}"[:200]) from None


def parse_pcd01(message_text: str, *, now: float | None = None) -> Pcd01Result:
    """Parse one PCD-01 ORU^R01 message into validated readings, or raise ``Hl7Error``.

    ``now`` (the monitor's clock, epoch seconds), when given, rejects readings more than
    five minutes ahead of it, as the device websocket does.
    """
    msg = _parse_message(message_text)
    try:
        msh = msg.segment("MSH")
    except KeyError:
        raise Hl7Error(Hl7ErrorCode.PARSE_ERROR, "no MSH segment") from None
    control_id = _get(msh, 10)
    mtype, trigger = _get(msh, 9, 1, 1), _get(msh, 9, 1, 2)
    if (mtype, trigger) != ("ORU", "R01"):
        raise Hl7Error(
            Hl7ErrorCode.NOT_ORU_R01,
            f"message type {mtype}^{trigger} is not ORU^R01"[:120],
            control_id=control_id,
        )

    def fail(code: str, detail: str) -> Hl7Error:
        return Hl7Error(code, detail, control_id=control_id)

    msh_time_text = _get(msh, 7)
    sender_zone = _offset_of(msh_time_text)

    def to_epoch(text: str, where: str) -> float:
        try:
            ts = parse_hl7_dtm(text, default_offset=sender_zone)
        except (ValueError, OverflowError):
            raise fail(
                Hl7ErrorCode.BAD_TIMESTAMP, f"{where} {text!r:.40} is not an HL7 time"
            ) from None
        if ts < 0:
            raise fail(Hl7ErrorCode.BAD_TIMESTAMP, f"{where} {text!r:.40} is before 1970")
        if now is not None and ts > now + MAX_FUTURE_SKEW_S:
            raise fail(
                Hl7ErrorCode.TS_IN_FUTURE,
                f"{where} {text!r:.40} is more than 5 minutes ahead of the monitor's clock",
            )
        return ts

    # Group rows by observation time: ts -> signal -> (rank, value, nibp, set_id, code)
    groups: dict[float, dict[str, tuple[int, float, bool, str, str]]] = {}
    corrected_times: set[float] = set()
    ignored: list[IgnoredObx] = []
    warnings: list[str] = []
    mds_device = ""
    first_device = ""
    obr_time_text = ""
    orc_device = ""
    obx_count = 0
    for seg in msg:
        seg_id = str(seg[0][0]) if len(seg) and len(seg[0]) else ""
        if seg_id == "OBR":
            obr_time_text = _get(seg, 7)
            continue
        if seg_id == "ORC" and not orc_device:
            orc_device = _get(seg, 18, 1, 1)  # entering device: Philips Efficia names itself here
            continue
        if seg_id != "OBX":
            continue
        obx_count += 1
        set_id = _get(seg, 1) or f"#{obx_count}"  # some senders leave OBX-1 empty
        code = mdil_to_mdc(_get(seg, 3, 1, 1))
        ref_id = _get(seg, 3, 1, 2)
        device_here = _get(seg, 18, 1, 1)
        if _get(seg, 18, 1, 3).upper() in ("MDC", "MDIL"):
            device_here = ""  # a measurement code (the source of a derived value), not equipment
        if device_here and not first_device:
            first_device = device_here
        if code == MDS_CODE and device_here and not mds_device:
            mds_device = device_here
        mdc = CODES.get(code) or CODES.get(ref_id)
        label = code or ref_id
        raw_value = _get(seg, 5)
        status = _get(seg, 11).upper()
        if mdc is None:
            ignored.append(IgnoredObx(set_id, label, "code not used by Vigil"))
            continue
        if status in RETRACTION_STATUSES:
            raise fail(
                Hl7ErrorCode.UNSUPPORTED_STATUS,
                f"OBX {set_id} ({label}) has status {status} ({_STATUS_NAMES[status]}): Vigil "
                "does not retract stored readings; send a correction (status C) instead",
            )
        if raw_value == "":
            ignored.append(IgnoredObx(set_id, label, f"no value (status {status or '-'})"))
            continue
        if status in NO_RESULT_STATUSES:
            raise fail(
                Hl7ErrorCode.UNSUPPORTED_STATUS,
                f"OBX {set_id} ({label}) carries value {raw_value!r:.20} with status {status} "
                f"({_STATUS_NAMES[status]}): Vigil will neither store a value its device "
                "marks as no result nor drop it unsaid",
            )
        if status not in STORED_STATUSES and status not in CORRECTION_STATUSES:
            raise fail(
                Hl7ErrorCode.UNSUPPORTED_STATUS,
                f"OBX {set_id} ({label}) has result status {status!r:.10}, which Vigil does "
                "not take (docs/integration.md lists those it does)",
            )
        if not _NUMBER_RE.match(raw_value):
            raise fail(
                Hl7ErrorCode.INVALID_VALUE, f"OBX {set_id} value {raw_value!r:.40} is not a number"
            )
        value = float(raw_value)
        units = UNITS[mdc.signal]
        unit = mdil_to_mdc(_get(seg, 6, 1, 1))
        convert = (
            units.get(unit)
            or units.get(_get(seg, 6, 1, 4))
            or units.get(mdil_to_mdc(_get(seg, 6, 1, 2)))
            or units.get(_get(seg, 6, 1, 2))
        )
        if convert is None:
            raise fail(
                Hl7ErrorCode.UNKNOWN_UNIT,
                f"OBX {set_id} ({label}): unit {unit or '(none)'!r:.40} is not understood for {mdc.signal}",
            )
        value = convert(value)
        if not math.isfinite(value):
            raise fail(Hl7ErrorCode.INVALID_VALUE, f"OBX {set_id} value is not finite")
        time_text, where = _get(seg, 14), "OBX-14"
        if not time_text:
            time_text, where = obr_time_text, "OBR-7"
        if not time_text:
            time_text, where = msh_time_text, "MSH-7"
        if not time_text:
            raise fail(
                Hl7ErrorCode.BAD_TIMESTAMP, f"OBX {set_id} has no time (OBX-14, OBR-7, MSH-7)"
            )
        ts = to_epoch(time_text, where)
        if status in CORRECTION_STATUSES:
            corrected_times.add(ts)
        group = groups.setdefault(ts, {})
        previous = group.get(mdc.signal)
        if previous is not None and previous[0] <= mdc.rank:
            reason = f"{mdc.signal} already given by OBX {previous[3]}"
            ignored.append(IgnoredObx(set_id, label, reason))
            warnings.append(f"OBX {set_id} ({label}) value {raw_value} not stored: {reason}")
            continue
        if previous is not None:
            reason = f"{mdc.signal} superseded by OBX {set_id}"
            ignored.append(IgnoredObx(previous[3], previous[4], reason))
            warnings.append(f"OBX {previous[3]} ({previous[4]}) not stored: {reason}")
        group[mdc.signal] = (mdc.rank, value, mdc.nibp, set_id, label)

    device_name = mds_device or first_device or _get(msh, 3, 1, 1) or orc_device
    if not device_name:
        raise fail(Hl7ErrorCode.NO_DEVICE, "no device name in OBX-18, MSH-3 or ORC-18")
    if not groups:
        raise fail(
            Hl7ErrorCode.NO_VALUES,
            "no OBX row with a value of a code Vigil understands (see docs/integration.md)",
        )

    readings: list[ReadingMsg] = []
    corrections: set[int] = set()
    for ts in sorted(groups):
        group = groups[ts]
        raw = {signal: entry[1] for signal, entry in group.items()}
        seq = derive_seq(ts, raw)
        try:
            values = validate_values(raw, seq)
        except ProtocolError as exc:
            raise fail(str(exc.code), exc.detail) from None
        source = NIBP_SOURCE if any(entry[2] for entry in group.values()) else None
        readings.append(
            ReadingMsg(device_id=device_name, seq=seq, ts=ts, values=values, source=source)
        )
        if ts in corrected_times:
            corrections.add(seq)
    return Pcd01Result(
        control_id=control_id,
        device_name=device_name,
        readings=tuple(readings),
        ignored=tuple(ignored),
        sending_application=_get(msh, 3, 1, 1),
        corrections=frozenset(corrections),
        warnings=tuple(warnings),
    )


# --- ACK ---------------------------------------------------------------------------------

# HL7 table 0357 (message error condition codes) for each Vigil reason.
_HL7_ERROR_CODES: Final[Mapping[str, tuple[str, str]]] = {
    Hl7ErrorCode.PARSE_ERROR: ("100", "Segment sequence error"),
    Hl7ErrorCode.NOT_ORU_R01: ("200", "Unsupported message type"),
    Hl7ErrorCode.NO_VALUES: ("101", "Required field missing"),
    Hl7ErrorCode.NO_DEVICE: ("101", "Required field missing"),
    Hl7ErrorCode.BAD_TIMESTAMP: ("102", "Data type error"),
    Hl7ErrorCode.TS_IN_FUTURE: ("102", "Data type error"),
    Hl7ErrorCode.UNKNOWN_UNIT: ("103", "Table value not found"),
    Hl7ErrorCode.INVALID_VALUE: ("102", "Data type error"),
    Hl7ErrorCode.INCONSISTENT_CUFF: ("102", "Data type error"),
    Hl7ErrorCode.UNSUPPORTED_STATUS: ("103", "Table value not found"),
    Hl7ErrorCode.SEQ_CONFLICT: ("205", "Duplicate key identifier"),
    Hl7ErrorCode.UNKNOWN_DEVICE: ("204", "Unknown key identifier"),
    Hl7ErrorCode.STORAGE_FAILED: ("207", "Application internal error"),
    Hl7ErrorCode.INTERNAL_ERROR: ("207", "Application internal error"),
}
ACK_CODES: Final = frozenset({"AA", "AE", "AR"})
MAX_ACK_WARNINGS: Final = 20
WARNING_NOT_STORED: Final = "not_stored"
ACK_SENDING_APPLICATION: Final = "VIGIL"


def _ack_source(message: str | hl7.Message | Pcd01Result | None) -> hl7.Segment | None:
    if isinstance(message, Pcd01Result) or message is None:
        return None
    try:
        msg = (
            message if isinstance(message, hl7.Message) else hl7.parse(normalise_segments(message))
        )
        seg = msg.segment("MSH")
    except Exception:  # an ACK must still go out for garbage: answer without echoing it
        return None
    return seg if isinstance(seg, hl7.Segment) else None


def _dtm(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y%m%d%H%M%S") + f".{dt.microsecond // 1000:03d}+0000"


def build_ack(
    message: str | hl7.Message | Pcd01Result | None,
    code: str,
    error_text: str | None = None,
    *,
    now: float,
    error_code: str | None = None,
    control_id: str | None = None,
    warnings: Sequence[str] = (),
) -> str:
    """An HL7 v2.6 original-mode ACK for ``message`` (raw text, parsed, or a parse result).

    MSH swaps the sender and receiver of the original; MSA-1 is ``code``, MSA-2 the original
    control id (empty when it could not be read). When ``code`` is not AA an ERR segment
    carries the HL7 table-0357 condition, Vigil's stable ``error_code`` (ERR-3.4) and
    ``error_text`` (ERR-8, user message). ``warnings`` (at most ``MAX_ACK_WARNINGS``) add
    ERR segments of severity W (ERR-3 ``0`` message accepted, ERR-3.4 ``not_stored``) to any
    code. Segments end in CR. ``now`` stamps MSH-7.
    """
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {sorted(ACK_CODES)}")
    src = _ack_source(message)
    original_id = ""
    if isinstance(message, Pcd01Result):
        original_id = message.control_id
    elif src is not None:
        original_id = _get(src, 10)
    if control_id is not None:
        original_id = original_id or control_id

    # Build with python-hl7's containers so escaping and separators are its business.
    template = hl7.parse("MSH|^~\\&|\rMSA|\r")
    msh = template.segment("MSH")
    msa = template.segment("MSA")

    def put(seg: hl7.Segment, value: str, field: int, comp: int | None = None) -> None:
        if value:
            seg.assign_field(template.escape(value), field, 1 if comp else None, comp)

    if src is not None:
        for comp in (1, 2, 3):
            put(msh, _get(src, 5, 1, comp), 3, comp)  # ours: the original receiver, if named
            put(msh, _get(src, 3, 1, comp), 5, comp)
            put(msh, _get(src, 4, 1, comp), 6, comp)
            put(msh, _get(src, 6, 1, comp), 4, comp)
    if not _get(msh, 3, 1, 1):
        msh.assign_field(ACK_SENDING_APPLICATION, 3, 1, 1)
    msh.assign_field(_dtm(now), 7)
    trigger = _get(src, 9, 1, 2) if src is not None else ""
    msh.assign_field("ACK", 9, 1, 1)
    if trigger:
        msh.assign_field(template.escape(trigger), 9, 1, 2)
        msh.assign_field("ACK", 9, 1, 3)
    ack_id = f"ACK{original_id}" if original_id else f"ACK{int(now * 1000)}"
    msh.assign_field(template.escape(ack_id[:199]), 10)
    msh.assign_field((_get(src, 11, 1, 1) if src is not None else "") or "P", 11)
    msh.assign_field("2.6", 12)
    msa.assign_field(code, 1)
    if original_id:
        msa.assign_field(template.escape(original_id), 2)
    segments = [str(msh), str(msa)]
    if code != "AA":
        reason = error_code or (
            Hl7ErrorCode.NOT_ORU_R01 if code == "AR" else Hl7ErrorCode.INTERNAL_ERROR
        )
        hl7_code, hl7_text = _HL7_ERROR_CODES.get(reason, ("207", "Application internal error"))
        err = hl7.parse("MSH|^~\\&|\rERR|\r").segment("ERR")
        err.assign_field(hl7_code, 3, 1, 1)
        err.assign_field(hl7_text, 3, 1, 2)
        err.assign_field("HL70357", 3, 1, 3)
        err.assign_field(template.escape(reason), 3, 1, 4)
        err.assign_field("E", 4)
        text = (error_text or reason).replace("\r", " ").replace("\n", " ")
        err.assign_field(template.escape(text[:250]), 8)
        segments.append(str(err))
    for note in list(warnings)[:MAX_ACK_WARNINGS]:
        err = hl7.parse("MSH|^~\\&|\rERR|\r").segment("ERR")
        err.assign_field("0", 3, 1, 1)
        err.assign_field("Message accepted", 3, 1, 2)
        err.assign_field("HL70357", 3, 1, 3)
        err.assign_field(WARNING_NOT_STORED, 3, 1, 4)
        err.assign_field("W", 4)
        text = note.replace("\r", " ").replace("\n", " ")
        err.assign_field(template.escape(text[:250]), 8)
        segments.append(str(err))
    return "\r".join(segments) + "\r"


def ack_for_error(message: str, error: Hl7Error, *, now: float) -> str:
    """AR for a message Vigil does not take at all (wrong type, unknown device), else AE."""
    code = "AR" if error.code in (Hl7ErrorCode.NOT_ORU_R01, Hl7ErrorCode.UNKNOWN_DEVICE) else "AE"
    return build_ack(
        message,
        code,
        error.detail,
        now=now,
        error_code=error.code,
        control_id=error.control_id or None,
    )
