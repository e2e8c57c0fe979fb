"""The course page: one page per patient, ``/patient/<patient_id>`` (docs/course.md).

It only displays what the monitor's ``GET /api/patients/{patient_id}`` answers: the sessions
in order as a table (date, protocol, dose, peak BP and HR, lowest SpO2, alarms, checkpoints
missed, PHQ-9 and GAD-7) and as small Plotly plots, each session's report one click away (the
same report buttons as the bed page, which assets/vigil.js opens with the user's login).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, unquote

import plotly.graph_objects as go
from dash import dcc, html

from dashboard.client import MonitorClient, MonitorError
from dashboard.figures import PAPER, PLOT
from dashboard.rems import missing_words

PREFIX: Final = "/patient/"


def patient_from_path(pathname: str | None) -> str | None:
    """The patient id of a course page's path, or None for any other page."""
    if pathname and pathname.startswith(PREFIX):
        patient = unquote(pathname[len(PREFIX) :].strip("/"))
        return patient or None
    return None


def course_href(patient_id: str) -> str:
    """Where a tile or bed page links to a patient's course."""
    return PREFIX + quote(patient_id, safe="")


def course_links(patient_id: Any) -> list[html.Li]:
    """The way from a bed page to the patient's course: one link, none without a patient."""
    if not patient_id:
        return []
    href = course_href(str(patient_id))
    return [html.Li(dcc.Link("The whole course", href=href, id="course-link"), className="course")]


def _data(**attrs: object) -> dict[str, Any]:
    """``data-*`` attributes for a Dash component (typed Any: Dash's stubs list no data-*)."""
    return {f"data-{k}": str(v) for k, v in attrs.items()}


def _values(sessions: Sequence[Mapping[str, Any]], group: str, key: str) -> list[Any]:
    return [(s.get(group) or {}).get(key) for s in sessions]


def _num(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\u2013"
    return f"{value:.{digits}f}"


def _bp(peak: Mapping[str, Any]) -> str:
    if peak.get("sbp") is None and peak.get("dbp") is None:
        return "\u2013"
    return f"{_num(peak.get('sbp'))}/{_num(peak.get('dbp'))}"


def _responder(value: Any) -> str:
    return {True: " (responder)", False: ""}.get(value, "")


def rems_text(rems: Mapping[str, Any] | None) -> str:
    """The REMS record's state in a cell: what it still needs in words, or where sign-off is."""
    if not rems:
        return "\u2013"
    if not rems.get("complete") and not rems.get("signed"):
        return "missing: " + "; ".join(missing_words(rems.get("missing") or []))
    if not rems.get("signed"):
        return "complete, not signed"
    if not rems.get("filed"):
        days = rems.get("days_left")
        return "signed, not filed" + (
            f" ({days:g} days left)" if isinstance(days, int | float) else ""
        )
    return "signed and filed"


def sessions_table(sessions: Sequence[Mapping[str, Any]]) -> html.Table:
    head = html.Thead(
        html.Tr(
            [
                html.Th(h)
                for h in (
                    "#",
                    "Date",
                    "Protocol",
                    "Dose mg",
                    "Peak BP",
                    "Peak HR",
                    "Min SpO\u2082",
                    "Alarms",
                    "Checkpoints missed",
                    "PHQ-9",
                    "GAD-7",
                    "REMS record",
                    "Report",
                )
            ]
        )
    )
    rows = []
    for s in sessions:
        sid = s.get("id")
        scores = s.get("scores") or {}
        peak = s.get("peak") or {}
        planned = s.get("planned")
        rows.append(
            html.Tr(
                [
                    html.Td(f"{s.get('n')} of {planned}" if planned else str(s.get("n"))),
                    html.Td(str(s.get("started_at") or "")[:16].replace("T", " ")),
                    html.Td(str(s.get("protocol") or "\u2013")),
                    html.Td(_num(s.get("dose_mg"), 1)),
                    html.Td(_bp(peak)),
                    html.Td(_num(peak.get("hr"))),
                    html.Td(_num((s.get("min") or {}).get("spo2"))),
                    html.Td(str(s.get("alarms", 0))),
                    html.Td(str(s.get("checkpoints_missed", 0))),
                    html.Td(_num(scores.get("phq9")) + _responder(s.get("responder"))),
                    html.Td(_num(scores.get("gad7"))),
                    html.Td(rems_text(s.get("rems")), className="course-rems"),
                    html.Td(
                        html.Button(
                            "Report",
                            id=f"course-report-{sid}",
                            className="report-button",
                            **_data(session=sid, kind="html"),
                        )
                    ),
                ],
                id=f"course-session-{sid}",
                **_data(session=sid),
            )
        )
    return html.Table([head, html.Tbody(rows)], id="course-table", className="course-table")


def _small(title: str, traces: list[go.Scatter], y_title: str) -> go.Figure:
    fig = go.Figure(traces)
    fig.update_layout(
        # The panel's dark theme, as the bed page's trend: no white boxes on a dark screen.
        template="plotly_dark",
        paper_bgcolor=PAPER,
        plot_bgcolor=PLOT,
        title={"text": title, "font": {"size": 13}},
        height=220,
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
        showlegend=True,
        legend={"orientation": "h", "y": -0.25},
        xaxis={"title": None, "dtick": 1},
        yaxis={"title": y_title},
    )
    return fig


def course_figures(sessions: Sequence[Mapping[str, Any]]) -> list[go.Figure]:
    """Scores, peak BP and HR, and lowest SpO2 by session number."""
    n = [s.get("n") for s in sessions]

    def line(group: str, key: str, name: str) -> go.Scatter:
        return go.Scatter(
            x=n, y=_values(sessions, group, key), name=name, mode="lines+markers", connectgaps=True
        )

    return [
        _small(
            "PHQ-9 and GAD-7",
            [line("scores", "phq9", "PHQ-9"), line("scores", "gad7", "GAD-7")],
            "total",
        ),
        _small(
            "Peak BP and HR",
            [
                line("peak", "sbp", "systolic"),
                line("peak", "dbp", "diastolic"),
                line("peak", "hr", "HR"),
            ],
            "mmHg, /min",
        ),
        _small("Lowest SpO\u2082", [line("min", "spo2", "SpO\u2082")], "%"),
    ]


def course_layout(course: Mapping[str, Any]) -> html.Main:
    sessions = list(course.get("sessions") or [])
    rule = course.get("responder_rule") or {}
    figures = course_figures(sessions)
    # The page's main landmark and its one h1 (axe-core: landmark-one-main, page-has-heading-one).
    return html.Main(
        [
            html.H1(f"Course of {course.get('patient_id')}"),
            html.Div(
                f"{len(sessions)} session(s); responder: PHQ-9 down "
                f"{_num(rule.get('phq9_drop_pct'))} % from the first or under "
                f"{_num(rule.get('phq9_below'))}",
                className="course-summary",
            ),
            sessions_table(sessions),
            html.Div(
                [
                    dcc.Graph(
                        id=f"course-plot-{i}",
                        figure=f,
                        config={"displaylogo": False, "responsive": True, "displayModeBar": False},
                    )
                    for i, f in enumerate(figures)
                ],
                className="course-plots",
            ),
        ],
        id="course-page",
        className="course-page",
        **_data(patient=course.get("patient_id")),
    )


async def course_page(monitor: MonitorClient, token: str, patient_id: str) -> html.Main | html.Div:
    """The page for one patient, or what the monitor said instead."""
    try:
        course = await monitor.get(f"/api/patients/{quote(patient_id, safe='')}", token)
    except MonitorError as exc:
        text = (
            f"No sessions for patient {patient_id!r}"
            if exc.status in (404, 422)
            else f"The monitor refused: {exc.detail}"
        )
        return html.Div(text, className="error", id="page-error")
    return course_layout(course)
