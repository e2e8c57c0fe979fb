"""The bed page's protocol side and its plain words, as pure functions of the monitor's data.

What the nurse runs a session by (docs/protocols.md): the protocol's pre-dose checklist, the
administration record, the timed checkpoints with what satisfied each, and the discharge
gate with what blocks it. The monitor computes every status; this module only words and
draws them, with the words of dashboard/words.py. No I/O and no clock reads: ``now`` and the browser's UTC offset are arguments.

Plain words (docs/panel.md): local clock times ("14:06"), signal names with units, whole
numbers where whole numbers are meant, and never a config key or an RFC 3339 stamp on screen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dash import dcc, html

from dashboard.widgets import (
    HIDDEN,
    NO_AUTOCOMPLETE,
    SHOWN,
    attrs,
    dom_id,
    number_field,
    override_reason,
)
from dashboard.words import (
    ANCHOR_WORDS,
    BLOCKED_WORDS,
    CHECKLIST_INCOMPLETE,
    CHECKPOINT_KINDS,
    DEVICE_INTERVAL,
    DIRECTION_WORDS,
    DISCHARGE_BLOCKED,
    EVENT_WORDS,
    LOGIN_EXPIRED,
    NOT_ACCEPTED,
    PHASE_WORDS,
    PRIORITY_WORDS,
    REFUSAL_WORDS,
    REFUSED,
    ROUTE_WORDS,
    STATUS_WORDS,
    UNREACHABLE,
    infusion_text,
    record_text,
)
from monitor.clinical.rules import Status
from monitor.core.model import Direction, Priority, parse_rfc3339

# The protocol panel's countdowns and statuses are redrawn this often (the monitor's own
# overdue alarm does not wait for it: it comes through the feed).
TICK_MS: Final = 10_000

SIGNAL_NAMES: Final[Mapping[str, str]] = {
    "hr": "Heart rate",
    "pr": "Pulse rate",
    "spo2": "SpO\u2082",
    "rr": "Respiratory rate",
    "sbp": "Systolic BP",
    "dbp": "Diastolic BP",
    "map": "Mean BP",
}
SIGNAL_UNITS: Final[Mapping[str, str]] = {
    "hr": "/min",
    "pr": "/min",
    "spo2": "%",
    "rr": "/min",
    "sbp": "mmHg",
    "dbp": "mmHg",
    "map": "mmHg",
}
LIMIT_SIGNALS: Final[tuple[str, ...]] = ("spo2", "hr", "rr", "sbp", "dbp", "map")
# The limits table's columns, outermost first on each side: (direction, priority).
LIMIT_COLUMNS: Final[tuple[tuple[Direction, Priority], ...]] = (
    (Direction.LOW, Priority.HIGH),
    (Direction.LOW, Priority.MEDIUM),
    (Direction.HIGH, Priority.MEDIUM),
    (Direction.HIGH, Priority.HIGH),
)


# --- words ---------------------------------------------------------------------------------


def to_epoch(ts: Any) -> float | None:
    """An RFC 3339 string or epoch seconds as epoch seconds; None for anything else."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    if not isinstance(ts, str):
        return None
    try:
        return parse_rfc3339(ts)
    except ValueError:
        return None


def clock(ts: Any, tz_offset_min: int) -> str:
    """A time as the nurse's wall clock shows it: "14:06" (the browser's offset)."""
    epoch = to_epoch(ts)
    if epoch is None:
        return ""
    dt = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=tz_offset_min)
    return dt.strftime("%H:%M")


def day_and_clock(ts: Any, tz_offset_min: int) -> str:
    """ "25 Nov 14:06": for sessions of other days."""
    epoch = to_epoch(ts)
    if epoch is None:
        return ""
    dt = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=tz_offset_min)
    return f"{dt.day} {dt.strftime('%b %H:%M')}"


def minutes(seconds: float) -> str:
    """A duration in whole minutes, never "0 min" for something still ahead."""
    m = max(1, round(abs(seconds) / 60)) if abs(seconds) >= 30 else 0
    return f"{m} min" if m else "under a minute"


def number(value: Any) -> str:
    """Whole numbers without ".0"; anything else to one decimal."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    return str(int(round(value))) if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def signal_with_unit(signal: str) -> str:
    unit = SIGNAL_UNITS.get(signal, "")
    return f"{SIGNAL_NAMES.get(signal, signal)} ({unit})" if unit else SIGNAL_NAMES.get(signal, "")


def blocked_text(blocked_by: Sequence[Any], eligible_at: Any, tz_offset_min: int) -> str:
    words = []
    for code in blocked_by:
        word = BLOCKED_WORDS.get(str(code), "a discharge criterion is not met")
        if str(code) == "too_soon" and clock(eligible_at, tz_offset_min):
            word += f" (not before {clock(eligible_at, tz_offset_min)})"
        words.append(word)
    return "; ".join(words)


def refusal_text(
    status: int,
    code: str | None,
    info: Mapping[str, Any],
    message: str,
    tz_offset_min: int = 0,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A refusal of the monitor in a sentence a nurse can act on (codes: docs/api.md)."""
    labels = labels or {}
    if status == 0:
        return UNREACHABLE
    if status == 401:
        return LOGIN_EXPIRED
    if code == "checklist_incomplete":
        ids = [str(m) for m in info.get("missing") or []]
        if ids and all(i in labels for i in ids):
            tail = ": still to do: " + ", ".join(labels[i] for i in ids) + "."
        elif ids:
            tail = (
                f": {len(ids)} item{'s' if len(ids) != 1 else ''} still to do (see the checklist)."
            )
        else:
            tail = "."
        return CHECKLIST_INCOMPLETE + tail
    if code in ("predose_bp_missing", "predose_bp_high"):
        return REFUSAL_WORDS[code]
    if code == "discharge_blocked":
        why = blocked_text(info.get("blocked_by") or [], info.get("eligible_at"), tz_offset_min)
        return DISCHARGE_BLOCKED.format(why=why or "criteria not met")
    # Before the codes below, as it always was: a 403 of any code reads as the role's refusal.
    if code == "override_forbidden" or status == 403:
        return REFUSAL_WORDS["override_forbidden"]
    if code == "device_interval":
        when = clock(info.get("next_at"), tz_offset_min)
        return DEVICE_INTERVAL + (f": wait until {when}." if when else ".")
    if code is not None and code in REFUSAL_WORDS:
        return REFUSAL_WORDS[code]
    if status == 422:
        return NOT_ACCEPTED.format(message=message)
    return REFUSED.format(message=message)


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


# --- the protocol panel ------------------------------------------------------------------------


def protocol_panel() -> html.Div:
    """Skeleton of the protocol side; bed_callbacks fills and shows its parts."""
    return html.Div(
        id="protocol-panel",
        className="panel protocol-panel",
        style=HIDDEN,
        children=[
            dcc.Interval(id="protocol-tick", interval=TICK_MS),
            html.H3(id="protocol-title"),
            html.Div(id="protocol-message", className="session-message", role="status"),
            html.Section(
                id="checklist-section",
                className="protocol-part",
                style=HIDDEN,
                children=[
                    html.H4("Pre-dose checklist"),
                    html.Div(id="checklist-items"),
                    html.Button("Save checklist", id="checklist-save", n_clicks=0),
                ],
            ),
            html.Section(
                id="predose-section",
                className="protocol-part",
                style=HIDDEN,
                children=[
                    html.H4("Dosing over a high pre-dose BP"),
                    html.P(
                        "Only with the prescriber's decision, recorded in the audit log.",
                        className="hint",
                    ),
                    html.Label("Prescriber", htmlFor="predose-prescriber"),
                    dcc.Input(id="predose-prescriber", type="text", maxLength=128),
                    html.Label("Reason", htmlFor="predose-reason"),
                    dcc.Input(id="predose-reason", type="text", maxLength=1000),
                    html.Button(
                        "Start dosing with the prescriber's decision",
                        id="predose-submit",
                        n_clicks=0,
                    ),
                ],
            ),
            html.Section(
                id="dose-section",
                className="protocol-part",
                style=HIDDEN,
                children=[
                    html.H4("Administration record"),
                    html.Div(id="dose-what", className="dose-what"),
                    html.Div(
                        id="dose-form",
                        style=HIDDEN,
                        children=[
                            html.Div(
                                id="dose-iv-fields",
                                style=HIDDEN,
                                children=[
                                    *number_field("Dose (mg/kg)", "dose-mgkg", min=0, step=0.05),
                                    *number_field("Total (mg)", "dose-total", min=0, step=0.5),
                                    *number_field("Concentration (mg/mL)", "dose-conc", min=0),
                                    html.Label("Rate", htmlFor="dose-rate"),
                                    dcc.Input(
                                        id="dose-rate", type="text", placeholder="e.g. over 40 min"
                                    ),
                                ],
                            ),
                            html.Label("Lot", htmlFor="dose-lot"),
                            dcc.Input(id="dose-lot", type="text", maxLength=64),
                            override_reason("dose-override-fields", "dose-override"),
                            html.Button("Record dose", id="dose-submit", n_clicks=0),
                        ],
                    ),
                    html.Ul(id="dose-list", className="dose-list"),
                ],
            ),
            html.Section(
                id="checkpoint-section",
                className="protocol-part",
                style=HIDDEN,
                children=[html.H4("Checks"), html.Ul(id="checkpoint-list")],
            ),
            html.Section(
                id="discharge-section",
                className="protocol-part",
                style=HIDDEN,
                children=[
                    html.H4("Discharge"),
                    html.Div(id="discharge-status", role="status"),
                    html.Button(
                        "Ask to discharge (pre-discharge checks)",
                        id="discharge-request",
                        n_clicks=0,
                    ),
                    override_reason("discharge-override-fields", "discharge-reason"),
                    html.Button("Discharge and end the session", id="discharge-submit", n_clicks=0),
                ],
            ),
        ],
    )


def checklist_items(session: Mapping[str, Any], tz_offset_min: int) -> list[Any]:
    """One field per checklist item, by kind, filled with what is already recorded."""
    out: list[Any] = []
    for item in session.get("checklist") or []:
        item_id = str(item.get("id"))
        kind = str(item.get("kind"))
        label = str(item.get("label") or "")
        done = bool(item.get("done"))
        value = item.get("value")
        ident = {"type": "check-item", "item": item_id}
        box_id = f"check-{item_id}"
        field: Any
        if kind == "confirm":
            field = dcc.Checklist(
                id=ident,
                options=[{"label": label, "value": "yes"}],
                value=["yes"] if value is True else [],
                className="check-confirm",
            )
            parts = [field]
        else:
            shown: Any = value
            if kind == "time":
                shown = clock(value, tz_offset_min) or None
            elif kind == "number" and isinstance(value, int | float):
                shown = value
            field = dcc.Input(
                id=ident,
                type="number" if kind == "number" else "text",
                autoComplete=NO_AUTOCOMPLETE if kind == "number" else "off",
                value=shown,
                placeholder="HH:MM" if kind == "time" else None,
                className=f"check-{kind}",
            )
            parts = [html.Label(label, htmlFor=dom_id(ident), className="check-label"), field]
        out.append(
            html.Div(
                [*parts, html.Span("\u2713 done" if done else "to do", className="check-state")],
                id=box_id,
                className="check-item done" if done else "check-item",
                **attrs({"data-kind": kind, "data-done": str(done).lower()}),
            )
        )
    return out


def parse_local_time(text: str, now: float, tz_offset_min: int) -> float:
    """ "07:30" as the latest such wall-clock time at or before ``now`` (epoch seconds):
    a fasting time is always in the past."""
    hours, _, mins = text.strip().partition(":")
    h, m = int(hours), int(mins)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(text)
    local_now = datetime.fromtimestamp(now, tz=UTC) + timedelta(minutes=tz_offset_min)
    local = local_now.replace(hour=h, minute=m, second=0, microsecond=0)
    if local > local_now:
        local -= timedelta(days=1)
    return (local - timedelta(minutes=tz_offset_min)).timestamp()


def checklist_answers(
    kinds: Mapping[str, str], values: Mapping[str, Any], now: float, tz_offset_min: int
) -> tuple[dict[str, Any], list[str]]:
    """The checklist event's data from the form (only what is filled in) and the items whose
    entry cannot be read."""
    from monitor.core.model import to_rfc3339

    data: dict[str, Any] = {}
    bad: list[str] = []
    for item, value in values.items():
        kind = kinds.get(item)
        if kind == "confirm":
            if isinstance(value, list) and "yes" in value:
                data[item] = True
        elif value in (None, ""):
            continue
        elif kind == "number":
            if isinstance(value, int | float) and not isinstance(value, bool):
                data[item] = value
            else:
                bad.append(item)
        elif kind == "time":
            try:
                data[item] = to_rfc3339(parse_local_time(str(value), now, tz_offset_min))
            except ValueError:
                bad.append(item)
        elif kind == "text" and str(value).strip():
            data[item] = str(value).strip()
    return data, bad


def dose_fields(protocol: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
    """What the dose form says it records, and whether the IV fields show."""
    dosing = (protocol or {}).get("dosing")
    if not isinstance(dosing, Mapping):
        return "", HIDDEN
    drug = str(dosing.get("drug") or "")
    route = str(dosing.get("route") or "")
    if route == "intranasal":
        text = (
            f"{drug}, intranasal: one {number(dosing.get('device_mg'))} mg device per entry, "
            f"at least {number(dosing.get('device_interval_min'))} min apart, "
            f"at most {number(dosing.get('max_devices'))} devices"
        )
        return text, HIDDEN
    return f"{drug}, {ROUTE_WORDS.get(route, route)}: mg/kg or total mg (from the weight)", SHOWN


def dose_list(
    session: Mapping[str, Any], protocol: Mapping[str, Any] | None, tz_offset_min: int
) -> list[Any]:
    doses = [e for e in session.get("events") or [] if e.get("type") == "dose"]
    items: list[Any] = [
        html.Li(
            [
                html.Span(clock(e.get("at"), tz_offset_min), className="event-time"),
                " ",
                dose_text(e.get("data") or {}, tz_offset_min),
            ],
            className="dose",
            **attrs({"data-device": str((e.get("data") or {}).get("device") or "")}),
        )
        for e in doses
    ]
    dosing = (protocol or {}).get("dosing") or {}
    if doses and dosing.get("route") == "intranasal":
        last = to_epoch(doses[-1].get("at"))
        gap = dosing.get("device_interval_min")
        if last is not None and isinstance(gap, int | float):
            given = len(doses)
            most = dosing.get("max_devices")
            if isinstance(most, int) and given >= most:
                items.append(html.Li("Every device given.", className="dose-next"))
            else:
                items.append(
                    html.Li(
                        f"Next device not before {clock(last + gap * 60, tz_offset_min)}",
                        className="dose-next",
                        id="dose-next",
                    )
                )
    if not items:
        items.append(html.Li("No dose recorded yet", className="empty"))
    return items


def _satisfied_text(cp: Mapping[str, Any], tz_offset_min: int) -> str:
    by = cp.get("satisfied_by")
    if not isinstance(by, Mapping):
        return ""
    values = by.get("values") if isinstance(by.get("values"), Mapping) else {}
    assert isinstance(values, Mapping)
    if by.get("type") == "reading":
        at = clock(by.get("ts"), tz_offset_min)
        if "sbp" in values and "dbp" in values:
            what = f"cuff {number(values['sbp'])}/{number(values['dbp'])} mmHg"
        else:
            what = "cuff reading"
        return f"{what} at {at}"
    at = clock(by.get("at"), tz_offset_min)
    if "moaas" in values:
        return f"MOAA/S {number(values['moaas'])} at {at}"
    if "cadss6" in values:
        return f"CADSS-6 {number(values['cadss6'])} at {at}"
    return f"observation at {at}"


def checkpoint_items(
    session: Mapping[str, Any],
    protocol: Mapping[str, Any] | None,
    now: float,
    tz_offset_min: int,
) -> list[Any]:
    """Each check with its status in word and colour, its time, and what satisfied it."""
    specs = {
        str(c.get("id")): c
        for c in (protocol or {}).get("checkpoints") or []
        if isinstance(c, dict)
    }
    items: list[Any] = []
    for cp in session.get("checkpoints") or []:
        status = str(cp.get("status"))
        kind = CHECKPOINT_KINDS.get(str(cp.get("kind")), "Check")
        due = to_epoch(cp.get("due_at"))
        spec = specs.get(str(cp.get("checkpoint") or cp.get("id")).split(".")[0], {})
        if due is None:
            anchor = ANCHOR_WORDS.get(str(spec.get("anchor")), "its start")
            offset = spec.get("offset_min")
            when = (
                f"{number(offset)} min after {anchor}"
                if isinstance(offset, int | float) and offset
                else f"when {anchor}"
            )
        else:
            when = f"at {clock(due, tz_offset_min)}"
        detail = ""
        if status == Status.DONE:
            detail = _satisfied_text(cp, tz_offset_min)
            if cp.get("late"):
                detail += " (late)"
        elif status == Status.OVERDUE:
            end = to_epoch(cp.get("window_end"))
            if end is not None:
                detail = f"overdue {minutes(now - end)}: alarm raised"
        elif status == Status.DUE:
            end = to_epoch(cp.get("window_end"))
            if end is not None:
                detail = f"do it before {clock(end, tz_offset_min)}"
        elif due is not None:
            detail = f"in {minutes(due - now)}"
        items.append(
            html.Li(
                [
                    html.Span(STATUS_WORDS.get(status, "Unknown"), className="cp-status"),
                    html.Span(f"{kind} {when}", className="cp-what"),
                    html.Span(detail, className="cp-detail"),
                ],
                id=f"checkpoint-{str(cp.get('id')).replace('.', '-')}",
                className=f"checkpoint cp-{status}",
                **attrs({"data-status": status, "data-kind": str(cp.get("kind"))}),
            )
        )
    if not items:
        items.append(html.Li("No checks in this protocol", className="empty"))
    return items


def discharge_status(session: Mapping[str, Any], tz_offset_min: int) -> html.Div:
    d = session.get("discharge")
    if not isinstance(d, Mapping):
        return html.Div(
            "This protocol sets no discharge criteria.", **attrs({"data-eligible": "true"})
        )
    if d.get("eligible"):
        return html.Div(
            "Discharge criteria met: the patient may leave.",
            className="discharge-ok",
            **attrs({"data-eligible": "true"}),
        )
    why = blocked_text(d.get("blocked_by") or [], d.get("eligible_at"), tz_offset_min)
    return html.Div(
        [html.Strong("Not yet: "), why or "criteria not met"],
        className="discharge-blocked",
        **attrs({"data-eligible": "false"}),
    )
