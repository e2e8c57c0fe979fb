"""The panel's Dash app on FastAPI: page rendering and thin command callbacks.

Everything shown comes from the monitor at the moment it is asked for; the panel keeps no
data of its own. Live values do not pass through here: the browser opens the monitor's feed
itself (assets/vigil.js). Callbacks are async so a slow monitor never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import websockets
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from websockets.exceptions import InvalidHandshake

from dashboard import bed_callbacks, bedpage, course, figures, layout, rems, widgets, words
from dashboard.client import MonitorClient, MonitorError, event_key
from dashboard.constants import constants_json
from dashboard.security import SecurityHeaders
from dashboard.sessions import COOKIE, Session, Sessions, tag
from dashboard.settings import PanelSettings
from dashboard.widgets import HIDDEN, SHOWN
from monitor.alarms.config import load_config
from monitor.core.model import Phase, to_rfc3339

log = logging.getLogger("vigil.panel")
ASSETS = Path(__file__).parent / "assets"
RECENT_WINDOW_S = 30 * 60
# The relay's kinds and the monitor pages they fetch (the printable REMS form among them).
REPORT_PATH = {
    "html": "report",
    "csv": "report.csv",
    "fhir": "report.fhir.json",
    "rems": "rems.html",
}
READINGS_PARAMS = frozenset({"bed", "since", "until", "limit"})


def _bed_from_path(pathname: str | None) -> str | None:
    if pathname and pathname.startswith("/bed/"):
        bed = pathname[len("/bed/") :].strip("/")
        return bed or None
    return None


def _session_param(search: str | None) -> int | None:
    values = parse_qs((search or "").lstrip("?")).get("session")
    if values and values[0].isdigit():
        return int(values[0])
    return None


def _error_text(exc: MonitorError) -> str:
    # Refusals in the nurse's words, by the monitor's stable code (dashboard/bedpage.py).
    return bedpage.refusal_text(exc.status, exc.code, exc.info, exc.detail)


def create_app(settings: PanelSettings | None = None) -> Dash:
    settings = settings or PanelSettings()
    monitor = MonitorClient(settings.monitor_url, settings.request_timeout_s)
    sessions = Sessions(monitor)
    constants = constants_json(load_config(settings.clinic_config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await monitor.aclose()

    server = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    _add_proxy_routes(server, monitor, sessions)
    _add_feed_relay(server, settings, sessions)

    app = Dash(
        __name__,
        # Dash's stubs name Flask only; it serves from any ASGI/WSGI server object it is given.
        server=server,  # type: ignore[arg-type]
        title="Vigil \u2013 ward",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # None: no "Updating..." title
        serve_locally=True,
    )
    # The page's language, for screen readers (and axe's html-has-lang rule).
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    app.layout = html.Div(
        id="root",
        children=[
            dcc.Location(id="url"),
            # Who is logged in (name and role, for the page); never the token, which only
            # the HttpOnly cookie holds (dashboard/sessions.py).
            dcc.Store(id="auth", storage_type="session"),
            dcc.Store(id="tz", data=0),
            dcc.Store(id="ctx-sink"),
            # What the browser's renderer needs, once (dashboard/constants.py).
            html.Div(
                id="vigil-config",
                hidden=True,
                **widgets.attrs({"data-feed-path": FEED_PATH, "data-constants": constants}),
            ),
            html.Div(id="page"),
        ],
    )
    _register_callbacks(app, monitor, sessions)
    # Hashed lazily, at the first request: by then every inline script Dash writes is known.
    server.add_middleware(SecurityHeaders, script_hashes=app.csp_hashes)
    # Dash's FastAPI backend runs this setup (asset scan, script tags) on the first request
    # to "/" or a /_dash- route only: a first visit straight to /bed/X after a restart would
    # get a page without vigil.js, i.e. without live data. Do it now instead.
    app._setup_server()
    return app


def _add_proxy_routes(server: FastAPI, monitor: MonitorClient, sessions: Sessions) -> None:
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


def _register_callbacks(app: Dash, monitor: MonitorClient, sessions: Sessions) -> None:
    async def _session(auth: Any) -> Session | None:
        """The login this tab made: the cookie's, if its tag is the tab's and the monitor
        still knows the token (dashboard/sessions.py)."""
        token = ctx.cookies.get(COOKIE)
        if not isinstance(auth, dict) or not token or auth.get("session") != tag(token):
            return None
        return await sessions.get(token)

    async def _token(auth: Any) -> str | None:
        """The logged-in user's monitor token, from the request's login cookie."""
        session = await _session(auth)
        return session.token if session else None

    # Hands the token and page to the feed client, and reports the browser's UTC offset so
    # the server draws trend times the way the browser appends them.
    app.clientside_callback(
        """
        function(auth, pathname) {
            if (window.vigil) { window.vigil.setContext(auth, pathname); }
            return -new Date().getTimezoneOffset();
        }
        """,
        Output("tz", "data"),
        Input("auth", "data"),
        Input("url", "pathname"),
    )

    # The painter draws a tile once its empty container is in the page (a new page, or the
    # ward reloaded for a new bed): told so here, not by watching the whole DOM.
    app.clientside_callback(
        """
        function(children) {
            if (window.vigil) { window.vigil.containersChanged(); }
            return null;
        }
        """,
        Output("ctx-sink", "data"),
        Input("page", "children"),
    )
    app.clientside_callback(
        """
        function(children) {
            if (window.vigil) { window.vigil.containersChanged(); }
            return window.dash_clientside.no_update;
        }
        """,
        Output("ctx-sink", "data", allow_duplicate=True),
        Input("ward", "children"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("page", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("auth", "data"),
    )
    async def render_page(pathname: str | None, search: str | None, auth: Any) -> Any:
        session = await _session(auth)
        if session is None:
            # vigil.js sets {"ended": true} when the monitor closed the feed for the login.
            ended = isinstance(auth, dict) and auth.get("ended")
            return layout.login_layout("Your login has ended: log in again." if ended else None)
        token = session.token
        head = layout.header(session.username, session.role)
        now = time.time()
        try:
            beds = await monitor.get("/api/beds", token)
        except MonitorError as exc:
            if exc.status == 401:
                sessions.drop_token(token)
                return layout.login_layout(_error_text(exc))
            return html.Div([head, html.Div(_error_text(exc), className="error", id="page-error")])
        patient_id = course.patient_from_path(pathname)
        if patient_id is not None:
            return html.Div([head, await course.course_page(monitor, token, patient_id)])
        if pathname == rems.PATH:
            return html.Div([head, rems.ward_page()])
        bed_id = _bed_from_path(pathname)
        if bed_id is None:
            return html.Div([head, layout.overview_layout(beds)])
        bed = next((b for b in beds if str(b.get("id")) == bed_id), None)
        if bed is None:
            return html.Div([head, layout.not_found_layout(f"No bed {bed_id!r} on this monitor")])
        return html.Div([head, layout.bed_page_layout(bed, now, _session_param(search))])

    @app.callback(
        Output("auth", "data"),
        Output("login-error", "children"),
        Input("login-submit", "n_clicks"),
        Input("login-password", "n_submit"),
        State("login-username", "value"),
        State("login-password", "value"),
        prevent_initial_call=True,
    )
    async def login(n: Any, submitted: Any, username: str | None, password: str | None) -> Any:
        if not n and not submitted:
            # Dash also calls this when the login form is (re)inserted: not a login attempt.
            return no_update, no_update
        if not username or not password:
            return no_update, "Enter your username and password."
        try:
            # The browser's address, for the monitor's per-address limit and audit log.
            body = await monitor.login(username, password, client_addr=ctx.remote or None)
        except MonitorError as exc:
            if exc.status in (400, 401, 403):
                return no_update, "Wrong username or password."
            if exc.status == 429:
                return no_update, "Too many attempts: wait a minute."
            return no_update, _error_text(exc)
        role = body.get("role")
        if role is None:
            try:
                role = (await monitor.get("/api/me", body["access_token"])).get("role")
            except MonitorError:
                role = None
        name = str(body.get("username") or username)
        ttl = body.get("expires_in")
        ttl_s = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else 12 * 3600.0
        token = str(body["access_token"])
        sessions.remember(Session(token, name, role, time.time() + ttl_s))
        ctx.response.set_cookie(
            COOKIE,
            token,
            max_age=int(ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            # Secure whenever the page is https (behind the TLS proxy); a plain-http demo
            # on loopback could not send a Secure cookie back.
            secure=_is_https(),
        )
        return {"username": name, "role": role, "session": tag(token)}, ""

    @app.callback(
        Output("auth", "data", allow_duplicate=True),
        Input("logout", "n_clicks"),
        State("auth", "data"),
        prevent_initial_call=True,
    )
    async def logout(n: int | None, auth: Any) -> Any:
        if not n:
            return no_update
        token = ctx.cookies.get(COOKIE)
        # Only this tab's own login: a cookie that now holds another tab's stays. Not
        # asked about first: a logout is carried out even while the monitor cannot say who.
        if isinstance(auth, dict) and token and auth.get("session") == tag(token):
            sessions.drop_token(token)
            ctx.response.set_cookie(
                COOKIE, "", max_age=0, path="/", httponly=True, samesite="strict"
            )
            # Revoked at the monitor, not just forgotten here: the token is refused
            # everywhere, on every panel, from now on and the feed it opened is closed.
            try:
                await monitor.logout(token)
            except MonitorError as exc:
                # The cookie is gone anyway; the monitor lets the token expire.
                log.warning("logout: the monitor did not revoke the token (%s)", exc.status)
        return None

    @app.callback(
        Output("ward", "children"),
        Input("beds-version", "data"),
        State("auth", "data"),
        prevent_initial_call=True,
    )
    async def reload_ward(_version: Any, auth: Any) -> Any:
        token = await _token(auth)
        if not token:
            return no_update
        try:
            beds = await monitor.get("/api/beds", token)
        except MonitorError:
            return no_update
        return layout.ward_tiles(beds)

    ev_outputs = [Output(f"ev-{t}", "style") for t in words.EVENT_TYPES]

    @app.callback(
        Output("session-info", "children"),
        Output("admit-form", "style"),
        *ev_outputs,
        Output("obs-form", "style"),
        Output("trend", "figure"),
        Output("trend-wrap", "className"),
        Output("timeline", "children"),
        Output("earlier-sessions", "children"),
        Output("report-links", "children"),
        Output("limits-table", "children"),
        Output("limits-panel", "style"),
        Output("bed-session", "data"),
        Input("bed-ctx", "data"),
        Input("bed-refresh", "data"),
        State("auth", "data"),
        State("tz", "data"),
    )
    async def load_bed(bed_ctx: Any, _refresh: Any, auth: Any, tz: Any) -> Any:
        token = await _token(auth)
        if not token or not isinstance(bed_ctx, dict):
            return [no_update] * (len(ev_outputs) + 13)
        bed_id = str(bed_ctx["bed"])
        tz_min = int(tz) if isinstance(tz, int | float) else 0
        try:
            return await _load_bed(monitor, token, bed_id, bed_ctx.get("session"), tz_min)
        except MonitorError as exc:
            out: list[Any] = [html.Div(_error_text(exc), className="error")]
            return out + [no_update] * (len(ev_outputs) + 12)

    @app.callback(
        Output("session-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Input("admit-submit", "n_clicks"),
        State("admit-label", "value"),
        State("admit-patient-id", "value"),
        State("admit-age", "value"),
        State("admit-baseline-hr", "value"),
        State("admit-baseline-sbp", "value"),
        State("admit-protocol", "value"),
        State("bed-ctx", "data"),
        State("auth", "data"),
        prevent_initial_call=True,
    )
    async def admit(
        n: int | None,
        label: Any,
        patient_id: Any,
        age: Any,
        hr: Any,
        sbp: Any,
        protocol: Any,
        bed_ctx: Any,
        auth: Any,
    ) -> Any:
        token = await _token(auth)
        if not n or not token or not isinstance(bed_ctx, dict):
            return no_update, no_update
        if not label or not str(label).strip():
            return widgets.message("Enter a patient label.", error=True), no_update
        body: dict[str, Any] = {"bed": bed_ctx["bed"], "patient_label": str(label).strip()}
        if patient_id and str(patient_id).strip():
            body["patient_id"] = str(patient_id).strip()
        if age not in (None, ""):
            body["age"] = int(age)
        baseline = {k: float(v) for k, v in (("hr", hr), ("sbp", sbp)) if v not in (None, "")}
        if baseline:
            body["baseline"] = baseline
        if protocol:
            body["protocol"] = str(protocol)
        try:
            session = await monitor.post("/api/sessions", token, body)
        except MonitorError as exc:
            return widgets.message(_error_text(exc), error=True), no_update
        return widgets.message(f"Admitted {session.get('patient_label')}."), time.time()

    @app.callback(
        Output("session-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        *[Input(f"ev-{t}", "n_clicks") for t in words.EVENT_TYPES],
        State("bed-session", "data"),
        State("auth", "data"),
        prevent_initial_call=True,
    )
    async def phase_event(*args: Any) -> Any:
        bed_session, auth = args[-2], args[-1]
        token = await _token(auth)
        trigger = ctx.triggered_id
        if not token or not isinstance(trigger, str) or not isinstance(bed_session, dict):
            return no_update, no_update
        clicks = (
            args[words.EVENT_TYPES.index(trigger[3:])] if trigger[3:] in words.EVENT_TYPES else 0
        )
        if not clicks or not bed_session.get("id"):
            return no_update, no_update
        kind = trigger[3:]
        try:
            body = {"type": kind}
            await monitor.post(
                f"/api/sessions/{bed_session['id']}/events",
                token,
                body,
                idempotency_key=event_key(bed_session, body),
            )
        except MonitorError as exc:
            return widgets.message(_error_text(exc), error=True), time.time()
        return widgets.message(f"{words.EVENT_LABELS[kind]}: recorded."), time.time()

    @app.callback(
        Output("session-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Output("obs-moaas", "value"),
        Output("obs-cadss6", "value"),
        Output("obs-side-effect", "value"),
        Output("obs-medication", "value"),
        Output("obs-note", "value"),
        Input("obs-submit", "n_clicks"),
        State("obs-moaas", "value"),
        State("obs-cadss6", "value"),
        State("obs-side-effect", "value"),
        State("obs-medication", "value"),
        State("obs-note", "value"),
        State("bed-session", "data"),
        State("auth", "data"),
        prevent_initial_call=True,
    )
    async def observe(
        n: int | None,
        moaas: Any,
        cadss6: Any,
        side_effect: Any,
        medication: Any,
        note: Any,
        bed_session: Any,
        auth: Any,
    ) -> Any:
        keep = [no_update] * 5
        token = await _token(auth)
        if not n or not token or not isinstance(bed_session, dict) or not bed_session.get("id"):
            return no_update, no_update, *keep
        try:
            data = layout.observation_data(moaas, cadss6, side_effect, medication, note)
        except (TypeError, ValueError):
            return widgets.message("Scores must be whole numbers.", error=True), no_update, *keep
        if not data:
            return (
                widgets.message("Nothing to record: fill in at least one field.", error=True),
                no_update,
                *keep,
            )
        try:
            body = {"type": "observation", "data": data}
            await monitor.post(
                f"/api/sessions/{bed_session['id']}/events",
                token,
                body,
                idempotency_key=event_key(bed_session, body),
            )
        except MonitorError as exc:
            return widgets.message(_error_text(exc), error=True), no_update, *keep
        return widgets.message("Observation recorded."), time.time(), None, None, None, "", ""

    # The protocol side of the bed page and the limits form (dashboard/bed_callbacks.py).
    bed_callbacks.register(app, monitor, _session)
    # The REMS record's bed-page section and the /rems ward page (dashboard/rems.py).
    rems.register(app, monitor, _session)


async def _load_bed(
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
        readings = await _all_readings(monitor, token, bed_id, since, until)
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
        readings = await _all_readings(monitor, token, bed_id, since, None)

    now = time.time()
    if session:
        opened = bedpage.to_epoch(session.get("opened_at"))
        span = (opened, bedpage.to_epoch(session.get("ended_at")) or now) if opened else None
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


async def _all_readings(
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


FEED_PATH = "/panel/feed"


def _is_https() -> bool:
    """Whether the callback's request came over https (uvicorn has already applied a
    trusted proxy's X-Forwarded-Proto)."""
    return str(ctx.path or "").startswith("https://")


def _add_feed_relay(server: FastAPI, settings: PanelSettings, sessions: Sessions) -> None:
    """``/panel/feed``: the browser's live feed, relayed from the monitor's with the session's
    token, so the token never reaches the page. Messages pass through as they are; the panel
    adds no buffer of its own (a browser that does not keep up stops the relay reading, and
    the monitor drops it as it would drop a slow panel)."""

    @server.websocket(FEED_PATH)
    async def feed_relay(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin and urlsplit(origin).netloc != ws.headers.get("host"):
            # Another site's page opening our feed with the user's cookie (SameSite=Strict
            # already stops that in browsers; this stops it in the rest).
            await ws.close(code=1008, reason="cross-origin feed refused")
            return
        cookie = ws.cookies.get(COOKIE)
        session = None
        if cookie and ws.query_params.get("session") == tag(cookie):
            session = await sessions.get(cookie)  # else: the cookie is another tab's login
        await ws.accept()
        if session is None:
            await ws.close(code=1008, reason="not logged in")
            return
        code, reason = 1013, "monitor unreachable"
        try:
            async with websockets.connect(
                settings.monitor_feed_url,
                additional_headers={"Authorization": f"Bearer {session.token}"},
                open_timeout=settings.request_timeout_s,
                max_size=None,  # the monitor's hello holds every bed; it is trusted
            ) as upstream:
                code, reason = await _relay(ws, upstream)
        except (OSError, TimeoutError, InvalidHandshake):
            log.info("feed relay: monitor unreachable")
        if code == 1008:
            sessions.drop_token(session.token)
        if code in (1005, 1006) or not 1000 <= code <= 4999:
            code, reason = 1013, "connection to the monitor lost"
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=reason[:120])


async def _relay(ws: WebSocket, upstream: Any) -> tuple[int, str]:
    """Monitor -> browser until either side goes; the monitor's close code and reason."""

    async def down() -> None:
        async for message in upstream:
            await ws.send_text(message if isinstance(message, str) else message.decode())

    async def browser_gone() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the browser sends nothing the monitor needs

    tasks = [asyncio.create_task(down()), asyncio.create_task(browser_gone())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
    if tasks[1] in done:
        return 1000, "browser left"
    return upstream.close_code or 1006, upstream.close_reason or ""
