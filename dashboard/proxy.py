"""The panel's same-origin HTTP proxy to the monitor: the few commands and reads the live JS
sends (acknowledge, audio pause, readings, session status, reports), forwarded with the
logged-in user's token from the HttpOnly login cookie, so the page never holds it and no
CORS is needed (docs/panel.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dashboard.client import MonitorClient, MonitorError
from dashboard.sessions import COOKIE, Sessions, tag

# The relay's kinds and the monitor pages they fetch (the printable REMS form among them).
REPORT_PATH = {
    "html": "report",
    "csv": "report.csv",
    "fhir": "report.fhir.json",
    "rems": "rems.html",
}
READINGS_PARAMS = frozenset({"bed", "since", "until", "limit"})


def add_proxy_routes(server: FastAPI, monitor: MonitorClient, sessions: Sessions) -> None:
    """Same-origin endpoints for the few commands the live JS sends (no CORS needed); the
    login cookie (the user's token) says who, once the monitor confirms it."""

    async def forward(method: str, path: str, request: Request, body: Any = None) -> Response:
        token = request.cookies.get(COOKIE)
        if not token or request.headers.get("x-vigil-session") != tag(token):
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        session = await sessions.get(token)
        if session is None:
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        try:
            resp = await monitor.request(method, path, session.token, json=body)
        except MonitorError as exc:
            if exc.status == 401:
                sessions.drop_token(session.token)
            return JSONResponse({"detail": exc.detail}, status_code=exc.status or 502)
        return Response(
            resp.content,
            status_code=resp.status_code,
            media_type=resp.headers.get("content-type", "application/json"),
        )

    @server.get("/panel/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @server.post("/panel/api/alarms/{alarm_id}/ack", include_in_schema=False)
    async def ack(alarm_id: str, request: Request) -> Response:
        return await forward("POST", f"/api/alarms/{quote(alarm_id, safe='')}/ack", request, {})

    @server.post("/panel/api/beds/{bed}/audio-pause", include_in_schema=False)
    async def audio_pause(bed: str, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        seconds = body.get("seconds") if isinstance(body, dict) else None
        payload = {"seconds": seconds} if isinstance(seconds, int | float) else {}
        return await forward(
            "POST", f"/api/beds/{quote(bed, safe='')}/audio-pause", request, payload
        )

    @server.get("/panel/api/readings", include_in_schema=False)
    async def readings(request: Request) -> Response:
        """A bed's recent readings, for the tiles' mini-trends at page load."""
        params = {k: v for k, v in request.query_params.items() if k in READINGS_PARAMS}
        return await forward("GET", f"/api/readings?{urlencode(params)}", request)

    @server.get("/panel/api/sessions/{session_id}", include_in_schema=False)
    async def session(session_id: int, request: Request) -> Response:
        """A session's protocol status (next check due, discharge) as the monitor computes it."""
        return await forward("GET", f"/api/sessions/{session_id}", request)

    @server.get("/panel/api/sessions/{session_id}/report/{kind}", include_in_schema=False)
    async def report(session_id: int, kind: str, request: Request) -> Response:
        tail = REPORT_PATH.get(kind)
        if tail is None:
            return JSONResponse({"detail": "unknown report kind"}, status_code=404)
        return await forward("GET", f"/api/sessions/{session_id}/{tail}", request)
