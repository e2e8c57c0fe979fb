"""The panel's plain words for the monitor's data, as pure functions (docs/panel.md): local
clock times ("14:06"), durations in whole minutes, whole numbers where whole numbers are meant,
signal names with units, and the monitor's refusals in a sentence a nurse can act on. Never a
config key or an RFC 3339 stamp on screen. No I/O and no clock reads: the browser's UTC
offset is an argument. The vocabulary itself is dashboard/words.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dashboard.words import (
    BLOCKED_WORDS,
    CHECKLIST_INCOMPLETE,
    DEVICE_INTERVAL,
    DISCHARGE_BLOCKED,
    LOGIN_EXPIRED,
    NOT_ACCEPTED,
    REFUSAL_WORDS,
    REFUSED,
    UNREACHABLE,
)
from monitor.clinical.rules import Blocked, Gate
from monitor.core.errors import ErrorCode
from monitor.core.model import parse_rfc3339

SIGNAL_NAMES: Final[Mapping[str, str]] = {
    "hr": "Heart rate",
    "pr": "Pulse rate",
    "spo2": "SpO\u2082",
    "rr": "Respiratory rate",
    "sbp": "Systolic BP",
    "dbp": "Diastolic BP",
    "map": "Mean BP",
}
SIGNAL_UNITS: Final[Mapping[str, str]] = {
    "hr": "/min",
    "pr": "/min",
    "spo2": "%",
    "rr": "/min",
    "sbp": "mmHg",
    "dbp": "mmHg",
    "map": "mmHg",
}


def to_epoch(ts: Any) -> float | None:
    """An RFC 3339 string or epoch seconds as epoch seconds; None for anything else."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    if not isinstance(ts, str):
        return None
    try:
        return parse_rfc3339(ts)
    except ValueError:
        return None


def clock(ts: Any, tz_offset_min: int) -> str:
    """A time as the nurse's wall clock shows it: "14:06" (the browser's offset)."""
    epoch = to_epoch(ts)
    if epoch is None:
        return ""
    dt = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=tz_offset_min)
    return dt.strftime("%H:%M")


def day_and_clock(ts: Any, tz_offset_min: int) -> str:
    """ "25 Nov 14:06": for sessions of other days."""
    epoch = to_epoch(ts)
    if epoch is None:
        return ""
    dt = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=tz_offset_min)
    return f"{dt.day} {dt.strftime('%b %H:%M')}"


def minutes(seconds: float) -> str:
    """A duration in whole minutes, never "0 min" for something still ahead."""
    m = max(1, round(abs(seconds) / 60)) if abs(seconds) >= 30 else 0
    return f"{m} min" if m else "under a minute"


def number(value: Any) -> str:
    """Whole numbers without ".0"; anything else to one decimal."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    return str(int(round(value))) if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def signal_with_unit(signal: str) -> str:
    unit = SIGNAL_UNITS.get(signal, "")
    return f"{SIGNAL_NAMES.get(signal, signal)} ({unit})" if unit else SIGNAL_NAMES.get(signal, "")


def blocked_text(blocked_by: Sequence[Any], eligible_at: Any, tz_offset_min: int) -> str:
    words = []
    for code in blocked_by:
        word = BLOCKED_WORDS.get(str(code), "a discharge criterion is not met")
        if str(code) == Blocked.TOO_SOON and clock(eligible_at, tz_offset_min):
            word += f" (not before {clock(eligible_at, tz_offset_min)})"
        words.append(word)
    return "; ".join(words)


def refusal_text(
    status: int,
    code: str | None,
    info: Mapping[str, Any],
    message: str,
    tz_offset_min: int = 0,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A refusal of the monitor in a sentence a nurse can act on (codes: docs/api.md)."""
    labels = labels or {}
    if status == 0:
        return UNREACHABLE
    if status == 401:
        return LOGIN_EXPIRED
    if code == Gate.CHECKLIST_INCOMPLETE:
        ids = [str(m) for m in info.get("missing") or []]
        if ids and all(i in labels for i in ids):
            tail = ": still to do: " + ", ".join(labels[i] for i in ids) + "."
        elif ids:
            tail = (
                f": {len(ids)} item{'s' if len(ids) != 1 else ''} still to do (see the checklist)."
            )
        else:
            tail = "."
        return CHECKLIST_INCOMPLETE + tail
    if code in (Gate.PREDOSE_BP_MISSING, Gate.PREDOSE_BP_HIGH):
        return REFUSAL_WORDS[code]
    if code == Gate.DISCHARGE_BLOCKED:
        why = blocked_text(info.get("blocked_by") or [], info.get("eligible_at"), tz_offset_min)
        return DISCHARGE_BLOCKED.format(why=why or "criteria not met")
    # Before the codes below, as it always was: a 403 of any code reads as the role's refusal.
    if code == ErrorCode.OVERRIDE_FORBIDDEN or status == 403:
        return REFUSAL_WORDS[ErrorCode.OVERRIDE_FORBIDDEN]
    if code == Gate.DEVICE_INTERVAL:
        when = clock(info.get("next_at"), tz_offset_min)
        return DEVICE_INTERVAL + (f": wait until {when}." if when else ".")
    if code is not None and code in REFUSAL_WORDS:
        return REFUSAL_WORDS[code]
    if status == 422:
        return NOT_ACCEPTED.format(message=message)
    return REFUSED.format(message=message)
