"""Sessions: admit a patient to a bed, move through the phases, record observations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, field_validator

from monitor import session as session_model
from monitor.api.deps import ChargeUser, CurrentUser, MonitorDep, SessionId, StrictRoute
from monitor.api.ward import check_id, parse_time
from monitor.db.store import Conflict, NotFound
from monitor.model import SIGNAL_RANGES, Phase

router = APIRouter(tags=["sessions"], route_class=StrictRoute)

# 60 minutes at most is the clinic range; the planned time is what the panel's timer counts to.
DEFAULT_PLANNED_S = 40 * 60


class SessionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    bed: str = Field(min_length=1, max_length=64)
    patient_label: str = Field(min_length=1, max_length=128)
    # Strict: a wrong type ("54", 54.0, true) is refused, not silently coerced.
    age: int | None = Field(default=None, ge=0, le=130, strict=True)
    baseline: dict[str, float] | None = None
    infusion_planned_min: int | None = Field(default=None, ge=5, le=240, strict=True)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        for k, x in v.items():
            bounds = SIGNAL_RANGES.get(k)
            if bounds is None:
                raise ValueError(f"unknown signal {k!r} in baseline")
            if not bounds[0] <= x <= bounds[1]:
                raise ValueError(f"baseline {k} must be within {bounds[0]:g}..{bounds[1]:g}")
        return v


EventType = Literal[
    "infusion_start", "infusion_pause", "infusion_resume", "infusion_stop", "end", "observation"
]


class SessionEvent(BaseModel):
    model_config = {"extra": "forbid"}

    type: EventType
    at: str | None = None
    data: dict[str, Any] | None = None

    @field_validator("data")
    @classmethod
    def _small(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and len(repr(v)) > 4000:
            raise ValueError("data is too large")
        return v


async def _session_row(monitor: MonitorDep, session_id: int) -> dict[str, Any]:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    return row


@router.post("/api/sessions", status_code=status.HTTP_201_CREATED)
async def create_session(
    body: SessionCreate, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    check_id(body.bed, "bed")
    planned = (body.infusion_planned_min * 60) if body.infusion_planned_min else DEFAULT_PLANNED_S
    try:
        sid = await monitor.store.create_session(
            bed_id=body.bed,
            patient_label=body.patient_label,
            age=body.age,
            baseline=body.baseline,
            planned_s=planned,
            now=monitor.clock(),
            by=user.name,
        )
    except NotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    except Conflict as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    return await monitor.session_changed(sid)


@router.get("/api/sessions")
async def list_sessions(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: str | None = None,
    open: bool | None = None,
    patient_label: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    check_id(bed, "bed")
    rows = await monitor.store.session_rows(
        bed_id=bed, open_only=open, patient_label=patient_label, limit=limit
    )
    return {"sessions": [await monitor.session_json(r) for r in rows]}


@router.get("/api/sessions/{session_id}")
async def get_session(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    return await monitor.session_json(await _session_row(monitor, session_id))


@router.post("/api/sessions/{session_id}/events")
async def add_event(
    session_id: SessionId, body: SessionEvent, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await _session_row(monitor, session_id)
    now = monitor.clock()
    at = parse_time(body.at, "at") if body.at else now
    assert at is not None
    if at > now + 300:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "at is in the future")
    events = await monitor.store.session_events(session_id)
    state = session_model.replay(
        (e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
    )
    try:
        new_state = session_model.apply(state, body.type, at)
    except session_model.TransitionError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    baseline = None
    if body.type == "infusion_start" and not row["baseline"]:
        # The baseline phase's own readings set the reference for the relative limits.
        baseline = await monitor.baseline_from_readings(session_id, at)
    await monitor.store.add_session_event(
        session_id,
        event_type=body.type,
        at=at,
        now=now,
        by=user.name,
        data=body.data,
        new_phase=new_state.phase.value,
        baseline=baseline,
    )
    return await monitor.session_changed(session_id)


class LimitsUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    overrides: dict[str, Any]


@router.get("/api/sessions/{session_id}/limits")
async def get_limits(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await _session_row(monitor, session_id)
    return monitor.limits_json(row)


@router.put("/api/sessions/{session_id}/limits")
async def put_limits(
    session_id: SessionId, body: LimitsUpdate, monitor: MonitorDep, user: ChargeUser
) -> dict[str, Any]:
    row = await _session_row(monitor, session_id)
    if row["phase"] == Phase.ENDED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, "the session has ended")
    try:
        overrides = monitor.validate_overrides(body.overrides)
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(e)) from None
    await monitor.store.set_limit_overrides(
        session_id, overrides, now=monitor.clock(), by=user.name
    )
    await monitor.session_changed(session_id)
    row = await _session_row(monitor, session_id)
    return monitor.limits_json(row)
