"""A patient's course across sessions and each esketamine session's REMS monitoring record
(docs/course.md): the edge that gathers the material from the store and hands it to the pure
builders in monitor.clinical.course and monitor.clinical.rems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, JSONResponse

from monitor.clinical import course as course_model
from monitor.clinical import rems
from monitor.clinical.protocols import DEFAULT_SERIES
from monitor.core.errors import ErrorCode
from monitor.core.model import to_rfc3339
from monitor.edges.api import errors
from monitor.edges.api.bodies import ID_REGEX, RemsSign
from monitor.edges.api.deps import CurrentUser, MonitorDep, SessionId, StrictRoute
from monitor.edges.api.errors import ApiError
from monitor.edges.api.openapi import links
from monitor.pipeline.service import Monitor
from monitor.records.report.fhir_course import course_bundle
from monitor.records.report.rems_html import rems_html
from monitor.records.store import SessionRow
from monitor.usecases import rems as rems_cases

router = APIRouter(
    tags=["course"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

PatientId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_REGEX)]


async def session_material(monitor: Monitor, row: SessionRow) -> course_model.SessionMaterial:
    """One session's part of the course, from the store and the protocol model."""
    views = monitor.views
    events = await monitor.store.session_events(row["id"])
    inputs = await views.protocol_inputs(row, events)
    protocol = inputs.protocol
    now = monitor.clock()
    status = views.protocol_status(inputs, now)
    extra: dict[str, Any] = {}
    if protocol is not None and protocol.rems is not None:
        # The events and readings just loaded, not a second load of the same session.
        rec = await rems_cases.record_from(monitor, row, inputs, status, now)
        extra["rems"] = {k: rec[k] for k in ("complete", "missing", "signed", "filed", "days_left")}
    return course_model.SessionMaterial(
        row=row,
        events=events,
        extremes=await monitor.store.session_extremes(row["id"]),
        alarms=await monitor.store.alarms(session_id=row["id"], limit=100_000),
        protocol_status=status,
        series=protocol.series if protocol is not None else DEFAULT_SERIES,
        extra=extra,
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


@router.get("/api/patients/{patient_id}/fhir.json", responses=errors.responses(404))
async def get_patient_fhir(
    patient_id: PatientId, monitor: MonitorDep, user: CurrentUser
) -> JSONResponse:
    """The course as a FHIR R4 Bundle: the Patient (identifier only), an Encounter per
    session, and PHQ-9 and GAD-7 Observations with their item answers."""
    rows = await monitor.store.course_rows(patient_id)
    if not rows:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no sessions for that patient")
    sessions = [await monitor.session_json(r) for r in rows]
    return JSONResponse(course_bundle(patient_id, sessions), media_type="application/fhir+json")


# --- the esketamine REMS monitoring record -------------------------------------------------


async def _row(monitor: Monitor, session_id: int) -> SessionRow:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session")
    return row


@router.get("/api/sessions/{session_id}/rems", tags=["rems"], responses=errors.responses(404))
async def get_rems(session_id: SessionId, monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    """The session's esketamine REMS monitoring record: ``complete``, ``missing`` and every
    field the form asks for, filled from the session (docs/course.md)."""
    return await rems_cases.record(monitor, await _row(monitor, session_id))


@router.get(
    "/api/sessions/{session_id}/rems.html",
    tags=["rems"],
    response_class=HTMLResponse,
    # An HTML route refuses in JSON: its error entries by reference (monitor/edges/api/errors.py).
    responses=errors.responses(*errors.COMMON, 404, json_route=False),
)
async def get_rems_page(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> HTMLResponse:
    """The REMS monitoring record as a printable page."""
    rec = await rems_cases.record(monitor, await _row(monitor, session_id))
    return HTMLResponse(rems_html(rec, generated_at=str(to_rfc3339(monitor.clock()))))


def _refused(refused: rems_cases.Refused) -> ApiError:
    return ApiError(409, refused.code.value, str(refused), missing=refused.record["missing"])


@router.post(
    "/api/sessions/{session_id}/rems/sign", tags=["rems"], responses=errors.responses(403, 404, 409)
)
async def sign_rems(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser, body: RemsSign | None = None
) -> dict[str, Any]:
    """Sign the record: a complete one by anyone; an incomplete one only by charge or admin
    with a reason, audited with what was missing. Once: a repeat is 409 rems_signed."""
    try:
        return await rems_cases.sign(
            monitor,
            session_id,
            user=user.name,
            role=user.role,
            reason=body.reason if body is not None else None,
        )
    except rems_cases.NoSuchSession:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session") from None
    except rems.SignForbidden as e:
        raise ApiError(403, ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
    except rems_cases.Refused as e:
        raise _refused(e) from None


@router.post(
    "/api/sessions/{session_id}/rems/filed", tags=["rems"], responses=errors.responses(404, 409)
)
async def mark_rems_filed(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    """Record that a user filed the signed record with the REMS (Vigil does not file it).
    Once: a repeat is 409 rems_filed."""
    try:
        return await rems_cases.mark_filed(monitor, session_id, user=user.name)
    except rems_cases.NoSuchSession:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session") from None
    except rems_cases.Refused as e:
        raise _refused(e) from None


@router.get("/api/rems", tags=["rems"], openapi_extra=links("rems_pending"))
async def rems_pending(monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    """The ward's REMS records not yet signed or not yet filed, the first due first, each
    with the days left of its filing window (docs/course.md)."""
    config = monitor.engine.config
    needing = [pid for pid, p in config.protocols.items() if p.rems is not None]
    out = []
    for row in await monitor.store.rems_pending_rows(needing):
        rec = await rems_cases.record(monitor, row)
        if rems.pending(rec):
            out.append(
                {
                    key: rec[key]
                    for key in (
                        "session_id",
                        "patient_id",
                        "patient_label",
                        "protocol",
                        "complete",
                        "missing",
                        "signed",
                        "filed",
                        "due_at",
                        "days_left",
                    )
                }
                | {"bed": row["bed_id"], "ended_at": to_rfc3339(row["ended_at"])}
            )
    out.sort(key=lambda r: (r["days_left"] is None, r["days_left"] or 0.0))
    return {"records": out}
