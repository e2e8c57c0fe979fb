"""What IHE PCD-01 messages say, as tables: MDC codes, units, OBX-11 statuses, Vigil's reasons.

Rules (docs/integration.md "Codes and units" and its OBX-11 table):
1. OBX-3 names a signal by its IEEE 11073 MDC code, its reference id or Philips' MDIL form
   (``mdil_to_mdc``); ``CODES`` lists those Vigil reads, each with the rank that decides
   which sensor speaks when two rows give one signal at one time (lower wins).
2. Every signal has the units it is read in (``UNITS``), each with its conversion to Vigil's
   unit (kPa to mmHg); there is no default unit.
3. OBX-11 sorts a value-bearing row into stored, correction, retraction (refused) or no
   result (refused when it carries a value).
4. A message not stored is refused for one of ``Hl7ErrorCode``'s stable reasons.

The parser (monitor.wire.pcd01) and the ACK (monitor.wire.pcd01_ack) share these, the result
types and the segment helpers below. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import hl7

from monitor.wire.device import ReadingMsg

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
STATUS_NAMES: Final[Mapping[str, str]] = {
    "X": "result cannot be obtained",
    "I": "result pending",
    "O": "order detail only",
    "N": "not asked",
    "D": "delete",
    "W": "wrong result",
}


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


def normalise_segments(text: str) -> str:
    """Segments end in CR on the wire; files and some senders use LF or CRLF."""
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x0b\x1c")


def field_text(seg: hl7.Segment, field: int, rep: int = 1, comp: int = 1) -> str:
    """One leaf of a segment, '' when absent (python-hl7 raises on short paths)."""
    try:
        value = seg.extract_field(1, field, rep, comp, 1)
    except (IndexError, TypeError, KeyError):
        return ""
    return str(value).strip()
