"""The bed page's protocol side, as pure functions of the monitor's data.

What the nurse runs a session by (docs/protocols.md): the protocol's pre-dose checklist, the
administration record, the timed checkpoints with what satisfied each, and the discharge
gate with what blocks it. The monitor computes every status; this module only words and
draws them, in the plain words of dashboard/plain.py and dashboard/words.py (docs/panel.md).
No I/O and no clock reads: ``now`` and the browser's UTC offset are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dash import dcc, html

from dashboard.bedpage import dose_text
from dashboard.plain import blocked_text, clock, minutes, number, to_epoch
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
    CHECKPOINT_KINDS,
    ROUTE_WORDS,
    STATUS_WORDS,
)
from monitor.clinical.protocols import ItemKind, Route
from monitor.clinical.rules import Status

# The protocol panel's countdowns and statuses are redrawn this often (the monitor's own
# overdue alarm does not wait for it: it comes through the feed).
TICK_MS: Final = 10_000


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
        if kind == ItemKind.CONFIRM:
            field = dcc.Checklist(
                id=ident,
                options=[{"label": label, "value": "yes"}],
                value=["yes"] if value is True else [],
                className="check-confirm",
            )
            parts = [field]
        else:
            shown: Any = value
            if kind == ItemKind.TIME:
                shown = clock(value, tz_offset_min) or None
            elif kind == ItemKind.NUMBER and isinstance(value, int | float):
                shown = value
            field = dcc.Input(
                id=ident,
                type="number" if kind == ItemKind.NUMBER else "text",
                autoComplete=NO_AUTOCOMPLETE if kind == ItemKind.NUMBER else "off",
                value=shown,
                placeholder="HH:MM" if kind == ItemKind.TIME else None,
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
        if kind == ItemKind.CONFIRM:
            if isinstance(value, list) and "yes" in value:
                data[item] = True
        elif value in (None, ""):
            continue
        elif kind == ItemKind.NUMBER:
            if isinstance(value, int | float) and not isinstance(value, bool):
                data[item] = value
            else:
                bad.append(item)
        elif kind == ItemKind.TIME:
            try:
                data[item] = to_rfc3339(parse_local_time(str(value), now, tz_offset_min))
            except ValueError:
                bad.append(item)
        elif kind == ItemKind.TEXT and str(value).strip():
            data[item] = str(value).strip()
    return data, bad


def dose_fields(protocol: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
    """What the dose form says it records, and whether the IV fields show."""
    dosing = (protocol or {}).get("dosing")
    if not isinstance(dosing, Mapping):
        return "", HIDDEN
    drug = str(dosing.get("drug") or "")
    route = str(dosing.get("route") or "")
    if route == Route.INTRANASAL:
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
    if doses and dosing.get("route") == Route.INTRANASAL:
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
