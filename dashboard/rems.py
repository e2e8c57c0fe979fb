"""The esketamine REMS monitoring record on the panel (docs/course.md "REMS record").

Two places show it: a section of the bed page for a session whose protocol needs the record
(complete or what is still missing, who signed and filed it and when, the printable form, Sign
and Mark filed), and the ward page ``/rems`` listing the records not yet signed or not yet
filed with the days left of their filing window. The monitor builds the record and decides
every refusal (``GET /api/sessions/{id}/rems``, ``…/rems/sign``, ``…/rems/filed``,
``GET /api/rems``); this module only words and draws its answers and sends the two commands.
The views are pure functions (``now`` and the browser's UTC offset are arguments); the
callbacks at the bottom are the thin I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import plain
from dashboard.client import MonitorClient, MonitorError
from dashboard.sessions import Session
from dashboard.widgets import (
    HIDDEN,
    OVERRIDE_ROLES,
    SHOWN,
    attrs,
    message,
    override_reason,
    tz_offset,
)
from dashboard.words import REFUSAL_WORDS, REMS_INCOMPLETE, REMS_SIGN_FORBIDDEN
from monitor.core.errors import ErrorCode

PATH: Final = "/rems"
WARD_REFRESH_MS: Final = 60_000
Who = Callable[[Any], Awaitable[Session | None]]

# The monitor's ``missing`` codes (docs/course.md) in the nurse's words, with where to record
# each: the panel never shows a code.
MISSING_WORDS: Final[Mapping[str, str]] = {
    "dose": "the dose (record each device given)",
    "lot": "the lot number of the devices",
    "bp.predose": "a cuff blood pressure before dosing",
    "bp.40min": "the cuff blood pressure at about 40 minutes, taken on time",
    "bp.predischarge": "the cuff blood pressure before discharge, taken on time",
    "monitoring_end": "the end of monitoring (the session is still open)",
    "ready_to_leave": "when the patient was ready to leave (Ask to discharge)",
    "sedation": "sedation: yes or no",
    "dissociation": "dissociation: yes or no",
    "respiratory_depression": "respiratory depression: yes or no",
    "serious_adverse_event": "serious adverse event: yes or no",
}
MEDICATION_WORDS: Final[Mapping[str, str]] = {
    "benzodiazepines": "benzodiazepines",
    "non_benzodiazepine_sedative_hypnotics": "non-benzodiazepine sedative-hypnotics",
    "psychostimulants": "psychostimulants",
    "maois": "MAOIs",
}


def missing_word(code: str) -> str:
    """One ``missing`` code in plain words."""
    if code.startswith("medications."):
        cls = code.split(".", 1)[1]
        name = MEDICATION_WORDS.get(cls, cls.replace("_", " "))
        return f"concomitant {name}: yes or no (pre-dose checklist)"
    return MISSING_WORDS.get(code, "a field of the form")


def missing_words(codes: Sequence[Any]) -> list[str]:
    return [missing_word(str(c)) for c in codes]


def days_text(days_left: Any) -> str:
    """The filing window in words; whole days are rounded down, so it never promises more."""
    if not isinstance(days_left, int | float) or isinstance(days_left, bool):
        return "due 7 days after the session ends"
    if days_left < 0:
        late = max(1, math.floor(-days_left))
        return f"overdue by {late} day{'s' if late != 1 else ''}"
    if days_left < 1:
        return "due today: less than a day left"
    left = math.floor(days_left)
    return f"{left} day{'s' if left != 1 else ''} left"


def overdue(days_left: Any) -> bool:
    return isinstance(days_left, int | float) and not isinstance(days_left, bool) and days_left < 0


def refusal_text(exc: MonitorError, tz_offset_min: int = 0) -> str:
    """A refusal of a REMS command in a sentence (codes: docs/course.md)."""
    if exc.code == ErrorCode.REMS_INCOMPLETE:
        what = "; ".join(missing_words(exc.info.get("missing") or []))
        return REMS_INCOMPLETE.format(what=what or "some fields")
    if exc.status == 403:
        return REMS_SIGN_FORBIDDEN
    if exc.code in REFUSAL_WORDS:
        return REFUSAL_WORDS[str(exc.code)]
    return plain.refusal_text(exc.status, exc.code, exc.info, exc.detail, tz_offset_min)


def _when(ts: Any, tz_offset_min: int) -> str:
    return plain.day_and_clock(ts, tz_offset_min)


def record_state(rec: Mapping[str, Any]) -> str:
    """incomplete, complete, signed or filed: the record's place in sign-off (a test hook)."""
    if rec.get("filed"):
        return "filed"
    if rec.get("signed"):
        return "signed"
    return "complete" if rec.get("complete") else "incomplete"


def status_text(rec: Mapping[str, Any]) -> str:
    state = record_state(rec)
    if state == "filed":
        return "Signed and marked filed with the REMS."
    if state == "signed":
        return "Signed; not yet marked filed with the REMS."
    if state == "complete":
        return "Complete: every field is recorded, ready to sign."
    n = len(rec.get("missing") or [])
    return f"Incomplete: {n} field{'s' if n != 1 else ''} still missing."


def signoff_lines(rec: Mapping[str, Any], tz_offset_min: int) -> list[html.Li]:
    """Who signed and filed it and when, and how long is left to file."""
    lines: list[html.Li] = []
    signed = rec.get("signed")
    if isinstance(signed, Mapping):
        text = f"Signed by {signed.get('by')} on {_when(signed.get('at'), tz_offset_min)}"
        if signed.get("incomplete_reason"):
            text += f", incomplete, because: {signed['incomplete_reason']}"
        lines.append(html.Li(text + ".", id="rems-signed"))
    else:
        lines.append(html.Li("Not signed yet.", id="rems-signed"))
    filed = rec.get("filed")
    if isinstance(filed, Mapping):
        text = f"Marked filed by {filed.get('by')} on {_when(filed.get('at'), tz_offset_min)}."
        lines.append(html.Li(text, id="rems-filed-by"))
    else:
        due = _when(rec.get("due_at"), tz_offset_min)
        days = rec.get("days_left")
        text = "Not marked filed yet: " + days_text(days) + (f" (due {due})" if due else "") + "."
        lines.append(
            html.Li(
                text,
                id="rems-filed-by",
                className="rems-overdue" if overdue(days) else "",
            )
        )
    return lines


def print_button(session_id: Any) -> html.Button:
    """The printable form, opened by assets/vigil.js through the panel's report relay."""
    return html.Button(
        "Print REMS form",
        id="rems-print",
        className="report-button",
        **attrs({"data-session": str(session_id), "data-kind": "rems"}),
    )


def section() -> html.Section:
    """The bed page's skeleton; the render callback fills and shows it for a REMS session."""
    return html.Section(
        id="rems-section",
        className="panel rems-section",
        style=HIDDEN,
        **attrs({"aria-labelledby": "rems-title"}),
        children=[
            dcc.Store(id="rems-refresh", data=0),
            dcc.Store(id="rems-data"),
            html.H3("REMS monitoring record", id="rems-title"),
            html.Div(id="rems-status", className="rems-status"),
            html.Ul(id="rems-missing", className="rems-missing"),
            html.Ul(id="rems-signoff", className="rems-signoff"),
            html.Div(id="rems-print-wrap", className="report-links"),
            override_reason(
                "rems-reason-fields",
                "rems-reason",
                "Reason to sign it incomplete (charge nurse or admin)",
            ),
            html.Button("Sign", id="rems-sign", n_clicks=0, style=HIDDEN),
            html.Button("Mark filed", id="rems-filed", n_clicks=0, style=HIDDEN),
            html.Div(id="rems-message", className="session-message", role="status"),
        ],
    )


def section_view(rec: Mapping[str, Any], role: str | None, tz_offset_min: int) -> list[Any]:
    """The section's parts for a record, in the order of ``SECTION_OUTPUTS``."""
    state = record_state(rec)
    missing = missing_words(rec.get("missing") or []) if state == "incomplete" else []
    unsigned = state in ("incomplete", "complete")
    return [
        SHOWN,
        html.Div(status_text(rec), **attrs({"data-state": state})),
        [html.Li(w, className="rems-missing-item") for w in missing],
        signoff_lines(rec, tz_offset_min),
        print_button(rec.get("session_id")),
        SHOWN if state == "incomplete" and role in OVERRIDE_ROLES else HIDDEN,
        SHOWN if unsigned else HIDDEN,
        SHOWN if state == "signed" else HIDDEN,
        {"session": rec.get("session_id")},
    ]


SECTION_OUTPUTS: Final[tuple[tuple[str, str], ...]] = (
    ("rems-section", "style"),
    ("rems-status", "children"),
    ("rems-missing", "children"),
    ("rems-signoff", "children"),
    ("rems-print-wrap", "children"),
    ("rems-reason-fields", "style"),
    ("rems-sign", "style"),
    ("rems-filed", "style"),
    ("rems-data", "data"),
)
NO_SECTION: Final[list[Any]] = [HIDDEN, "", [], [], [], HIDDEN, HIDDEN, HIDDEN, None]


# --- the ward page -------------------------------------------------------------------------


def ward_page() -> html.Main:
    """``/rems``'s skeleton; the callback fills it with the browser's clock offset."""
    return html.Main(
        id="rems-page",
        className="rems-page",
        children=[
            html.H1("REMS monitoring records to sign or file"),
            html.P(
                "Every esketamine session's REMS Patient Monitoring Form is due 7 days after "
                "the session. Vigil does not file it: mark it filed once you have.",
                className="hint",
            ),
            dcc.Store(id="rems-ward-ctx", data=0),
            # Days left count down while the page stays open.
            dcc.Interval(id="rems-ward-tick", interval=WARD_REFRESH_MS),
            html.Div(id="rems-ward"),
        ],
    )


def ward_rows(records: Sequence[Mapping[str, Any]], tz_offset_min: int) -> Any:
    """The monitor's ``GET /api/rems`` as a table, the first due first (its order)."""
    if not records:
        return html.P("Every REMS record is signed and marked filed.", id="rems-empty")
    head = html.Thead(
        html.Tr(
            [
                html.Th(h, scope="col")
                for h in ("Bed", "Patient", "Session", "To do", "Filing", "Still missing", "")
            ]
        )
    )
    rows = []
    for r in records:
        sid = r.get("session_id")
        bed = str(r.get("bed") or "")
        ended = _when(r.get("ended_at"), tz_offset_min)
        days = r.get("days_left")
        late = overdue(days)
        todo = "sign" if not r.get("signed") else "mark filed"
        missing = missing_words(r.get("missing") or []) if not r.get("signed") else []
        rows.append(
            html.Tr(
                [
                    html.Td(bed),
                    html.Td(str(r.get("patient_label") or "")),
                    html.Td(f"ended {ended}" if ended else "still open"),
                    html.Td(todo.capitalize()),
                    html.Td(
                        days_text(days).capitalize(),
                        className="rems-overdue" if late else "rems-days",
                    ),
                    html.Td("; ".join(missing) if missing else "nothing"),
                    html.Td(
                        dcc.Link(
                            f"Open {bed}",
                            href=f"/bed/{bed}?session={sid}",
                            id=f"rems-open-{sid}",
                        )
                    ),
                ],
                id=f"rems-row-{sid}",
                **attrs({"data-session": str(sid), "data-overdue": str(late).lower()}),
            )
        )
    return html.Table([head, html.Tbody(rows)], id="rems-table", className="rems-table")


# --- callbacks -----------------------------------------------------------------------------


def register(app: Dash, monitor: MonitorClient, who: Who) -> None:
    """The REMS section's and the ward page's callbacks; ``who`` finds the tab's login."""

    @app.callback(
        *[Output(i, p) for i, p in SECTION_OUTPUTS],
        Input("bed-session", "data"),
        Input("rems-refresh", "data"),
        State("auth", "data"),
        State("tz", "data"),
    )
    async def render_section(bed_session: Any, _refresh: Any, auth: Any, tz: Any) -> Any:
        login = await who(auth)
        if login is None:
            return [no_update] * len(SECTION_OUTPUTS)
        sid = bed_session.get("id") if isinstance(bed_session, dict) else None
        if not sid:
            return NO_SECTION
        try:
            rec = await monitor.get(f"/api/sessions/{sid}/rems", login.token)
        except MonitorError:
            return NO_SECTION
        if not rec.get("required"):
            return NO_SECTION
        return section_view(rec, login.role, tz_offset(tz))

    async def command(auth: Any, data: Any, tz: Any, path: str, body: Any, done: str) -> Any:
        login = await who(auth)
        sid = data.get("session") if isinstance(data, dict) else None
        if login is None or not sid:
            return no_update, no_update
        try:
            await monitor.post(f"/api/sessions/{sid}/rems/{path}", login.token, body)
        except MonitorError as exc:
            return message(refusal_text(exc, tz_offset(tz)), error=True), time.time()
        return message(done), time.time()

    @app.callback(
        Output("rems-message", "children", allow_duplicate=True),
        Output("rems-refresh", "data", allow_duplicate=True),
        Input("rems-sign", "n_clicks"),
        State("rems-reason", "value"),
        State("rems-data", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def sign(n: Any, reason: Any, data: Any, auth: Any, tz: Any) -> Any:
        if not n:
            return no_update, no_update
        text = str(reason or "").strip()
        body = {"reason": text} if text else {}
        return await command(auth, data, tz, "sign", body, "REMS record signed.")

    @app.callback(
        Output("rems-message", "children", allow_duplicate=True),
        Output("rems-refresh", "data", allow_duplicate=True),
        Input("rems-filed", "n_clicks"),
        State("rems-data", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def mark_filed(n: Any, data: Any, auth: Any, tz: Any) -> Any:
        if not n:
            return no_update, no_update
        return await command(auth, data, tz, "filed", {}, "REMS record marked filed.")

    @app.callback(
        Output("rems-ward", "children"),
        Input("rems-ward-ctx", "data"),
        Input("rems-ward-tick", "n_intervals"),
        Input("tz", "data"),
        State("auth", "data"),
    )
    async def ward(_ctx: Any, _tick: Any, tz: Any, auth: Any) -> Any:
        login = await who(auth)
        if login is None:
            return no_update
        try:
            answer = await monitor.get("/api/rems", login.token)
        except MonitorError as exc:
            return html.Div(refusal_text(exc, tz_offset(tz)), className="error", id="page-error")
        return ward_rows(answer.get("records") or [], tz_offset(tz))
