"""Session reports: printable HTML, CSV of every reading, FHIR R4 Bundle."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from monitor.core.errors import ErrorCode
from monitor.edges.api import errors
from monitor.edges.api.deps import CurrentUser, MonitorDep, SessionId, StrictRoute
from monitor.edges.api.errors import ApiError
from monitor.pipeline.service import Monitor
from monitor.records.report import report_csv, report_fhir, report_html
from monitor.records.report.fhir_course import with_course

router = APIRouter(
    tags=["reports"],
    route_class=StrictRoute,
    responses=errors.responses(*errors.COMMON, 404, json_route=False),
)

# An 8-hour session at 1 Hz plus cuff readings is about 30,000 rows; leave headroom.
MAX_REPORT_READINGS = 500_000


async def _material(monitor: Monitor, session_id: int) -> tuple[dict[str, Any], list[Any]]:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session")
    session = await monitor.session_json(row)
    readings = await monitor.store.readings(session_id=session_id, limit=MAX_REPORT_READINGS)
    return session, readings


@router.get("/api/sessions/{session_id}/report", response_class=HTMLResponse)
async def report(session_id: SessionId, monitor: MonitorDep, user: CurrentUser) -> HTMLResponse:
    session, readings = await _material(monitor, session_id)
    alarms = await monitor.store.alarms(session_id=session_id, limit=100_000)
    audit = await monitor.store.audit_entries(session_id=session_id, limit=100_000)
    html = report_html(
        session,
        readings,
        alarms,
        audit,
        generated_at=monitor.clock(),
        bed_label=session["bed"],
        protocol=monitor.engine.config.protocols.get(session.get("protocol") or ""),
    )
    return HTMLResponse(html)


@router.get("/api/sessions/{session_id}/report.csv", response_class=PlainTextResponse)
async def report_as_csv(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> PlainTextResponse:
    session, readings = await _material(monitor, session_id)
    return PlainTextResponse(
        report_csv(session, readings),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="session-{session_id}.csv"'},
    )


@router.get("/api/sessions/{session_id}/report.fhir.json")
async def report_as_fhir(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> JSONResponse:
    session, readings = await _material(monitor, session_id)
    bundle = report_fhir(session, readings, bed_label=session["bed"])
    return JSONResponse(
        with_course(bundle, session),  # the patient's identifier and questionnaires
        media_type="application/fhir+json",
    )
