"""Sessions: admit a patient to a bed, move through the phases, record observations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from monitor import usecases
from monitor.edges.api import errors
from monitor.edges.api.bodies import (
    EVENT_DATA,
    ID_REGEX,
    NO_NUL,
    Baseline,
    IdField,
    SessionEvent,
    Timestamp,
    event_data,
    text,
)
from monitor.edges.api.deps import (
    CurrentUser,
    MonitorDep,
    SessionId,
    StrictRoute,
    actor,
    refused,
    session_row,
)
from monitor.edges.api.openapi import links
from monitor.edges.api.ward import BedFilter
from monitor.usecases import sessions as use
from monitor.usecases.sessions import Admission, EventCommand

router = APIRouter(
    tags=["sessions"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)


class SessionCreate(BaseModel):
    # The example names a bed as clinics name chairs; `make fuzz` keeps such a bed free so
    # the document's own example admits (docs/api.md).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"bed": "chair-1", "patient_label": "A.B.", "age": 42}]},
    )

    bed: IdField
    patient_label: str = text(128)
    # The clinic's identifier (MRN or code): the sessions of one patient_id are that
    # patient's course (docs/course.md); the label is only what the panel shows.
    patient_id: IdField | None = None
    # Strict: a wrong type ("54", 54.0, true) is refused, not silently coerced.
    age: int | None = Field(default=None, ge=0, le=130, strict=True)
    baseline: Baseline | None = None  # type: ignore[valid-type]
    infusion_planned_min: int | None = Field(default=None, ge=5, le=240, strict=True)
    # The clinic protocol's id (GET /api/protocols); absent = the clinic's default_protocol.
    protocol: str | None = Field(default=None, min_length=1, max_length=48, pattern=NO_NUL)
    # When the patient was admitted, if earlier than now (a late entry, or a device that
    # stores and forwards): not before the bed's previous session ended.
    at: Timestamp | None = None


@router.post(
    "/api/sessions",
    status_code=status.HTTP_201_CREATED,
    responses=errors.responses(404, 409),
    openapi_extra=links("create_session"),
)
async def create_session(
    body: SessionCreate, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    cmd = Admission(
        bed=body.bed,
        patient_label=body.patient_label,
        patient_id=body.patient_id,
        age=body.age,
        baseline=body.baseline.model_dump(exclude_unset=True) if body.baseline else None,
        infusion_planned_min=body.infusion_planned_min,
        protocol=body.protocol,
        at=body.at,
    )
    try:
        return await use.admit(monitor, actor(user), cmd)
    except usecases.Refusal as e:
        raise refused(e) from None


@router.get("/api/sessions", openapi_extra=links("list_sessions"))
async def list_sessions(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: BedFilter = None,
    open: bool | None = None,
    patient_label: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    patient_id: Annotated[str | None, Query(max_length=64, pattern=ID_REGEX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    rows = await monitor.store.session_rows(
        bed_id=bed,
        open_only=open,
        patient_label=patient_label,
        patient_id=patient_id,
        limit=limit,
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
    return await monitor.session_json(await session_row(monitor, session_id))


@router.post(
    "/api/sessions/{session_id}/events",
    responses=errors.responses(404, 409),
    openapi_extra=links("add_event"),
)
async def add_event(
    session_id: SessionId, body: SessionEvent, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    cmd = EventCommand(
        type=body.type,
        data=event_data(body),
        at=body.at,
        data_model=EVENT_DATA.get(body.type),
    )
    try:
        return await use.add_event(monitor, actor(user), session_id, cmd)
    except usecases.Refusal as e:
        raise refused(e) from None


@router.get("/api/protocols", tags=["protocols"])
async def list_protocols(monitor: MonitorDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The clinic's protocols (docs/protocols.md), the default one marked."""
    config = monitor.engine.config
    return [
        {**p.public(), "default": pid == config.default_protocol}
        for pid, p in config.protocols.items()
    ]


@router.get("/api/sessions/{session_id}/limits", responses=errors.responses(404))
async def get_limits(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await session_row(monitor, session_id)
    return monitor.limits_json(row)
