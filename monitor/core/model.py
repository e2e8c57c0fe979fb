"""The single data model: plain values shared by every layer.

Rules kept here (after OpenICE's data model):
- numerics only (no waveforms); each reading keeps the device's measurement time
  (``ts``) and the monitor's receive time (``received_at``), both epoch seconds, UTC;
- a missing signal means "not measured", never zero;
- technical alerts (about a device) are kept apart from physiological ones (about the patient).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

# Signals a device may report, with what a body can show (inclusive bounds). A value
# outside these is not physiology: it is rejected at ingest as artefact.
SIGNAL_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "hr": (0.0, 350.0),
    "pr": (0.0, 350.0),
    "spo2": (0.0, 100.0),
    "sbp": (0.0, 350.0),
    "dbp": (0.0, 350.0),
    "map": (0.0, 350.0),
    "rr": (0.0, 150.0),
}
SIGNALS: Final[tuple[str, ...]] = tuple(SIGNAL_RANGES)
# ``hr`` is the ECG heart rate, ``pr`` the pulse rate (oximeter, cuff or arterial line): real
# monitors report both and they disagree when a sensor is poor, so they are kept apart.
CONTINUOUS_SIGNALS: Final[frozenset[str]] = frozenset({"hr", "pr", "spo2", "rr"})
CUFF_SIGNALS: Final[frozenset[str]] = frozenset({"sbp", "dbp", "map"})
SIGNAL_UNITS: Final[Mapping[str, str]] = {
    "hr": "/min",
    "pr": "/min",
    "spo2": "%",
    "sbp": "mmHg",
    "dbp": "mmHg",
    "map": "mmHg",
    "rr": "/min",
}

# Identifiers appear in URLs and logs: keep them to a safe alphabet.
ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class Phase(StrEnum):
    BASELINE = "baseline"
    INFUSION = "infusion"
    RECOVERY = "recovery"
    ENDED = "ended"


class Role(StrEnum):
    NURSE = "nurse"
    CHARGE = "charge"
    ADMIN = "admin"


class AlarmKind(StrEnum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


class Priority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# Keyed by the enum; a StrEnum hashes as its value, so a stored string finds its rank too.
PRIORITY_RANK: Final[Mapping[Priority, int]] = {
    Priority.LOW: 1,
    Priority.MEDIUM: 2,
    Priority.HIGH: 3,
}


class Direction(StrEnum):
    """Which side of a limit a physiological condition lies on (``spo2 < 90`` is LOW)."""

    LOW = "low"
    HIGH = "high"


class AlarmState(StrEnum):
    """An alarm's lifecycle state (monitor/alarms/lifecycle.py holds the transition table;
    INACTIVE and PENDING are the condition tracker's, never a stored alarm's)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    LATCHED = "latched"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored numeric reading from one device."""

    device_id: str
    seq: int
    ts: float
    received_at: float
    values: Mapping[str, float]
    source: str | None = None
    # The bed its device was bound to on arrival. Its session is not a field: it is the
    # session whose span holds ``ts`` (monitor.clinical.session.membership_span, Store.readings).
    bed_id: str | None = None

    @property
    def is_cuff(self) -> bool:
        return self.source == "nibp" or any(k in CUFF_SIGNALS for k in self.values)


@dataclass(slots=True)
class Alarm:
    """An alarm as stored and shown; the engine owns its lifecycle."""

    id: str
    bed_id: str
    signal: str
    kind: AlarmKind
    priority: Priority
    condition: str
    started_at: float
    state: AlarmState
    ended_at: float | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    session_id: int | None = None
    device_id: str | None = None
    value: float | None = None
    escalated: bool = False
    audio_paused_until: float | None = None
    detail: dict[str, object] = field(default_factory=dict)
    # The side of its limit a physiological alarm is on (None for a technical one): kept as
    # data, never read back out of the condition text. Stored inside the row's detail JSON.
    direction: Direction | None = None

    def __post_init__(self) -> None:
        # Alarms also arrive as plain strings (a database row, the cluster relay's JSON, a
        # report's input): parse them into the enums here, once, so every comparison past
        # this point is between enums. An unknown value raises ValueError.
        self.kind = AlarmKind(self.kind)
        self.priority = Priority(self.priority)
        self.state = AlarmState(self.state)
        if self.direction is not None:
            self.direction = Direction(self.direction)


def to_rfc3339(epoch: float | None) -> str | None:
    """Epoch seconds to RFC 3339 UTC with milliseconds and a trailing Z."""
    if epoch is None:
        return None
    # isoformat pads the year to four digits (strftime's %Y drops the zeros before year 1000)
    # and truncates to milliseconds; it is several times cheaper than strftime, and this
    # runs for every reading fed to the panels. The offset of a UTC datetime is "+00:00".
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_rfc3339(text: str) -> float:
    """RFC 3339 text to epoch seconds; raises ValueError when it is not a UTC-offset timestamp."""
    if not isinstance(text, str) or len(text) < 20 or len(text) > 40:
        raise ValueError("not an RFC 3339 timestamp")
    if "T" not in text and "t" not in text:
        raise ValueError("not an RFC 3339 timestamp")
    candidate = text.replace("z", "Z")
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    dt = datetime.fromisoformat(candidate)
    if dt.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset")
    # An offset can carry 0001-01-01 into year 0, which no datetime (nor to_rfc3339) can show.
    datetime.fromtimestamp(dt.timestamp(), tz=UTC)
    return dt.timestamp()
