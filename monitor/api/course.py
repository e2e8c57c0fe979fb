"""A patient's course across sessions (docs/course.md): the edge that gathers each session's
material from the store and hands it to the pure builder in monitor.course."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from monitor import course as course_model
from monitor.api import errors
from monitor.api.bodies import ID_REGEX
from monitor.api.deps import CurrentUser, MonitorDep, StrictRoute
from monitor.api.errors import ApiError, ErrorCode
from monitor.protocols import DEFAULT_SERIES
from monitor.service import Monitor

router = APIRouter(
    tags=["course"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

PatientId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_REGEX)]


async def session_material(monitor: Monitor, row: dict[str, Any]) -> course_model.SessionMaterial:
    """One session's part of the course, from the store and the protocol model."""
    views = monitor.views
    events = await monitor.store.session_events(row["id"])
    protocol = views.protocol_of(row)
    status = views.protocol_status(await views.protocol_inputs(row, events), monitor.clock())
    return course_model.SessionMaterial(
        row=row,
        events=events,
        extremes=await monitor.store.session_extremes(row["id"]),
        alarms=await monitor.store.alarms(session_id=row["id"], limit=100_000),
        protocol_status=status,
        series=protocol.series if protocol is not None else DEFAULT_SERIES,
    )


@router.get("/api/patients/{patient_id}", responses=errors.responses(404))
async def get_patient(
    patient_id: PatientId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    """The patient's sessions, oldest first, each with its number in the course, protocol,
    scores, peaks, lowest SpO2 and count of high and medium physiological alarms."""
    rows = await monitor.store.course_rows(patient_id)
    if not rows:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no sessions for that patient")
    material = [await session_material(monitor, r) for r in rows]
    return course_model.course(patient_id, material, monitor.engine.config.course.responder)
