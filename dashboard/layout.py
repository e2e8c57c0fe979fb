"""Pages and tiles as pure functions of the monitor's data (no I/O, no clock reads).

Element ids are a public test hook (docs/panel.md lists them). vigil.js repaints the same
elements live from the feed, so the two must agree on ids, classes and data attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from dash import dcc, html

from dashboard import bedpage
from monitor.model import PRIORITY_RANK, parse_rfc3339

# Beyond these ages a value is shown greyed with its age, never as if current.
STALE_AFTER_S: Final[Mapping[str, float]] = {
    "hr": 10.0,
    "pr": 10.0,
    "spo2": 10.0,
    "rr": 10.0,
    "sbp": 15 * 60.0,
    "dbp": 15 * 60.0,
    "map": 15 * 60.0,
}
YEAR_S: Final = 365.25 * 86400
TILE_SIGNALS: Final[tuple[str, ...]] = ("hr", "spo2", "rr", "bp")
SIGNAL_LABELS: Final[Mapping[str, str]] = {
    "hr": "HR",
    "spo2": "SpO\u2082",
    "rr": "RR",
    "bp": "NIBP",
}
SIGNAL_UNITS: Final[Mapping[str, str]] = {"hr": "/min", "spo2": "%", "rr": "/min", "bp": "mmHg"}
# Which tile element an alarm on a value key colours.
ALARM_SIGNAL_TO_TILE: Final[Mapping[str, str]] = {
    "hr": "hr",
    "spo2": "spo2",
    "rr": "rr",
    "sbp": "bp",
    "dbp": "bp",
    "map": "bp",
}
EVENT_TYPES: Final[tuple[str, ...]] = (
    "infusion_start",
    "infusion_pause",
    "infusion_resume",
    "infusion_stop",
    "end",
)
EVENT_LABELS: Final[Mapping[str, str]] = {
    "infusion_start": "Start infusion",
    "infusion_pause": "Pause infusion",
    "infusion_resume": "Resume infusion",
    "infusion_stop": "Stop infusion",
    "end": "End session",
    "observation": "Observation",
}
SIDE_EFFECTS: Final[tuple[str, ...]] = (
    "nausea",
    "vomiting",
    "headache",
    "dizziness",
    "anxiety",
    "dissociation distress",
    "hypertension",
    "hypersalivation",
    "blurred vision",
)
MOAAS_LABELS: Final[Mapping[int, str]] = {
    5: "5 \u2013 responds readily to name",
    4: "4 \u2013 lethargic response to name",
    3: "3 \u2013 responds only after name loudly/repeatedly",
    2: "2 \u2013 responds only after mild prodding/shaking",
    1: "1 \u2013 responds only after trapezius squeeze",
    0: "0 \u2013 no response to painful stimulus",
}


# --- formatting ---------------------------------------------------------------------------


def fmt_clock(seconds: float | None) -> str:
    """23:41 below an hour, 1:02:03 above; what a nurse reads off an infusion pump."""
    if seconds is None:
        return "--:--"
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def fmt_age(age_s: float | None) -> str:
    if age_s is None:
        return ""
    a = max(0.0, age_s)
    if a < 60:
        return f"{int(a)} s"
    if a < 3600:
        return f"{int(a // 60)} min"
    if a < 86400:
        return f"{int(a // 3600)} h {int(a % 3600 // 60)} min"
    # Another day or year reads as old at a glance (same rule as vigil.js's fmtAge).
    if a < YEAR_S:
        return f"{int(a // 86400)} d"
    return f"{int(a // YEAR_S)} y"


def fmt_value(value: float | None) -> str:
    if value is None:
        return "--"
    return str(int(round(value)))


def entry_age(entry: Mapping[str, Any] | None, now: float) -> float | None:
    """Age of a latest-value entry at `now`, from its measurement time (`ts`)."""
    if not entry:
        return None
    ts = entry.get("ts")
    if isinstance(ts, str):
        try:
            return max(0.0, now - parse_rfc3339(ts))
        except ValueError:
            pass
    age = entry.get("age_s")
    return float(age) if isinstance(age, int | float) else None


def is_stale(signal: str, age_s: float | None) -> bool:
    """A value with no measurement time, or older than its signal's threshold, is stale."""
    if age_s is None:
        return True
    return age_s > STALE_AFTER_S.get(signal, 10.0)


def infusion_text(session: Mapping[str, Any] | None) -> str:
    """'Infusion 23:41 / 40:00' (the JS ticks it every second from the same fields)."""
    if not session:
        return "No patient"
    phase = str(session.get("phase") or "")
    if phase == "baseline":
        return "Baseline"
    if phase == "recovery":
        return f"Recovery (infused {fmt_clock(session.get('infusion_elapsed_s'))})"
    if phase == "ended":
        return "Session ended"
    if phase == "infusion":
        elapsed = fmt_clock(session.get("infusion_elapsed_s"))
        planned = session.get("infusion_planned_s")
        text = f"Infusion {elapsed}"
        if planned:
            text += f" / {fmt_clock(planned)}"
        if not session.get("infusion_running", True):
            text += " (paused)"
        return text
    return phase.capitalize() or "No patient"


# --- alarms -------------------------------------------------------------------------------


def alarm_is_active(alarm: Mapping[str, Any]) -> bool:
    return alarm.get("state") != "ended" and not alarm.get("ended_at")


def alarm_sort_key(alarm: Mapping[str, Any]) -> tuple[int, int, int, int, str]:
    """Most urgent first: priority, then unacknowledged, escalated, physiological, oldest."""
    return (
        -PRIORITY_RANK.get(str(alarm.get("priority")), 0),
        1 if alarm.get("acknowledged_at") else 0,
        0 if alarm.get("escalated") else 1,
        0 if alarm.get("kind") == "physiological" else 1,
        str(alarm.get("started_at") or ""),
    )


def sort_alarms(alarms: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted((a for a in alarms if alarm_is_active(a)), key=alarm_sort_key)


def bed_alarm_state(alarms: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The data attributes a tile carries for its alarms."""
    active = sort_alarms(alarms)
    if not active:
        return {"alarm": "none", "kind": "none", "technical": "false", "ack": "false"}
    top = active[0]
    return {
        "alarm": str(top.get("priority")),
        "kind": str(top.get("kind")),
        "technical": "true" if any(a.get("kind") == "technical" for a in active) else "false",
        "ack": "true" if all(a.get("acknowledged_at") for a in active) else "false",
    }


def signal_alarm_levels(alarms: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Highest active physiological priority per tile element (hr, spo2, rr, bp)."""
    levels: dict[str, str] = {}
    for a in sort_alarms(alarms):
        if a.get("kind") != "physiological":
            continue
        key = ALARM_SIGNAL_TO_TILE.get(str(a.get("signal")))
        if key and key not in levels:
            levels[key] = str(a.get("priority"))
    return levels


def silent_devices(bed: Mapping[str, Any]) -> list[str]:
    """Devices the monitor has raised a no-data technical alarm for."""
    out = []
    for a in sort_alarms(bed.get("alarms") or []):
        if a.get("kind") == "technical" and a.get("signal") == "device":
            out.append(str(a.get("device_id") or "device"))
    return out


def alarm_text(alarm: Mapping[str, Any]) -> str:
    cond = alarm.get("condition") or alarm.get("signal") or "alarm"
    value = alarm.get("value")
    if alarm.get("kind") == "technical" and alarm.get("signal") == "device":
        return f"NO DATA from {alarm.get('device_id') or 'device'}"
    return f"{cond} ({fmt_value(value)})" if isinstance(value, int | float) else str(cond)


# --- tiles --------------------------------------------------------------------------------


def pulse_text(entry: Mapping[str, Any] | None) -> str:
    """The pulse rate as "PR 62"; nothing when none was measured."""
    if entry is None:
        return ""
    return f"PR {fmt_value(entry.get('value'))}"


def pulse_stale(entry: Mapping[str, Any] | None, now: float) -> bool:
    """A pulse rate from a cuff is as current as its cuff reading (15 min); else 10 s."""
    if entry is None:
        return False
    return is_stale("sbp" if entry.get("source") == "nibp" else "pr", entry_age(entry, now))


def _vital(bed_id: str, key: str, bed: Mapping[str, Any], now: float, level: str) -> html.Div:
    latest = bed.get("latest") or {}
    if key == "bp":
        sbp, dbp, mp = latest.get("sbp"), latest.get("dbp"), latest.get("map")
        anchor = sbp or mp or dbp
        age = entry_age(anchor, now)
        if anchor is None:
            value = "--/--"
        else:
            value = f"{fmt_value((sbp or {}).get('value'))}/{fmt_value((dbp or {}).get('value'))}"
            if mp is not None:
                value += f" ({fmt_value(mp.get('value'))})"
        stale = is_stale("sbp", age)
    else:
        entry = latest.get(key)
        age = entry_age(entry, now)
        value = fmt_value((entry or {}).get("value"))
        stale = is_stale(key, age)
    extra: list[Any] = []
    if key == "hr":
        # The pulse rate, small beside the ECG heart rate, as central stations show it.
        extra.append(
            html.Span(
                pulse_text(latest.get("pr")),
                id=f"tile-{bed_id}-pr-value",
                className="vital-pr",
                title="pulse rate (oximeter or cuff)",
                **{"data-stale": "true" if pulse_stale(latest.get("pr"), now) else "false"},
            )
        )
    return html.Div(
        id=f"tile-{bed_id}-{key}",
        className=f"vital vital-{key}",
        **{
            "data-stale": "true" if stale else "false",
            "data-alarm": level,
            "data-signal": key,
        },
        children=[
            html.Span(SIGNAL_LABELS[key], className="vital-label"),
            html.Span(value, id=f"tile-{bed_id}-{key}-value", className="vital-value"),
            html.Span(SIGNAL_UNITS[key], className="vital-unit"),
            *extra,
            html.Span(
                fmt_age(age) if (stale or key == "bp") and age is not None else "",
                id=f"tile-{bed_id}-{key}-age",
                className="vital-age",
            ),
        ],
    )


def tile(
    bed: Mapping[str, Any], now: float, *, feed_up: bool = False, big: bool = False
) -> html.Div:
    """One bed at a glance. Starts as feed 'down' until the browser's feed says hello."""
    bed_id = str(bed["id"])
    session = bed.get("session")
    state = bed_alarm_state(bed.get("alarms") or [])
    levels = signal_alarm_levels(bed.get("alarms") or [])
    silent = silent_devices(bed)
    active = sort_alarms(bed.get("alarms") or [])
    if silent:
        status = "NO DATA \u2013 device silent: " + ", ".join(silent)
    elif active:
        status = alarm_text(active[0])
    elif not bed.get("devices"):
        status = "No device assigned"
    else:
        status = ""
    return html.Div(
        id=f"tile-{bed_id}",
        className="tile tile-big" if big else "tile",
        **{
            "data-bed": bed_id,
            "data-alarm": state["alarm"],
            "data-alarm-kind": state["kind"],
            "data-technical": state["technical"],
            "data-ack": state["ack"],
            "data-feed": "up" if feed_up else "down",
            "data-device": "silent" if silent else "ok",
            "data-phase": str((session or {}).get("phase") or "none"),
        },
        children=[
            html.Div(
                className="tile-head",
                children=[
                    dcc.Link(
                        bed.get("label") or bed_id,
                        href=f"/bed/{bed_id}",
                        id=f"tile-{bed_id}-name",
                        className="tile-name",
                    ),
                    html.Span(
                        (session or {}).get("patient_label") or "",
                        id=f"tile-{bed_id}-patient",
                        className="tile-patient",
                    ),
                ],
            ),
            html.Div(infusion_text(session), id=f"tile-{bed_id}-phase", className="tile-phase"),
            html.Div(
                className="tile-vitals",
                children=[_vital(bed_id, k, bed, now, levels.get(k, "none")) for k in TILE_SIGNALS],
            ),
            html.Div(status, id=f"tile-{bed_id}-status", className="tile-status"),
            html.Div(
                "CONNECTION LOST \u2013 values not live",
                id=f"tile-{bed_id}-lost",
                className="tile-lost",
            ),
        ],
    )


# --- pages --------------------------------------------------------------------------------


def header(username: str | None, role: str | None) -> html.Div:
    return html.Div(
        id="header",
        className="header",
        children=[
            dcc.Link("Vigil \u2013 ward", href="/", className="brand", id="nav-ward"),
            html.Div(
                "Connecting to the monitor\u2026",
                id="feed-status",
                className="feed-status",
                **{"data-feed": "down"},
            ),
            html.Button(
                "Sound OFF \u2013 click to enable",
                id="sound-toggle",
                className="sound-toggle",
                **{"data-sound": "off"},
            ),
            html.Span(f"{username or ''} ({role or ''})", id="whoami", className="whoami"),
            html.Button("Log out", id="logout", className="logout", n_clicks=0),
        ],
    )


DISCLAIMER: Final = (
    "Secondary display only: the bedside monitor stays the primary alarm. "
    "Not a certified medical device."
)


def login_layout(error: str | None = None) -> html.Div:
    return html.Div(
        id="login-page",
        className="login-page",
        children=[
            html.H1("Vigil"),
            html.P(DISCLAIMER, className="disclaimer"),
            html.Div(
                id="login-form",
                className="login-form",
                children=[
                    html.Label("Username", htmlFor="login-username"),
                    dcc.Input(id="login-username", type="text", autoComplete="username"),
                    html.Label("Password", htmlFor="login-password"),
                    dcc.Input(
                        id="login-password", type="password", autoComplete="current-password"
                    ),
                    html.Button("Log in", id="login-submit", n_clicks=0),
                ],
            ),
            html.Div(error or "", id="login-error", className="error"),
        ],
    )


def overview_layout(beds: Sequence[Mapping[str, Any]], now: float) -> html.Div:
    return html.Div(
        id="overview",
        className="overview",
        children=[
            html.Div(id="alarm-list", className="alarm-list"),
            html.Div(id="ward", className="ward", children=ward_tiles(beds, now)),
            dcc.Store(id="beds-version", data=0),
        ],
    )


def ward_tiles(beds: Sequence[Mapping[str, Any]], now: float) -> list[Any]:
    if not beds:
        return [
            html.Div(
                "No beds yet: register a device with `python -m monitor add-device`.",
                className="empty",
            )
        ]
    return [tile(b, now) for b in sorted(beds, key=lambda b: _natural_key(str(b["id"])))]


def _natural_key(text: str) -> list[Any]:
    """bed-2 before bed-10."""
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def not_found_layout(message: str) -> html.Div:
    return html.Div(
        id="not-found",
        className="not-found",
        children=[html.H2(message), dcc.Link("Back to the ward", href="/")],
    )


def bed_page_layout(bed: Mapping[str, Any], now: float, session_id: int | None) -> html.Div:
    """Skeleton of the bed page; load_bed fills the parts that change with the session."""
    bed_id = str(bed["id"])
    return html.Div(
        id="bed-page",
        className="bed-page",
        **{"data-bed": bed_id},
        children=[
            dcc.Store(id="bed-ctx", data={"bed": bed_id, "session": session_id}),
            dcc.Store(id="bed-refresh", data=0),
            dcc.Store(id="bed-session"),
            html.Div(id="alarm-list", className="alarm-list"),
            html.Div(
                className="bed-top",
                children=[
                    tile(bed, now, big=True),
                    html.Div(
                        id="session-panel",
                        className="session-panel",
                        children=[
                            html.Div(id="session-info", className="session-info"),
                            html.Div(id="session-message", className="session-message"),
                            _admit_form(),
                            _phase_controls(),
                            dcc.Store(id="protocol-data"),
                            bedpage.protocol_panel(),
                        ],
                    ),
                ],
            ),
            html.Div(
                id="trend-wrap",
                className="trend-wrap",
                **{"data-bed": bed_id},
                children=[
                    dcc.Graph(
                        id="trend",
                        config={"displaylogo": False, "responsive": True},
                        style={"height": "620px"},
                    )
                ],
            ),
            html.Div(
                className="bed-bottom",
                children=[
                    _observation_form(),
                    html.Div(
                        className="panel",
                        children=[
                            html.H3("Timeline"),
                            html.Ul(id="timeline", className="timeline"),
                        ],
                    ),
                    html.Div(
                        className="panel",
                        children=[
                            html.H3("Sessions of this patient"),
                            html.Ul(id="earlier-sessions", className="earlier-sessions"),
                            html.Div(id="report-links", className="report-links"),
                        ],
                    ),
                    html.Div(
                        id="limits-panel",
                        className="panel",
                        children=[
                            html.H3("Alarm limits in force"),
                            html.Div(id="limits-table"),
                            *bedpage.limits_controls(),
                            html.Button("Save limits", id="limits-save", n_clicks=0),
                            html.Div(id="limits-message", className="session-message"),
                        ],
                    ),
                ],
            ),
        ],
    )


def _admit_form() -> html.Div:
    return html.Div(
        id="admit-form",
        className="admit-form",
        style={"display": "none"},
        children=[
            html.H3("Admit a patient to this chair"),
            html.Label("Patient label", htmlFor="admit-label"),
            dcc.Input(id="admit-label", type="text", placeholder="e.g. initials + MRN tail"),
            # The clinic's own patient identifier: the course is built from it, never from
            # the label (docs/course.md).
            html.Label("Patient ID (MRN)", htmlFor="admit-patient-id"),
            dcc.Input(id="admit-patient-id", type="text", placeholder="the clinic's MRN or code"),
            html.Label("Age", htmlFor="admit-age"),
            dcc.Input(
                id="admit-age",
                type="number",
                autoComplete=bedpage.NO_AUTOCOMPLETE,
                min=0,
                max=130,
                step=1,
            ),
            html.Label("Baseline HR (optional)", htmlFor="admit-baseline-hr"),
            dcc.Input(
                id="admit-baseline-hr",
                type="number",
                autoComplete=bedpage.NO_AUTOCOMPLETE,
                min=20,
                max=250,
            ),
            html.Label("Baseline systolic (optional)", htmlFor="admit-baseline-sbp"),
            dcc.Input(
                id="admit-baseline-sbp",
                type="number",
                autoComplete=bedpage.NO_AUTOCOMPLETE,
                min=40,
                max=300,
            ),
            html.Div("Protocol", className="label", id="admit-protocol-label"),
            dcc.RadioItems(id="admit-protocol", className="admit-protocol"),
            html.Button("Admit", id="admit-submit", n_clicks=0),
        ],
    )


def _phase_controls() -> html.Div:
    return html.Div(
        id="phase-controls",
        className="phase-controls",
        children=[
            html.Button(
                EVENT_LABELS[t],
                id=f"ev-{t}",
                n_clicks=0,
                className=f"ev-button ev-{t}",
                style={"display": "none"},
            )
            for t in EVENT_TYPES
        ],
    )


def _observation_form() -> html.Div:
    return html.Div(
        id="obs-form",
        className="panel obs-form",
        style={"display": "none"},
        children=[
            html.H3("Observation"),
            html.Label("MOAA/S", htmlFor="obs-moaas"),
            dcc.Dropdown(
                id="obs-moaas",
                options=[{"label": v, "value": k} for k, v in MOAAS_LABELS.items()],
                placeholder="sedation score",
            ),
            html.Label("CADSS-6 (0\u201324)", htmlFor="obs-cadss6"),
            dcc.Input(
                id="obs-cadss6",
                type="number",
                autoComplete=bedpage.NO_AUTOCOMPLETE,
                min=0,
                max=24,
                step=1,
            ),
            html.Label("Side effect", htmlFor="obs-side-effect"),
            dcc.Dropdown(
                id="obs-side-effect",
                options=[{"label": s, "value": s} for s in SIDE_EFFECTS],
                placeholder="none",
            ),
            html.Label("Medication given", htmlFor="obs-medication"),
            dcc.Input(id="obs-medication", type="text", placeholder="e.g. ondansetron 4 mg IV"),
            html.Label("Note", htmlFor="obs-note"),
            dcc.Textarea(id="obs-note", style={"width": "100%"}),
            html.Button("Record observation", id="obs-submit", n_clicks=0),
        ],
    )


def observation_data(
    moaas: Any, cadss6: Any, side_effect: Any, medication: Any, note: Any
) -> dict[str, Any]:
    """The observation event's data: only what the nurse filled in (empty -> {})."""
    data: dict[str, Any] = {}
    if moaas not in (None, ""):
        data["moaas"] = int(moaas)
    if cadss6 not in (None, ""):
        data["cadss6"] = int(cadss6)
    if side_effect:
        data["side_effect"] = str(side_effect)
    if medication and str(medication).strip():
        data["medication"] = str(medication).strip()
    if note and str(note).strip():
        data["note"] = str(note).strip()
    return data


def allowed_events(session: Mapping[str, Any] | None) -> set[str]:
    """Buttons offered per phase; the monitor still has the last word (409)."""
    if not session:
        return set()
    phase = session.get("phase")
    if phase == "baseline":
        return {"infusion_start", "end"}
    if phase == "infusion":
        pause_or_resume = "infusion_pause" if session.get("infusion_running") else "infusion_resume"
        return {pause_or_resume, "infusion_stop"}
    if phase == "recovery":
        return {"end"}
    return set()


def report_links(session_id: int | None) -> list[Any]:
    """Buttons the JS turns into authenticated downloads (the monitor wants a bearer token)."""
    if session_id is None:
        return []
    return [
        html.Button(
            label,
            id=f"report-{kind}",
            className="report-button",
            **{"data-session": str(session_id), "data-kind": kind},
        )
        for kind, label in (("html", "Session report"), ("csv", "CSV"), ("fhir", "FHIR R4"))
    ]


def flatten_limits(limits: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of the monitor's limits document as (dotted path, value)."""
    out: list[tuple[str, float]] = []
    if isinstance(limits, Mapping):
        for k, v in limits.items():
            out.extend(flatten_limits(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(limits, int | float) and not isinstance(limits, bool):
        out.append((prefix, float(limits)))
    return out


def limits_subtree(doc: Any) -> Any:
    """The per-signal limits inside the monitor's limits answer ({"limits": {...}, ...})."""
    if isinstance(doc, Mapping) and isinstance(doc.get("limits"), Mapping):
        return doc["limits"]
    return doc


def nest_paths(edits: Mapping[str, float]) -> dict[str, Any]:
    """{"spo2.low.medium": 88} -> {"spo2": {"low": {"medium": 88}}}: the overrides' shape."""
    out: dict[str, Any] = {}
    for path, value in edits.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def merge_nested(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: `extra` wins leaf by leaf."""
    out: dict[str, Any] = {k: v for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_nested(out[k], v)
        else:
            out[k] = v
    return out
