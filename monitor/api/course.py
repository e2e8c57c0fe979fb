"""A patient's course across sessions and each esketamine session's REMS monitoring record
(docs/course.md): the edge that gathers the material from the store and hands it to the pure
builders in monitor.course and monitor.rems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, JSONResponse

from monitor import course as course_model
from monitor import rems
from monitor.api import errors
from monitor.api.bodies import ID_REGEX, RemsSign
from monitor.api.deps import CurrentUser, MonitorDep, SessionId, StrictRoute
from monitor.api.errors import ApiError, ErrorCode
from monitor.api.openapi import links
from monitor.db.store import Conflict
from monitor.model import to_rfc3339
from monitor.protocol_model import ProtocolStatus
from monitor.protocols import DEFAULT_SERIES
from monitor.report.fhir_course import course_bundle
from monitor.report.rems_html import rems_html
from monitor.service import Monitor
from monitor.views import ProtocolInputs

router = APIRouter(
    tags=["course"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

PatientId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_REGEX)]


async def session_material(monitor: Monitor, row: dict[str, Any]) -> course_model.SessionMaterial:
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
        rec = await _rems_from(monitor, row, inputs, status, now)
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


async def _row(monitor: Monitor, session_id: int) -> dict[str, Any]:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session")
    return row


async def rems_record(monitor: Monitor, row: dict[str, Any]) -> dict[str, Any]:
    """The session's REMS record from the store, built by monitor.rems (pure)."""
    views = monitor.views
    inputs = await views.protocol_inputs(row, await monitor.store.session_events(row["id"]))
    now = monitor.clock()
    return await _rems_from(monitor, row, inputs, views.protocol_status(inputs, now), now)


async def _rems_from(
    monitor: Monitor,
    row: dict[str, Any],
    inputs: ProtocolInputs,
    status: ProtocolStatus | None,
    now: float,
) -> dict[str, Any]:
    off = await monitor.store.rems_sign_off(row["id"]) or {}
    sign_off = rems.SignOff(**{k: v for k, v in off.items() if k != "session_id"})
    return rems.record(inputs.protocol, row, inputs.events, inputs.readings, status, sign_off, now)


@router.get("/api/sessions/{session_id}/rems", tags=["rems"], responses=errors.responses(404))
async def get_rems(session_id: SessionId, monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    """The session's esketamine REMS monitoring record: ``complete``, ``missing`` and every
    field the form asks for, filled from the session (docs/course.md)."""
    return await rems_record(monitor, await _row(monitor, session_id))


@router.get(
    "/api/sessions/{session_id}/rems.html",
    tags=["rems"],
    response_class=HTMLResponse,
    # An HTML route refuses in JSON: its error entries by reference (monitor/api/errors.py).
    responses=errors.responses(*errors.COMMON, 404, json_route=False),
)
async def get_rems_page(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> HTMLResponse:
    """The REMS monitoring record as a printable page."""
    rec = await rems_record(monitor, await _row(monitor, session_id))
    return HTMLResponse(rems_html(rec, generated_at=str(to_rfc3339(monitor.clock()))))


def _refused(code: rems.SignRefusal, message: str, rec: dict[str, Any]) -> ApiError:
    return ApiError(409, code.value, message, missing=rec["missing"])


@router.post(
    "/api/sessions/{session_id}/rems/sign", tags=["rems"], responses=errors.responses(403, 404, 409)
)
async def sign_rems(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser, body: RemsSign | None = None
) -> dict[str, Any]:
    """Sign the record: a complete one by anyone; an incomplete one only by charge or admin
    with a reason, audited with what was missing."""
    rec = await rems_record(monitor, await _row(monitor, session_id))
    reason = body.reason if body is not None else None
    try:
        refusal, incomplete = rems.sign_refusal(rec, user.role, reason)
    except rems.SignForbidden as e:
        raise ApiError(403, ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
    if refusal is not None:
        raise _refused(refusal, f"the REMS record cannot be signed ({refusal.value})", rec)
    try:
        await monitor.store.sign_rems(
            session_id,
            now=monitor.clock(),
            by=user.name,
            incomplete_reason=reason if incomplete else None,
            missing=rec["missing"],
        )
    except Conflict:
        raise _refused(rems.SignRefusal.ALREADY_SIGNED, "already signed", rec) from None
    return await rems_record(monitor, await _row(monitor, session_id))


@router.post(
    "/api/sessions/{session_id}/rems/filed", tags=["rems"], responses=errors.responses(404, 409)
)
async def mark_rems_filed(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    """Record that a user filed the signed record with the REMS (Vigil does not file it)."""
    rec = await rems_record(monitor, await _row(monitor, session_id))
    refusal = rems.file_refusal(rec)
    if refusal is None and not await monitor.store.file_rems(
        session_id, now=monitor.clock(), by=user.name
    ):
        refusal = rems.SignRefusal.ALREADY_FILED  # filed by someone else meanwhile
    if refusal is not None:
        raise _refused(refusal, f"the REMS record cannot be marked filed ({refusal.value})", rec)
    return await rems_record(monitor, await _row(monitor, session_id))


@router.get("/api/rems", tags=["rems"], openapi_extra=links("rems_pending"))
async def rems_pending(monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    """The ward's REMS records not yet signed or not yet filed, the first due first, each
    with the days left of its filing window (docs/course.md)."""
    config = monitor.engine.config
    needing = [pid for pid, p in config.protocols.items() if p.rems is not None]
    out = []
    for row in await monitor.store.rems_pending_rows(needing):
        rec = await rems_record(monitor, row)
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
