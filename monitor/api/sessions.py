"""Sessions: admit a patient to a bed, move through the phases, record observations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from monitor import session as session_model
from monitor.api import errors
from monitor.api.bodies import NO_NUL, Baseline, IdField, SessionEvent, event_data, text
from monitor.api.deps import CurrentUser, MonitorDep, SessionId, StrictRoute
from monitor.api.errors import ApiError, ErrorCode
from monitor.api.openapi import links
from monitor.api.ward import BedFilter, parse_time
from monitor.db.store import Conflict, NotFound
from monitor.model import Phase

router = APIRouter(
    tags=["sessions"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

# 60 minutes at most is the clinic range; the planned time is what the panel's timer counts to.
DEFAULT_PLANNED_S = 40 * 60


class SessionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    bed: IdField
    patient_label: str = text(128)
    # Strict: a wrong type ("54", 54.0, true) is refused, not silently coerced.
    age: int | None = Field(default=None, ge=0, le=130, strict=True)
    baseline: Baseline | None = None  # type: ignore[valid-type]
    infusion_planned_min: int | None = Field(default=None, ge=5, le=240, strict=True)


async def _session_row(monitor: MonitorDep, session_id: int) -> dict[str, Any]:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session")
    return row


@router.post(
    "/api/sessions",
    status_code=status.HTTP_201_CREATED,
    responses=errors.responses(404, 409),
    openapi_extra=links("create_session"),
)
async def create_session(
    body: SessionCreate, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    baseline = body.baseline.model_dump(exclude_unset=True) if body.baseline else None
    planned = (body.infusion_planned_min * 60) if body.infusion_planned_min else DEFAULT_PLANNED_S
    try:
        sid = await monitor.store.create_session(
            bed_id=body.bed,
            patient_label=body.patient_label,
            age=body.age,
            baseline=baseline,
            planned_s=planned,
            now=monitor.clock(),
            by=user.name,
        )
    except NotFound as e:
        raise ApiError(404, ErrorCode.NOT_FOUND, str(e)) from None
    except Conflict as e:
        raise ApiError(409, ErrorCode.BED_OCCUPIED, str(e)) from None
    return await monitor.session_changed(sid)


@router.get("/api/sessions", openapi_extra=links("list_sessions"))
async def list_sessions(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: BedFilter = None,
    open: bool | None = None,
    patient_label: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    rows = await monitor.store.session_rows(
        bed_id=bed, open_only=open, patient_label=patient_label, limit=limit
    )
    return {"sessions": [await monitor.session_json(r) for r in rows]}


@router.get(
    "/api/sessions/{session_id}",
    responses=errors.responses(404),
    openapi_extra=links("get_session"),
)
async def get_session(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    return await monitor.session_json(await _session_row(monitor, session_id))


@router.post(
    "/api/sessions/{session_id}/events",
    responses=errors.responses(404, 409),
    openapi_extra=links("add_event"),
)
async def add_event(
    session_id: SessionId, body: SessionEvent, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await _session_row(monitor, session_id)
    now = monitor.clock()
    at = parse_time(body.at, "at", "body") if body.at else now
    assert at is not None
    if at > now + 300:
        raise errors.invalid(["body", "at"], "is in the future")
    events = await monitor.store.session_events(session_id)
    state = session_model.replay(
        (e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
    )
    try:
        new_state = session_model.apply(state, body.type, at)
    except session_model.TransitionError as e:
        code = (
            ErrorCode.SESSION_ENDED if state.phase is Phase.ENDED else ErrorCode.EVENT_NOT_ALLOWED
        )
        raise ApiError(409, code, str(e)) from None
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
        data=event_data(body),
        new_phase=new_state.phase.value,
        baseline=baseline,
    )
    return await monitor.session_changed(session_id)


@router.get("/api/sessions/{session_id}/limits", responses=errors.responses(404))
async def get_limits(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await _session_row(monitor, session_id)
    return monitor.limits_json(row)
