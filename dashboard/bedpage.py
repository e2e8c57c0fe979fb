"""The bed page's session side, as pure functions of the monitor's data: who is in the chair
(the session summary), the session's timeline and the patient's other sessions, and the limits
table (docs/panel.md). The protocol side is dashboard/protocol_panel.py; the words for times,
numbers and refusals dashboard/plain.py, the vocabulary dashboard/words.py. No I/O and no clock
reads: the browser's UTC offset is an argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from dash import dcc, html

from dashboard.plain import (
    SIGNAL_NAMES,
    SIGNAL_UNITS,
    clock,
    day_and_clock,
    number,
    signal_with_unit,
)
from dashboard.widgets import NO_AUTOCOMPLETE, attrs
from dashboard.words import (
    DIRECTION_WORDS,
    EVENT_WORDS,
    PHASE_WORDS,
    PRIORITY_WORDS,
    ROUTE_WORDS,
    infusion_text,
    record_text,
)
from monitor.core.model import Direction, Priority

LIMIT_SIGNALS: Final[tuple[str, ...]] = ("spo2", "hr", "rr", "sbp", "dbp", "map")
# The limits table's columns, outermost first on each side: (direction, priority).
LIMIT_COLUMNS: Final[tuple[tuple[Direction, Priority], ...]] = (
    (Direction.LOW, Priority.HIGH),
    (Direction.LOW, Priority.MEDIUM),
    (Direction.HIGH, Priority.MEDIUM),
    (Direction.HIGH, Priority.HIGH),
)


# --- session summary -------------------------------------------------------------------------


def session_info(session: Mapping[str, Any] | None, bed_id: str, tz_offset_min: int) -> html.Div:
    """Who is in the chair and since when, in plain words."""
    if not session:
        return html.Div([html.H2(f"{bed_id}: no patient")], **attrs({"data-phase": "none"}))
    phase = str(session.get("phase"))
    bits: list[Any] = [
        html.H2(f"{session.get('patient_label')} \u2013 {bed_id}"),
        html.Div(infusion_text(session), id="session-phase", **attrs({"data-phase": phase})),
        html.Div(f"Admitted {clock(session.get('opened_at'), tz_offset_min)}"),
    ]
    problem = session.get("record_problem")
    if problem:
        bits.insert(
            2,
            html.Div(
                record_text(problem),
                id="session-record",
                role="status",
                className="session-record",
                **attrs({"data-record": "attention"}),
            ),
        )
    if session.get("age") is not None:
        bits.append(html.Div(f"Age {number(session.get('age'))}"))
    baseline = session.get("baseline")
    if isinstance(baseline, Mapping) and baseline:
        parts = [
            f"{SIGNAL_NAMES.get(k, k)} {number(v)} {SIGNAL_UNITS.get(k, '')}".strip()
            for k, v in baseline.items()
            if k in SIGNAL_NAMES
        ]
        bits.append(html.Div("Baseline: " + ", ".join(parts), id="session-baseline"))
    if session.get("ended_at"):
        bits.append(html.Div(f"Ended {clock(session.get('ended_at'), tz_offset_min)}"))
    return html.Div(bits, **attrs({"data-phase": phase}))


def describe_event(event: Mapping[str, Any], tz_offset_min: int) -> str:
    kind = str(event.get("type"))
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    label = EVENT_WORDS.get(kind, "Event")
    assert isinstance(data, Mapping)
    if kind == "observation" and data:
        names = {
            "moaas": "MOAA/S",
            "cadss6": "CADSS-6",
            "side_effect": "side effect",
            "medication": "medication",
            "note": "note",
        }
        return "; ".join(f"{names.get(k, 'other')}: {number(v)}" for k, v in data.items())
    if kind == "dose":
        return f"{label}: {dose_text(data, tz_offset_min)}"
    if kind == "checklist":
        return f"{label}: {len(data)} item{'s' if len(data) != 1 else ''} recorded"
    if kind == "infusion_start" and data.get("prescriber"):
        return f"{label} (prescriber {data.get('prescriber')} decided: {data.get('reason')})"
    if kind == "end" and data.get("override_reason"):
        return f"{label} by override: {data.get('override_reason')}"
    return label


def dose_text(data: Mapping[str, Any], tz_offset_min: int = 0) -> str:
    bits = [str(data.get("drug") or "")]
    if data.get("route"):
        bits.append(ROUTE_WORDS.get(str(data["route"]), "other route"))
    total = data.get("total_mg")
    if data.get("device"):
        each = f" ({number(total)} mg)" if total is not None else ""
        bits.append(f"device {number(data['device'])}{each}")
    if data.get("mg_per_kg") is not None:
        bits.append(f"{data['mg_per_kg']:g} mg/kg")
    if total is not None and not data.get("device"):
        bits.append(f"{number(total)} mg")
    if data.get("cumulative_mg") is not None:
        bits.append(f"{number(data['cumulative_mg'])} mg in all")
    if data.get("rate"):
        bits.append(f"rate {data['rate']}")
    if data.get("lot"):
        bits.append(f"lot {data['lot']}")
    if data.get("override_reason"):
        bits.append(f"override: {data['override_reason']}")
    return ", ".join(b for b in bits if b)


def timeline_items(events: Sequence[Mapping[str, Any]], tz_offset_min: int) -> list[html.Li]:
    if not events:
        return [html.Li("No events yet", className="empty")]
    return [
        html.Li(
            id=f"timeline-{e.get('id')}",
            className=f"event event-{e.get('type')}",
            **attrs({"data-type": str(e.get("type"))}),
            children=[
                html.Span(clock(e.get("at"), tz_offset_min), className="event-time"),
                html.Span(describe_event(e, tz_offset_min), className="event-text"),
                html.Span(f"by {e.get('by')}" if e.get("by") else "", className="event-by"),
            ],
        )
        for e in events
    ]


def session_links(
    sessions: Sequence[Mapping[str, Any]], current_id: int | None, tz_offset_min: int
) -> list[html.Li]:
    """Sessions of the same patient, newest first; the one shown is marked."""
    if not sessions:
        return [html.Li("No other sessions", className="empty")]
    items = []
    for s in sorted(sessions, key=lambda s: str(s.get("opened_at") or ""), reverse=True):
        phase = PHASE_WORDS.get(str(s.get("phase")), "")
        label = (
            f"{day_and_clock(s.get('opened_at'), tz_offset_min)} \u2013 {s.get('bed')} ({phase})"
        )
        items.append(
            html.Li(
                dcc.Link(
                    label,
                    href=f"/bed/{s.get('bed')}?session={s.get('id')}",
                    id=f"session-link-{s.get('id')}",
                ),
                className="current" if s.get("id") == current_id else "",
            )
        )
    return items


# --- limits ----------------------------------------------------------------------------------


def limits_table(doc: Any, editable: bool) -> html.Div:
    """The limits in force as a table by signal: low and high thresholds per priority, the
    clinic's bounds for a session's change beside them. Inputs keep the dotted path in their
    id ({"type": "limit", "path": "spo2.low.medium"}) for the save callback, never on screen."""
    limits = doc.get("limits") if isinstance(doc, Mapping) else None
    if not isinstance(limits, Mapping) or not limits:
        return html.Div("No limits reported by the monitor", className="empty")
    bounds = doc.get("override_bounds") if isinstance(doc, Mapping) else None
    bounds = bounds if isinstance(bounds, Mapping) else {}
    head = html.Tr(
        [html.Th("Signal", scope="col")]
        + [
            html.Th(
                [
                    html.Span(DIRECTION_WORDS[direction]),
                    html.Br(),
                    html.Span(PRIORITY_WORDS[p], className=f"prio-word prio-{p.value}"),
                ],
                scope="col",
                className=f"limit-col prio-{p.value}",
            )
            for direction, p in LIMIT_COLUMNS
        ]
        + [html.Th("Clinic allows", scope="col")]
    )
    rows = []
    for signal in [s for s in LIMIT_SIGNALS if s in limits] + sorted(
        s for s in limits if s not in LIMIT_SIGNALS
    ):
        spec = limits[signal]
        if not isinstance(spec, Mapping):
            continue
        bound = bounds.get(signal)
        lo_hi = (
            (float(bound[0]), float(bound[1]))
            if isinstance(bound, Sequence) and len(bound) == 2
            else None
        )
        cells: list[Any] = [
            html.Th(signal_with_unit(signal), scope="row", className="limit-signal")
        ]
        for direction, p in LIMIT_COLUMNS:
            side = spec.get(direction)
            value = side.get(p.value) if isinstance(side, Mapping) else None
            if not isinstance(value, int | float) or isinstance(value, bool):
                cells.append(html.Td("\u2013", className=f"limit-cell prio-{p.value} none"))
                continue
            word = f"{SIGNAL_NAMES.get(signal, signal)}, {direction}, {PRIORITY_WORDS[p].lower()}"
            ident = {"type": "limit", "path": f"{signal}.{direction}.{p.value}"}
            cells.append(
                html.Td(
                    # The label wraps the field: its words are for screen readers, the
                    # column and row headers say the same on screen.
                    html.Label(
                        [
                            html.Span(word, className="sr-only"),
                            dcc.Input(
                                id=ident,
                                type="number",
                                autoComplete=NO_AUTOCOMPLETE,
                                value=value,
                                disabled=not editable or lo_hi is None,
                                debounce=True,
                                min=lo_hi[0] if lo_hi else None,
                                max=lo_hi[1] if lo_hi else None,
                                className="limit-input",
                            ),
                        ]
                    ),
                    className=f"limit-cell prio-{p.value}",
                )
            )
        allowed = (
            f"{number(lo_hi[0])}\u2013{number(lo_hi[1])} {SIGNAL_UNITS.get(signal, '')}"
            if lo_hi
            else "fixed by the clinic"
        )
        cells.append(html.Td(allowed, className="limit-bounds"))
        rows.append(html.Tr(cells, **attrs({"data-signal": signal})))
    return html.Div(
        html.Table([html.Thead(head), html.Tbody(rows)], className="limits", id="limits-grid")
    )


def limits_controls() -> list[Any]:
    """The change reason the save asks for, and the button."""
    return [
        html.Label("Reason for the change", htmlFor="limits-reason"),
        dcc.Input(
            id="limits-reason",
            type="text",
            placeholder="e.g. known low baseline SpO\u2082 (COPD)",
            maxLength=1000,
            className="limits-reason",
        ),
    ]
