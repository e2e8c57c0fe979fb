"""What the protocol rules share: their vocabulary and how they read a session's record.

Rules (docs/protocols.md; the numbers are the package's, monitor.clinical.rules):
2. Anchors. ``admission`` is the session's opening; ``infusion_start``, ``infusion_stop`` and
   ``discharge_request`` are the ``at`` of the first event of that type (``anchors``).
8. Only times decide: the statuses never depend on the order readings arrive in. Cuff BPs are
   put in device-time order (``ts``, then device and sequence: ``reading_key``) and
   observations in ``at`` order (then the order stored), whatever order they came in.

A cuff BP is a reading of ``source: nibp`` with both sbp and dbp. Plain data: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from monitor.clinical.protocols import Anchor, CheckpointKind, ItemKind
from monitor.core.model import Reading


class Status(StrEnum):
    UPCOMING = "upcoming"
    DUE = "due"
    DONE = "done"
    OVERDUE = "overdue"


class Gate(StrEnum):
    CHECKLIST_INCOMPLETE = "checklist_incomplete"
    PREDOSE_BP_MISSING = "predose_bp_missing"
    PREDOSE_BP_HIGH = "predose_bp_high"
    DISCHARGE_BLOCKED = "discharge_blocked"
    DOSE_OUTSIDE_INFUSION = "dose_outside_infusion"
    DEVICE_INTERVAL = "device_interval"
    DEVICES_EXCEEDED = "devices_exceeded"


class Blocked(StrEnum):
    TOO_SOON = "too_soon"
    BP_MISSING = "bp_missing"
    BP_OUT_OF_RANGE = "bp_out_of_range"
    SPO2_MISSING = "spo2_missing"
    SPO2_LOW = "spo2_low"
    HR_MISSING = "hr_missing"
    HR_OUT_OF_RANGE = "hr_out_of_range"
    MOAAS_MISSING = "moaas_missing"
    MOAAS_LOW = "moaas_low"
    ESCORT_UNCONFIRMED = "escort_unconfirmed"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A stored session event: ``at`` in epoch seconds, in the order stored."""

    type: str
    at: float
    data: Mapping[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ItemStatus:
    id: str
    label: str
    kind: ItemKind
    value: Any
    done: bool


@dataclass(frozen=True, slots=True)
class Satisfier:
    """What satisfied a checkpoint: a cuff reading or an observation event."""

    at: float
    values: Mapping[str, Any]
    device_id: str | None = None
    seq: int | None = None
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    id: str
    checkpoint: str  # the protocol's checkpoint id
    kind: CheckpointKind
    due_at: float | None
    window_start: float | None
    window_end: float | None
    status: Status
    done_at: float | None = None
    late: bool = False
    satisfied_by: Satisfier | None = None


@dataclass(frozen=True, slots=True)
class DischargeStatus:
    eligible: bool
    eligible_at: float | None
    blocked_by: tuple[Blocked, ...] = ()


@dataclass(frozen=True, slots=True)
class ProtocolStatus:
    checklist: tuple[ItemStatus, ...]
    checkpoints: tuple[CheckpointStatus, ...]
    discharge: DischargeStatus


@dataclass(frozen=True, slots=True)
class Refusal:
    """A gate that refuses an event: the API answers 409 with ``code`` and ``detail``."""

    code: Gate
    detail: Mapping[str, Any] = field(default_factory=dict)


class ChecklistError(ValueError):
    """A checklist event whose data does not fit the protocol's items (answered with 422)."""


class DoseError(ValueError):
    """A dose whose figures do not fit the protocol or each other (answered with 422)."""


class Forbidden(PermissionError):
    """An override by a user whose role may not override (answered with 403)."""


# --- reading the record (rules 2, 8) ------------------------------------------------------------


def anchors(opened_at: float, events: Sequence[SessionEvent]) -> dict[Anchor, float]:
    """When each anchor happened (rule 2); an anchor not yet happened is absent."""
    out: dict[Anchor, float] = {Anchor.ADMISSION: opened_at}
    for e in events:
        try:
            anchor = Anchor(e.type)
        except ValueError:
            continue
        out.setdefault(anchor, e.at)
    return out


def _is_cuff_bp(r: Reading) -> bool:
    return r.source == "nibp" and "sbp" in r.values and "dbp" in r.values


def reading_key(r: Reading) -> tuple[float, str, int]:
    """Device-time order of readings, ties broken by device and sequence (rule 8)."""
    return (r.ts, r.device_id, r.seq)


def cuff_bps(readings: Iterable[Reading]) -> list[Reading]:
    """The cuff BPs among ``readings``, in device-time order (rule 8)."""
    return sorted((r for r in readings if _is_cuff_bp(r)), key=reading_key)


def observations(events: Sequence[SessionEvent], keys: tuple[str, ...]) -> list[Satisfier]:
    """The ``observation`` events giving any of ``keys``, in ``at`` order (rule 8)."""
    found = []
    for i, e in enumerate(events):
        if e.type != "observation" or not e.data:
            continue
        hit = {k: e.data[k] for k in keys if k in e.data}
        if hit:
            found.append((e.at, i, Satisfier(at=e.at, values=hit, event_id=e.id)))
    return [s for _, _, s in sorted(found, key=lambda x: (x[0], x[1]))]
