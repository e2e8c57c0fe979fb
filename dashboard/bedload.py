"""The bed page's data, fetched from the monitor when the page (or its refresh) asks: the
session in the chair or the one asked for, its readings, alarms, limits and the patient's
other sessions, turned into the bed page's outputs (dashboard/callbacks.py `load_bed`)."""

from __future__ import annotations

import time
from typing import Any

from dashboard import bedpage, course, figures, layout, plain, words
from dashboard.client import MonitorClient, MonitorError
from dashboard.widgets import HIDDEN, SHOWN
from monitor.core.model import Phase, to_rfc3339

RECENT_WINDOW_S = 30 * 60


async def load_bed_outputs(
    monitor: MonitorClient, token: str, bed_id: str, session_id: Any, tz_min: int
) -> list[Any]:
    session: dict[str, Any] | None = None
    if isinstance(session_id, int):
        session = await monitor.get(f"/api/sessions/{session_id}", token)
        if session and str(session.get("bed")) != bed_id:
            session = None
    if session is None:
        open_sessions = (await monitor.get("/api/sessions", token, bed=bed_id, open="true")).get(
            "sessions"
        ) or []
        session = open_sessions[0] if open_sessions else None
    is_open = (
        session is not None and session.get("phase") != Phase.ENDED and not session.get("ended_at")
    )
    allowed = layout.allowed_events(session) if is_open else set()

    readings: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    limits: Any = None
    earlier: list[dict[str, Any]] = []
    if session:
        since = session.get("opened_at")
        until = session.get("ended_at")
        readings = await all_readings(monitor, token, bed_id, since, until)
        alarms = [
            a
            for a in (await monitor.get("/api/alarms", token, bed=bed_id, since=since)).get(
                "alarms"
            )
            or []
            if until is None or str(a.get("started_at") or "") <= str(until)
        ]
        try:
            limits = await monitor.get(f"/api/sessions/{session['id']}/limits", token)
        except MonitorError:
            limits = None
        # The patient's course is the sessions of one patient_id, never of one label
        # (docs/course.md): two patients may share a label.
        patient_id = session.get("patient_id")
        earlier = (
            (await monitor.get("/api/sessions", token, patient_id=patient_id)).get("sessions") or []
            if patient_id
            else [session]
        )
    else:
        earlier = (await monitor.get("/api/sessions", token, bed=bed_id)).get("sessions") or []
        # No patient in the chair: still show the chair's last half hour (device checks).
        since = to_rfc3339(time.time() - RECENT_WINDOW_S)
        readings = await all_readings(monitor, token, bed_id, since, None)

    now = time.time()
    if session:
        opened = plain.to_epoch(session.get("opened_at"))
        span = (opened, plain.to_epoch(session.get("ended_at")) or now) if opened else None
    else:
        span = (now - RECENT_WINDOW_S, now)
    fig = figures.trend_figure(
        readings,
        alarms=alarms,
        session=session,
        limits=limits,
        tz_offset_min=tz_min,
        live=is_open,
        x_span=span,
    )
    ev_styles = [SHOWN if t in allowed else HIDDEN for t in words.EVENT_TYPES]
    return [
        bedpage.session_info(session, bed_id, tz_min),
        HIDDEN if is_open else SHOWN,
        *ev_styles,
        SHOWN if is_open else HIDDEN,
        fig,
        "trend-wrap live" if (is_open or session is None) else "trend-wrap",
        bedpage.timeline_items((session or {}).get("events") or [], tz_min),
        bedpage.session_links(earlier, (session or {}).get("id"), tz_min)
        + course.course_links((session or {}).get("patient_id")),
        layout.report_links((session or {}).get("id")),
        bedpage.limits_table(limits, editable=is_open),
        SHOWN if session else HIDDEN,
        {
            "id": (session or {}).get("id"),
            "phase": (session or {}).get("phase"),
            # The session's version: the panel's commands are keyed by it (client.event_key).
            "version": (session or {}).get("version"),
            "open": is_open,
            "limits": limits,
        },
    ]


async def all_readings(
    monitor: MonitorClient, token: str, bed: str, since: Any, until: Any, cap: int = 50_000
) -> list[dict[str, Any]]:
    """Page through /api/readings (the monitor answers at most `limit` per call)."""
    out: list[dict[str, Any]] = []
    cursor = since
    seen: set[tuple[Any, Any]] = set()
    while len(out) < cap:
        page = await monitor.get(
            "/api/readings", token, bed=bed, since=cursor, until=until, limit=5000
        )
        rows = page.get("readings") or []
        fresh = [r for r in rows if (r.get("device_id"), r.get("seq")) not in seen]
        if not fresh:
            break
        for r in fresh:
            seen.add((r.get("device_id"), r.get("seq")))
        out.extend(fresh)
        cursor = page.get("next_since") or rows[-1].get("ts")
        if not page.get("next_since") and len(rows) < 5000:
            break
    return out
