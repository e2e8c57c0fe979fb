"""HL7 v2.6 original-mode ACKs for IHE PCD-01 messages: pure, no I/O, no clock.

Rules (docs/integration.md):
1. MSH swaps the sender and receiver of the original; MSA-1 is the code (AA, AE or AR),
   MSA-2 the original control id (empty when it could not be read). A message too broken to
   read still gets an ACK, without echoing it.
2. When the code is not AA an ERR segment carries the HL7 table-0357 condition for Vigil's
   reason, the stable reason itself (ERR-3.4) and the text (ERR-8, user message).
3. Readings not stored of an accepted message add ERR segments of severity W (ERR-3 ``0``
   message accepted, ERR-3.4 ``not_stored``), at most ``MAX_ACK_WARNINGS``.
4. A message Vigil does not take at all (wrong type, unknown device) gets AR; any other
   refusal AE (``ack_for_error``). Segments end in CR; ``now`` stamps MSH-7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import hl7

from monitor.wire.pcd01_codes import (
    Hl7Error,
    Hl7ErrorCode,
    Pcd01Result,
    field_text,
    normalise_segments,
)

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
        original_id = field_text(src, 10)
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
            put(msh, field_text(src, 5, 1, comp), 3, comp)  # ours: the original receiver, if named
            put(msh, field_text(src, 3, 1, comp), 5, comp)
            put(msh, field_text(src, 4, 1, comp), 6, comp)
            put(msh, field_text(src, 6, 1, comp), 4, comp)
    if not field_text(msh, 3, 1, 1):
        msh.assign_field(ACK_SENDING_APPLICATION, 3, 1, 1)
    msh.assign_field(_dtm(now), 7)
    trigger = field_text(src, 9, 1, 2) if src is not None else ""
    msh.assign_field("ACK", 9, 1, 1)
    if trigger:
        msh.assign_field(template.escape(trigger), 9, 1, 2)
        msh.assign_field("ACK", 9, 1, 3)
    ack_id = f"ACK{original_id}" if original_id else f"ACK{int(now * 1000)}"
    msh.assign_field(template.escape(ack_id[:199]), 10)
    msh.assign_field((field_text(src, 11, 1, 1) if src is not None else "") or "P", 11)
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
