"""Pages and tiles as pure functions of the monitor's data (no I/O, no clock reads).

Element ids are a public test hook (docs/panel.md lists them). Live elements (a tile's
inside, the alarm list) are drawn by the browser alone (assets/vigil-3c-tiles.js,
vigil-3d-alarms.js); Python gives them only their empty containers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from dash import dcc, html

from dashboard import bedpage, protocol_panel, rems
from dashboard.widgets import attrs, number_field
from dashboard.words import EVENT_LABELS, EVENT_TYPES
from monitor.core.model import Phase

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


# --- tiles --------------------------------------------------------------------------------


def tile(
    bed: Mapping[str, Any], now: float | None = None, *, feed_up: bool = False, big: bool = False
) -> html.Div:
    """A bed's empty tile: the browser draws everything inside ``tile-{bed}-body`` from the
    feed (assets/vigil-3c-tiles.js), the one renderer of a tile. Python gives only what never
    changes while the page is shown: the container (class ``tile``, ``data-bed``) and the
    link to the bed page, both hooks for outside checks (docs/panel.md), and the empty places
    the browser draws into (``-course`` beside the name, ``-body``). It starts as feed
    'down' until the browser's feed says hello."""
    bed_id = str(bed["id"])
    label = str(bed.get("label") or bed_id)
    return html.Div(
        id=f"tile-{bed_id}",
        className="tile tile-big" if big else "tile",
        **attrs(
            {"data-bed": bed_id, "data-feed": "up" if feed_up else "down", "data-alarm": "none"}
        ),
        children=[
            html.Div(
                className="tile-head",
                children=[
                    dcc.Link(
                        label,
                        href=f"/bed/{bed_id}",
                        id=f"tile-{bed_id}-name",
                        className="tile-name",
                        title=f"Open the page of {label}",
                    ),
                    # The course position and the link to the patient's course: drawn by
                    # the browser from the session (empty here, as the body is).
                    html.Div(id=f"tile-{bed_id}-course", className="tile-course"),
                ],
            ),
            # Filled by the browser only: React never renders children here, so it never
            # wipes what the painter drew.
            html.Div(id=f"tile-{bed_id}-body", className="tile-body"),
        ],
    )


# --- pages --------------------------------------------------------------------------------


def header(username: str | None, role: str | None) -> html.Header:
    return html.Header(
        id="header",
        className="header",
        children=[
            dcc.Link("Vigil \u2013 ward", href="/", className="brand", id="nav-ward"),
            dcc.Link("REMS records", href=rems.PATH, className="nav-link", id="nav-rems"),
            html.Div(
                "Connecting to the monitor\u2026",
                id="feed-status",
                className="feed-status",
                **attrs({"data-feed": "down"}),
            ),
            html.Button(
                "Sound OFF \u2013 click to enable",
                id="sound-toggle",
                className="sound-toggle",
                **attrs({"data-sound": "off", "aria-pressed": "false"}),
            ),
            html.Button(
                "Alarms first: off",
                id="order-toggle",
                className="order-toggle",
                title="Put beds with an alarm or an overdue check first",
                **attrs({"data-order": "bed", "aria-pressed": "false"}),
            ),
            html.Span(f"{username or ''} ({role or ''})", id="whoami", className="whoami"),
            html.Button("Log out", id="logout", className="logout", n_clicks=0),
            # Screen readers hear sound and connection changes here (the banner itself
            # ticks every second and would be read out endlessly).
            html.Div(
                id="announce",
                className="sr-only",
                role="status",
                **attrs({"aria-live": "polite", "aria-atomic": "true"}),
            ),
        ],
    )


DISCLAIMER: Final = (
    "Secondary display only: the bedside monitor stays the primary alarm. "
    "Not a certified medical device."
)


def login_layout(error: str | None = None) -> html.Main:
    return html.Main(
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
            html.Div(error or "", id="login-error", className="error", role="alert"),
        ],
    )


def overview_layout(beds: Sequence[Mapping[str, Any]], now: float | None = None) -> html.Main:
    """The ward: tiles on the left (16 fit 1920x1080), the alarm list beside them."""
    return html.Main(
        id="overview",
        className="overview",
        children=[
            html.H1("Ward overview", className="sr-only"),
            html.Div(id="ward", className="ward", children=ward_tiles(beds, now)),
            html.Aside(
                className="alarm-side",
                **attrs({"aria-label": "Active alarms"}),
                children=[
                    html.H2("Active alarms", className="alarm-side-title"),
                    html.Div(id="alarm-list", className="alarm-list"),
                ],
            ),
            dcc.Store(id="beds-version", data=0),
        ],
    )


def ward_tiles(beds: Sequence[Mapping[str, Any]], now: float | None = None) -> list[Any]:
    if not beds:
        return [
            html.Div(
                "No beds yet: register a device with `python -m monitor add-device`.",
                className="empty",
            )
        ]
    return [tile(b) for b in sorted(beds, key=lambda b: _natural_key(str(b["id"])))]


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
        **attrs({"data-bed": bed_id}),
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
                            protocol_panel.protocol_panel(),
                        ],
                    ),
                ],
            ),
            html.Div(
                id="trend-wrap",
                className="trend-wrap",
                **attrs({"data-bed": bed_id}),
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
                    rems.section(),
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
            *number_field("Age", "admit-age", min=0, max=130, step=1),
            *number_field("Baseline HR (optional)", "admit-baseline-hr", min=20, max=250),
            *number_field("Baseline systolic (optional)", "admit-baseline-sbp", min=40, max=300),
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
            *number_field("CADSS-6 (0\u201324)", "obs-cadss6", min=0, max=24, step=1),
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
    if phase == Phase.BASELINE:
        return {"infusion_start", "end"}
    if phase == Phase.INFUSION:
        pause_or_resume = "infusion_pause" if session.get("infusion_running") else "infusion_resume"
        return {pause_or_resume, "infusion_stop"}
    if phase == Phase.RECOVERY:
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
            **attrs({"data-session": str(session_id), "data-kind": kind}),
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
