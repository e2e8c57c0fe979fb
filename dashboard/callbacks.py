"""The ward's Dash callbacks: the page router, login and logout, the ward's tiles and the
bed page's session commands (admit, phase events, observations). Thin: each asks the monitor
and words its answer; the protocol side and the limits form are dashboard/bed_callbacks.py,
the REMS record dashboard/rems.py. Callbacks are async so a slow monitor never blocks the
event loop."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, ctx, html, no_update

from dashboard import bed_callbacks, course, layout, plain, rems, widgets, words
from dashboard.bedload import load_bed_outputs
from dashboard.client import MonitorClient, MonitorError, event_key
from dashboard.sessions import COOKIE, Session, Sessions, tag

log = logging.getLogger("vigil.panel")


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
    # Refusals in the nurse's words, by the monitor's stable code (dashboard/plain.py).
    return plain.refusal_text(exc.status, exc.code, exc.info, exc.detail)


def _is_https() -> bool:
    """Whether the callback's request came over https (uvicorn has already applied a
    trusted proxy's X-Forwarded-Proto)."""
    return str(ctx.path or "").startswith("https://")


def register(app: Dash, monitor: MonitorClient, sessions: Sessions) -> None:
    """The ward's callbacks on `app`, asking `monitor` as the login of each request."""

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
            return await load_bed_outputs(monitor, token, bed_id, bed_ctx.get("session"), tz_min)
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
