"""Clinic protocols (session types) as validated clinic data: part of the clinic config.

A protocol names what a clinic must do and prove in one kind of session: planned and minimum
phase durations, the pre-dose checklist, the pre-dose BP gate, timed checkpoints, the discharge
criteria and per-phase alarm-limit overrides. The shipped protocols live in
monitor/clinic.default.yaml; docs/protocols.md explains every field and its source. The rules
that judge a session against its protocol are in monitor.clinical.rules (pure).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

ITEM_ID: Final = r"^[a-z][a-z0-9_]{0,47}$"
PROTOCOL_ID: Final = r"^[a-z][a-z0-9\-]{0,47}$"
CHECKPOINT_ID: Final = r"^[a-z][a-z0-9\-]{0,47}$"
PHASE_NAMES: Final = ("baseline", "infusion", "recovery")
# An induction series is typically six infusions over two to three weeks (docs/course.md).
DEFAULT_SERIES: Final = 6


class ItemKind(StrEnum):
    CONFIRM = "confirm"
    TEXT = "text"
    NUMBER = "number"
    TIME = "time"


class CheckpointKind(StrEnum):
    BP = "bp"
    MOAAS = "moaas"
    CADSS = "cadss"


class Anchor(StrEnum):
    ADMISSION = "admission"
    INFUSION_START = "infusion_start"  # "dosing starts", for every protocol
    INFUSION_STOP = "infusion_stop"  # "dosing ends"
    DISCHARGE_REQUEST = "discharge_request"  # the nurse's event of that type


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhasePlan(_Strict):
    """Planned and minimum duration of a phase, minutes (None = not set)."""

    planned_min: float | None = Field(default=None, gt=0, le=24 * 60)
    min_min: float | None = Field(default=None, ge=0, le=24 * 60)
    # Alarm-limit overrides in force during this phase, same shape as per-session overrides
    # (signal -> direction -> priority -> threshold); checked against the clinic's
    # override_bounds at start, so a protocol can never switch an alarm off.
    limits: dict[str, Any] = Field(default_factory=dict)
    # Minutes without a cuff reading in this phase that raise the stale-cuff technical alarm,
    # whatever phases the clinic's technical.stale_cuff names (None: the clinic's rule).
    stale_cuff_min: float | None = Field(default=None, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _order(self) -> PhasePlan:
        if (
            self.planned_min is not None
            and self.min_min is not None
            and self.min_min > self.planned_min
        ):
            raise ValueError("min_min cannot exceed planned_min")
        return self


class ChecklistItem(_Strict):
    id: str = Field(pattern=ITEM_ID)
    label: str = Field(min_length=1, max_length=200)
    kind: ItemKind


class PredoseBp(_Strict):
    """Dosing waits for a cuff BP measured in the session; one at or above either threshold
    needs a prescriber's decision with a reason."""

    required: bool = True
    sbp: float = Field(gt=0, le=350)
    dbp: float = Field(gt=0, le=350)


class Checkpoint(_Strict):
    """A measurement due ``offset_min`` after its anchor event, on time within ``window_min``
    either side. With ``every_min`` it repeats while ``within`` (a phase) lasts."""

    id: str = Field(pattern=CHECKPOINT_ID)
    kind: CheckpointKind
    anchor: Anchor
    offset_min: float = Field(ge=0, le=24 * 60)
    window_min: float = Field(gt=0, le=240)
    every_min: float | None = Field(default=None, gt=0, le=24 * 60)
    within: str | None = None

    @model_validator(mode="after")
    def _repeat(self) -> Checkpoint:
        if (self.every_min is None) != (self.within is None):
            raise ValueError("every_min and within go together (a repeat within a phase)")
        if self.within is not None and self.within not in PHASE_NAMES:
            raise ValueError(f"within: unknown phase {self.within!r}")
        if self.every_min is not None and self.every_min <= 2 * self.window_min:
            raise ValueError("every_min must exceed twice window_min (windows may not overlap)")
        return self


class Route(StrEnum):
    IV = "iv"
    INTRANASAL = "intranasal"


class Dosing(_Strict):
    """How the protocol's drug is given and recorded with ``dose`` events.

    ``iv``: one event per dose with ``mg_per_kg`` and/or ``total_mg`` (computed from the
    checklist's ``weight_item``, refused when inconsistent). ``intranasal``: one event per
    device of ``device_mg``, at least ``device_interval_min`` after the previous one."""

    drug: str = Field(min_length=1, max_length=64)
    route: Route
    weight_item: str | None = Field(default=None, pattern=ITEM_ID)
    device_mg: float | None = Field(default=None, gt=0, le=1000)
    device_interval_min: float | None = Field(default=None, gt=0, le=120)
    max_devices: int | None = Field(default=None, ge=1, le=20)

    @model_validator(mode="after")
    def _route(self) -> Dosing:
        if self.route is Route.INTRANASAL and self.device_mg is None:
            raise ValueError("an intranasal protocol names its device_mg")
        if self.route is Route.IV and self.weight_item is None:
            raise ValueError("an iv protocol names the checklist's weight_item for mg/kg")
        return self


class After(_Strict):
    anchor: Anchor
    min: float = Field(ge=0, le=24 * 60)


class BpCriterion(_Strict):
    """The last cuff BP is within these bounds, or within ``within_pct_of_baseline`` % of the
    session's baseline (both systolic and diastolic)."""

    sbp: tuple[float, float]
    dbp: tuple[float, float]
    within_pct_of_baseline: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> BpCriterion:
        for name, (lo, hi) in (("sbp", self.sbp), ("dbp", self.dbp)):
            if not 0 <= lo < hi <= 350:
                raise ValueError(f"{name}: bounds must be 0 <= low < high <= 350")
        return self


class Discharge(_Strict):
    after: After | None = None
    bp: BpCriterion | None = None
    spo2_above: float | None = Field(default=None, ge=0, lt=100)
    hr: tuple[float, float] | None = None
    moaas: int | None = Field(default=None, ge=0, le=5)
    escort_item: str | None = Field(default=None, pattern=ITEM_ID)

    @model_validator(mode="after")
    def _hr(self) -> Discharge:
        if self.hr is not None and not 0 <= self.hr[0] < self.hr[1] <= 350:
            raise ValueError("hr: bounds must be 0 <= low < high <= 350")
        return self


class Rems(_Strict):
    """What the esketamine REMS Patient Monitoring Form needs from a session (docs/course.md):
    the checklist items that answer its concomitant-medication questions, the checkpoints
    whose cuff readings are its 40-minute and pre-discharge BP, the least monitoring time and
    the days it must be filed within."""

    medications: dict[str, str] = Field(default_factory=dict)  # form class -> checklist item
    bp_40_checkpoint: str | None = Field(default=None, pattern=CHECKPOINT_ID)
    bp_discharge_checkpoint: str | None = Field(default=None, pattern=CHECKPOINT_ID)
    min_monitoring_min: float = Field(default=120, gt=0, le=24 * 60)
    filing_days: int = Field(default=7, ge=1, le=365)


class Protocol(_Strict):
    id: str = Field(default="", pattern=r"^$|" + PROTOCOL_ID)  # filled from its key
    label: str = Field(min_length=1, max_length=200)
    description: str = ""
    review: str = ""  # what the clinic must review, shown in GET /api/protocols
    phases: dict[str, PhasePlan] = Field(default_factory=dict)
    checklist: tuple[ChecklistItem, ...] = ()
    predose_bp: PredoseBp | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    discharge: Discharge = Discharge()
    dosing: Dosing | None = None
    # The planned series (an induction course is typically six sessions, docs/course.md):
    # what the panel counts to ("Infusion 3 of 6").
    series: int = Field(default=DEFAULT_SERIES, ge=1, le=100)
    # The REMS monitoring record this protocol's sessions need (docs/course.md); None = none.
    rems: Rems | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        for phase in self.phases:
            if phase not in PHASE_NAMES:
                raise ValueError(f"phases: unknown phase {phase!r}")
        ids = [i.id for i in self.checklist]
        if len(set(ids)) != len(ids):
            raise ValueError("checklist: item ids must be unique")
        cps = [c.id for c in self.checkpoints]
        if len(set(cps)) != len(cps):
            raise ValueError("checkpoints: ids must be unique")
        weight = self.dosing.weight_item if self.dosing is not None else None
        if weight is not None:
            w = next((i for i in self.checklist if i.id == weight), None)
            if w is None or w.kind is not ItemKind.NUMBER:
                raise ValueError(f"dosing.weight_item {weight!r} must name a number item")
        if self.rems is not None:
            for form_class, item_id in self.rems.medications.items():
                if self.item(item_id) is None:
                    raise ValueError(
                        f"rems.medications.{form_class}: no checklist item {item_id!r}"
                    )
            for cp_id in (self.rems.bp_40_checkpoint, self.rems.bp_discharge_checkpoint):
                cp = next((c for c in self.checkpoints if c.id == cp_id), None)
                if cp_id is not None and (cp is None or cp.kind is not CheckpointKind.BP):
                    raise ValueError(f"rems: {cp_id!r} must name a bp checkpoint")
        escort = self.discharge.escort_item
        if escort is not None:
            item = next((i for i in self.checklist if i.id == escort), None)
            if item is None or item.kind is not ItemKind.CONFIRM:
                raise ValueError(
                    f"discharge.escort_item {escort!r} must name a confirm item of the checklist"
                )
        return self

    def item(self, item_id: str) -> ChecklistItem | None:
        return next((i for i in self.checklist if i.id == item_id), None)

    def phase_limits(self, phase: str | None) -> dict[str, Any]:
        plan = self.phases.get(phase or "")
        return dict(plan.limits) if plan is not None else {}

    def stale_cuff_s(self, phase: str | None) -> float | None:
        """The protocol's stale-cuff time in ``phase``, seconds (None: the clinic's rule)."""
        plan = self.phases.get(phase or "")
        if plan is None or plan.stale_cuff_min is None:
            return None
        return plan.stale_cuff_min * 60

    def planned_infusion_s(self) -> int | None:
        plan = self.phases.get("infusion")
        if plan is None or plan.planned_min is None:
            return None
        return int(round(plan.planned_min * 60))

    def public(self) -> dict[str, Any]:
        """As GET /api/protocols shows it."""
        return self.model_dump(mode="json")
