"""Trend figures as pure functions of the monitor's readings, alarms, session and limits.

Trace order is a contract with vigil.js, which appends live points with extendData:
TRACE_INDEX below (hr, spo2, rr, sbp, dbp, map). Times are shown in the browser's local
time: epoch -> naive local string using the offset the browser reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitor.core.model import Priority, parse_rfc3339

TRACE_SIGNALS: Final[tuple[str, ...]] = ("hr", "spo2", "rr", "sbp", "dbp", "map")
TRACE_INDEX: Final[Mapping[str, int]] = {s: i for i, s in enumerate(TRACE_SIGNALS)}
SIGNAL_ROW: Final[Mapping[str, int]] = {"hr": 1, "spo2": 2, "rr": 3, "sbp": 4, "dbp": 4, "map": 4}
ROW_TITLES: Final[tuple[str, ...]] = ("HR /min", "SpO\u2082 %", "RR /min", "NIBP mmHg")
# Live appends keep at most this many points per trace (about 3 h at 1 Hz).
MAX_POINTS: Final = 12_000
# Keyed by the monitor's priorities; looked up with the feed's plain strings (StrEnum members
# hash and compare as their values).
PRIORITY_COLOURS: Final[Mapping[str, str]] = {
    Priority.HIGH: "rgba(220, 30, 30, 0.22)",
    Priority.MEDIUM: "rgba(240, 190, 0, 0.25)",
    Priority.LOW: "rgba(0, 170, 220, 0.18)",
}
PHASE_EVENTS: Final[frozenset[str]] = frozenset(
    {"infusion_start", "infusion_pause", "infusion_resume", "infusion_stop", "end"}
)
_MARKERS: Final[Mapping[str, tuple[str, str]]] = {
    # Conventional anaesthesia chart marks: systolic v, diastolic ^, mean as a dot.
    "sbp": ("triangle-down", "#ef5350"),
    "dbp": ("triangle-up", "#64b5f6"),
    "map": ("circle", "#cfd8dc"),
}
# Bright enough on the dark panel (the page's --bg/--tile in assets/vigil.css).
_LINES: Final[Mapping[str, str]] = {"hr": "#66bb6a", "spo2": "#4dd0e1", "rr": "#ffca28"}
PAPER: Final = "#1d2228"
PLOT: Final = "#111418"


def local_x(ts: str | float | None, tz_offset_min: int) -> str | None:
    """RFC 3339 (or epoch) to the naive local time string Plotly draws as a date axis."""
    if ts is None:
        return None
    try:
        epoch = parse_rfc3339(ts) if isinstance(ts, str) else float(ts)
    except ValueError:
        return None
    dt = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=tz_offset_min)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def series(
    readings: Sequence[Mapping[str, Any]], tz_offset_min: int
) -> dict[str, tuple[list[str], list[float]]]:
    """Per signal, (x, y) in reading order; a missing key is not measured, never a gap value."""
    out: dict[str, tuple[list[str], list[float]]] = {s: ([], []) for s in TRACE_SIGNALS}
    for r in readings:
        x = local_x(r.get("ts"), tz_offset_min)
        if x is None:
            continue
        for key, value in dict(r.get("values") or {}).items():
            if key in out and isinstance(value, int | float):
                out[key][0].append(x)
                out[key][1].append(float(value))
    return out


def limit_bands(
    limits: Any, phase: str | None = None
) -> dict[str, tuple[float | None, float | None]]:
    """(low, high) medium-priority limits per signal from the monitor's limits document.

    Accepts {signal: {...}} or {"limits": {signal: {...}}} or per-phase {phase: {signal: ...}},
    with keys such as low/high, medium_low/medium_high or min/max. Unknown shapes give no bands
    rather than made-up ones.
    """
    doc = limits
    if isinstance(doc, Mapping) and isinstance(doc.get("limits"), Mapping):
        doc = doc["limits"]
    if isinstance(doc, Mapping) and phase and isinstance(doc.get(phase), Mapping):
        doc = doc[phase]
    bands: dict[str, tuple[float | None, float | None]] = {}
    if not isinstance(doc, Mapping):
        return bands
    for signal in TRACE_SIGNALS:
        spec = doc.get(signal)
        if not isinstance(spec, Mapping):
            continue
        if isinstance(spec.get("medium"), Mapping):
            spec = spec["medium"]
        low = _first_number(spec, ("medium_low", "low", "min", "lower", "below"))
        high = _first_number(spec, ("medium_high", "high", "max", "upper", "above"))
        if low is not None or high is not None:
            bands[signal] = (low, high)
    return bands


def _first_number(spec: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for k in keys:
        v = spec.get(k)
        if isinstance(v, Mapping):
            # The clinic config's shape: direction -> {medium: x, high: y}; the band a nurse
            # reads is the first (medium) threshold, else the high one.
            v = v.get("medium", v.get("high"))
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def trend_figure(
    readings: Sequence[Mapping[str, Any]],
    *,
    alarms: Sequence[Mapping[str, Any]] = (),
    session: Mapping[str, Any] | None = None,
    limits: Any = None,
    tz_offset_min: int = 0,
    live: bool = True,
    x_span: tuple[float, float] | None = None,
) -> go.Figure:
    """Whole-session trends: HR, SpO2, RR as lines, cuff BP as markers, with context marks.

    ``x_span`` (epoch seconds, e.g. the session's start and now) is always inside the time
    axis, so a session without readings yet shows its own hours rather than Plotly's empty
    default (2000-01-01); live points still widen the axis as they come.
    """
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        subplot_titles=ROW_TITLES,
    )
    data = series(readings, tz_offset_min)
    span = _span_x(x_span, tz_offset_min)
    empty = not any(xs for xs, _ in data.values())
    for signal in TRACE_SIGNALS:
        xs, values = data[signal]
        ys: list[float | None] = list(values)
        if empty and span is not None and signal == TRACE_SIGNALS[0]:
            # Plotly autoranges an axis without data to 2000-01-01 (autorangeoptions.include
            # only counts once there is data), but it does count points with no y value:
            # two such points hold the span until the first live point is appended.
            xs, ys = list(span), [None, None]
        if signal in _MARKERS:
            symbol, colour = _MARKERS[signal]
            trace = go.Scatter(
                x=xs,
                y=ys,
                name=signal.upper(),
                mode="markers",
                marker={"symbol": symbol, "size": 10, "color": colour},
            )
        else:
            trace = go.Scatter(
                x=xs,
                y=ys,
                name=signal.upper(),
                mode="lines",
                line={"color": _LINES[signal], "width": 1.6},
            )
        fig.add_trace(trace, row=SIGNAL_ROW[signal], col=1)

    phase = str((session or {}).get("phase") or "") or None
    for signal, (low, high) in limit_bands(limits, phase).items():
        row = SIGNAL_ROW[signal]
        if signal in ("dbp", "map") and "sbp" in limit_bands(limits, phase):
            # One BP row: the systolic band is the one a nurse reads; others as lines.
            for y in (low, high):
                if y is not None:
                    fig.add_hline(
                        y=y, line={"dash": "dot", "width": 1, "color": "#8a9099"}, row=row, col=1
                    )
            continue
        fig.add_hrect(
            y0=low if low is not None else 0,
            y1=high if high is not None else (100 if signal == "spo2" else 250),
            fillcolor="rgba(102, 187, 106, 0.10)",
            line_width=0,
            layer="below",
            row=row,
            col=1,
        )

    for alarm in alarms:
        x0 = local_x(alarm.get("started_at"), tz_offset_min)
        if x0 is None:
            continue
        x1 = local_x(alarm.get("ended_at"), tz_offset_min)
        if x1 is None:
            x1 = _last_x(data) or x0
        fig.add_vrect(
            x0=x0,
            x1=x1,
            fillcolor=PRIORITY_COLOURS.get(str(alarm.get("priority")), "rgba(0,0,0,0.1)"),
            line_width=0,
            layer="below",
            row=SIGNAL_ROW.get(str(alarm.get("signal")), 1),
            col=1,
        )

    for event in (session or {}).get("events") or []:
        x = local_x(event.get("at"), tz_offset_min)
        if x is None:
            continue
        kind = str(event.get("type"))
        is_phase = kind in PHASE_EVENTS
        # One line through every row (paper y), not one per subplot.
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=x,
            x1=x,
            y0=0,
            y1=1,
            line={
                "dash": "solid" if is_phase else "dot",
                "width": 2 if is_phase else 1,
                "color": "#ce93d8" if is_phase else "#8a9099",
            },
        )
        fig.add_annotation(
            x=x,
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=_event_label(event),
            showarrow=False,
            textangle=-30,
            font={"size": 10},
        )

    # Date axes from the start: an empty trace must not leave the axis linear before
    # the first live point arrives.
    # Ticks as a nurse reads a clock: whole seconds when zoomed in, else hours and minutes
    # (plotly's own choice on a short span is "14:06:01.5").
    fig.update_xaxes(
        type="date",
        tickformatstops=[
            {"dtickrange": [None, 60_000], "value": "%H:%M:%S"},
            {"dtickrange": [60_000, None], "value": "%H:%M"},
        ],
    )
    if span is not None:
        fig.update_xaxes(autorange=True, autorangeoptions={"include": span})
    fig.update_layout(
        margin={"l": 50, "r": 20, "t": 60, "b": 30},
        showlegend=False,
        # Keep the nurse's zoom across re-renders and live appends.
        uirevision=f"session-{(session or {}).get('id')}",
        template="plotly_dark",
        paper_bgcolor=PAPER,
        plot_bgcolor=PLOT,
        meta={"trace_signals": list(TRACE_SIGNALS), "live": live, "max_points": MAX_POINTS},
    )
    return fig


def _span_x(span: tuple[float, float] | None, tz_offset_min: int) -> list[str] | None:
    if span is None:
        return None
    start, end = (local_x(t, tz_offset_min) for t in span)
    if start is None or end is None or start > end:
        return None
    return [start, end]


def _last_x(data: Mapping[str, tuple[list[str], list[float]]]) -> str | None:
    last = [xs[-1] for xs, _ in data.values() if xs]
    return max(last) if last else None


def _event_label(event: Mapping[str, Any]) -> str:
    kind = str(event.get("type"))
    if kind != "observation":
        return kind.replace("infusion_", "").replace("_", " ")
    data = dict(event.get("data") or {})
    if "moaas" in data:
        return f"MOAA/S {data['moaas']}"
    if "cadss6" in data:
        return f"CADSS {data['cadss6']}"
    if "side_effect" in data:
        return str(data["side_effect"])
    if "medication" in data:
        return "med"
    return "note"
