"""IHE PCD-01 (HL7 v2.6 ORU^R01) to Vigil readings, and HL7 ACKs back: pure, no I/O, no clock.

The parser is here; the tables it reads by (codes, units, statuses, reasons) are
monitor.wire.pcd01_codes' and the ACK is monitor.wire.pcd01_ack's, both re-exported here, the
one name callers import.

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
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import hl7

from monitor.wire.device import (
    MAX_FUTURE_SKEW_S,
    ProtocolError,
    ReadingMsg,
    validate_values,
)
from monitor.wire.pcd01_ack import (
    ACK_CODES,
    ACK_SENDING_APPLICATION,
    MAX_ACK_WARNINGS,
    WARNING_NOT_STORED,
    ack_for_error,
    build_ack,
)
from monitor.wire.pcd01_codes import (
    CODES,
    CORRECTION_STATUSES,
    MDS_CODE,
    NIBP_SOURCE,
    NO_RESULT_STATUSES,
    RETRACTION_STATUSES,
    STATUS_NAMES,
    STORED_STATUSES,
    UNITS,
    Hl7Error,
    Hl7ErrorCode,
    IgnoredObx,
    MdcCode,
    Pcd01Result,
    field_text,
    mdil_to_mdc,
    normalise_segments,
)

__all__ = [
    "ACK_CODES",
    "ACK_SENDING_APPLICATION",
    "CODES",
    "CORRECTION_STATUSES",
    "MAX_ACK_WARNINGS",
    "MDS_CODE",
    "NIBP_SOURCE",
    "NO_RESULT_STATUSES",
    "RETRACTION_STATUSES",
    "SEQ_SIGNAL_BIT",
    "SEQ_SIGNAL_BITS",
    "STORED_STATUSES",
    "UNITS",
    "WARNING_NOT_STORED",
    "Hl7Error",
    "Hl7ErrorCode",
    "IgnoredObx",
    "MdcCode",
    "Pcd01Result",
    "ack_for_error",
    "build_ack",
    "derive_seq",
    "mdil_to_mdc",
    "normalise_segments",
    "parse_hl7_dtm",
    "parse_pcd01",
]

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

# YYYYMMDDHHMM[SS[.S{1,4}]][+/-ZZZZ]: minute precision at least, a reading needs a time.
_DTM_RE: Final = re.compile(r"^(\d{12}(?:\d{2}(?:\.\d{1,4})?)?)([+-]\d{4})?$")
_NUMBER_RE: Final = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def derive_seq(ts: float, values: Mapping[str, float]) -> int:
    """The deterministic seq of an HL7 reading: epoch milliseconds * 128 + signal bit mask."""
    mask = 0
    for signal in values:
        mask |= SEQ_SIGNAL_BIT[signal]
    return round(ts * 1000) * SEQ_SIGNAL_BITS + mask


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
    control_id = field_text(msh, 10)
    mtype, trigger = field_text(msh, 9, 1, 1), field_text(msh, 9, 1, 2)
    if (mtype, trigger) != ("ORU", "R01"):
        raise Hl7Error(
            Hl7ErrorCode.NOT_ORU_R01,
            f"message type {mtype}^{trigger} is not ORU^R01"[:120],
            control_id=control_id,
        )

    def fail(code: str, detail: str) -> Hl7Error:
        return Hl7Error(code, detail, control_id=control_id)

    msh_time_text = field_text(msh, 7)
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
            obr_time_text = field_text(seg, 7)
            continue
        if seg_id == "ORC" and not orc_device:
            orc_device = field_text(
                seg, 18, 1, 1
            )  # entering device: Philips Efficia names itself here
            continue
        if seg_id != "OBX":
            continue
        obx_count += 1
        set_id = field_text(seg, 1) or f"#{obx_count}"  # some senders leave OBX-1 empty
        code = mdil_to_mdc(field_text(seg, 3, 1, 1))
        ref_id = field_text(seg, 3, 1, 2)
        device_here = field_text(seg, 18, 1, 1)
        if field_text(seg, 18, 1, 3).upper() in ("MDC", "MDIL"):
            device_here = ""  # a measurement code (the source of a derived value), not equipment
        if device_here and not first_device:
            first_device = device_here
        if code == MDS_CODE and device_here and not mds_device:
            mds_device = device_here
        mdc = CODES.get(code) or CODES.get(ref_id)
        label = code or ref_id
        raw_value = field_text(seg, 5)
        status = field_text(seg, 11).upper()
        if mdc is None:
            ignored.append(IgnoredObx(set_id, label, "code not used by Vigil"))
            continue
        if status in RETRACTION_STATUSES:
            raise fail(
                Hl7ErrorCode.UNSUPPORTED_STATUS,
                f"OBX {set_id} ({label}) has status {status} ({STATUS_NAMES[status]}): Vigil "
                "does not retract stored readings; send a correction (status C) instead",
            )
        if raw_value == "":
            ignored.append(IgnoredObx(set_id, label, f"no value (status {status or '-'})"))
            continue
        if status in NO_RESULT_STATUSES:
            raise fail(
                Hl7ErrorCode.UNSUPPORTED_STATUS,
                f"OBX {set_id} ({label}) carries value {raw_value!r:.20} with status {status} "
                f"({STATUS_NAMES[status]}): Vigil will neither store a value its device "
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
        unit = mdil_to_mdc(field_text(seg, 6, 1, 1))
        convert = (
            units.get(unit)
            or units.get(field_text(seg, 6, 1, 4))
            or units.get(mdil_to_mdc(field_text(seg, 6, 1, 2)))
            or units.get(field_text(seg, 6, 1, 2))
        )
        if convert is None:
            raise fail(
                Hl7ErrorCode.UNKNOWN_UNIT,
                f"OBX {set_id} ({label}): unit {unit or '(none)'!r:.40} is not understood for {mdc.signal}",
            )
        value = convert(value)
        if not math.isfinite(value):
            raise fail(Hl7ErrorCode.INVALID_VALUE, f"OBX {set_id} value is not finite")
        time_text, where = field_text(seg, 14), "OBX-14"
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

    device_name = mds_device or first_device or field_text(msh, 3, 1, 1) or orc_device
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
        sending_application=field_text(msh, 3, 1, 1),
        corrections=frozenset(corrections),
        warnings=tuple(warnings),
    )
