"""The trend charts of the printable session report: inline SVG, no scripts.

Rules (docs/integration.md "Exports"; the pulse rate beside the heart rate, docs/alarms.md):
1. One chart each for heart rate (the pulse rate beside it, in its own colour), SpO2 and
   respiratory rate, and one for blood pressure: continuous sources as lines, cuff readings
   as markers (downward caret systolic, upward diastolic, circle mean).
2. Fixed default scales so charts of different sessions compare at a glance; data beyond
   them widens the scale to the next ten.
3. A silence longer than ``_GAP_S`` breaks a line instead of bridging it; a run of more than
   a quarter of ``_MAX_POINTS`` keeps the minimum and maximum of each pixel column (the same
   picture, a bounded page).
4. Infusion is shaded, pauses grey, alarm starts marked in red; times on the axis are UTC.

Every text drawn (a signal's name, a title) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from monitor.core.model import Alarm
from monitor.records.report.common import ReportReading, Timeline, fmt_number
from monitor.records.report.html_kit import SIGNAL_NAMES, esc, utc

# Charts: geometry in SVG user units; the page scales them to its width.
_W, _H = 960, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 24, 12, 22
_GAP_S: Final = 30.0  # a longer silence breaks a trend line instead of bridging it
_MAX_POINTS: Final = 2 * (_W - _LEFT - _RIGHT)  # beyond this, keep min/max per pixel
# Fixed default scales so charts of different sessions compare at a glance; data beyond
# them widens the scale.
_SCALES: Final[Mapping[str, tuple[float, float]]] = {
    "hr": (40.0, 140.0),
    "spo2": (80.0, 100.0),
    "rr": (0.0, 30.0),
    "bp": (40.0, 200.0),
}
_COLOURS: Final[Mapping[str, str]] = {
    "hr": "#1b7f3b",
    "pr": "#7cb342",
    "spo2": "#1f4fbf",
    "rr": "#8a3ea8",
    "sbp": "#b3261e",
    "dbp": "#b3261e",
    "map": "#333333",
}


def _decimate(points: list[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, float]]:
    """At most min and max per pixel column, in time order: same picture, bounded size."""
    if len(points) <= _MAX_POINTS // 4:
        return points
    columns = _W - _LEFT - _RIGHT
    buckets: dict[int, list[tuple[float, float]]] = {}
    span = max(t1 - t0, 1e-9)
    for p in points:
        buckets.setdefault(int((p[0] - t0) / span * columns), []).append(p)
    out: list[tuple[float, float]] = []
    for key in sorted(buckets):
        group = buckets[key]
        lo, hi = min(group, key=lambda p: p[1]), max(group, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def _chart(
    title: str,
    series: Sequence[tuple[str, list[tuple[float, float]], str]],
    scale: tuple[float, float],
    t0: float,
    t1: float,
    tl: Timeline,
    alarm_marks: Sequence[float],
) -> str:
    values = [v for _, pts, _ in series for _, v in pts]
    lo, hi = scale
    if values:
        lo, hi = (
            min(lo, math.floor(min(values) / 10) * 10),
            max(hi, math.ceil(max(values) / 10) * 10),
        )
    span_t = max(t1 - t0, 1.0)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span_t * plot_w

    def y(v: float) -> float:
        return _TOP + (hi - v) / (hi - lo) * plot_h

    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{esc(title)}">'
    ]
    for span in tl.spans:  # infusion shaded, pauses hatched grey
        if span.name not in ("infusion", "paused"):
            continue
        a, b = max(span.start, t0), min(span.end if span.end is not None else t1, t1)
        if b > a:
            fill = "#fff3d6" if span.name == "infusion" else "#e6e6e6"
            parts.append(
                f'<rect x="{x(a):.1f}" y="{_TOP}" width="{x(b) - x(a):.1f}" height="{plot_h}" fill="{fill}"/>'
            )
    for i in range(5):  # horizontal grid and labels
        v = lo + (hi - lo) * i / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{_LEFT - 4}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{fmt_number(round(v, 1))}</text>'
        )
    step = _tick_step(span_t)
    first = math.ceil(t0 / step) * step
    t = first
    while t <= t1:
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#eee"/>'
            f'<text x="{x(t):.1f}" y="{_H - 6}" font-size="11" text-anchor="middle">'
            f"{datetime.fromtimestamp(t, tz=UTC).strftime('%H:%M')}</text>"
        )
        t += step
    for ts in alarm_marks:
        if t0 <= ts <= t1:
            parts.append(
                f'<path d="M{x(ts):.1f} {_TOP} l-4 -8 h8 z" fill="#b3261e"><title>alarm</title></path>'
            )
    for signal, pts, style in series:
        colour = _COLOURS[signal]
        if style == "line":
            for run in (_decimate(r, t0, t1) for r in _runs(pts)):
                if len(run) == 1:
                    px, py = x(run[0][0]), y(run[0][1])
                    parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.5" fill="{colour}"/>')
                    continue
                coords = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in run)
                parts.append(
                    f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.3"/>'
                )
        else:
            for ts, v in pts:
                px, py = x(ts), y(v)
                if signal == "sbp":  # downward caret, the charting convention for systolic
                    shape = f'<path d="M{px - 4:.1f} {py - 5:.1f} L{px + 4:.1f} {py - 5:.1f} L{px:.1f} {py:.1f} z" fill="{colour}"/>'
                elif signal == "dbp":
                    shape = f'<path d="M{px - 4:.1f} {py + 5:.1f} L{px + 4:.1f} {py + 5:.1f} L{px:.1f} {py:.1f} z" fill="{colour}"/>'
                else:
                    shape = f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="none" stroke="{colour}" stroke-width="1.5"/>'
                parts.append(
                    f"<g>{shape}<title>{esc(SIGNAL_NAMES[signal])} {fmt_number(v)} at {utc(ts)}</title></g>"
                )
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/></svg>'
    )
    return f'<div class="chart"><h3>{esc(title)}</h3>{"".join(parts)}</div>'


def _tick_step(span_s: float) -> float:
    for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if span_s / step <= 12:
            return float(step)
    return 86400.0


def _runs(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    for p in points:
        if runs and p[0] - runs[-1][-1][0] <= _GAP_S:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def charts_section(readings: Sequence[ReportReading], alarms: Sequence[Alarm], tl: Timeline) -> str:
    if not readings:
        return '<p class="muted">No readings were stored for this session.</p>'
    t0 = min([r.ts for r in readings] + ([tl.opened_at] if tl.opened_at is not None else []))
    t1 = max([r.ts for r in readings] + ([tl.ended_at] if tl.ended_at is not None else []))

    def pts(signal: str, *, cuff: bool | None = None) -> list[tuple[float, float]]:
        return [
            (r.ts, r.values[signal])
            for r in readings
            if signal in r.values and (cuff is None or (r.source == "nibp") == cuff)
        ]

    def marks(*signals: str) -> list[float]:
        return [a.started_at for a in alarms if a.signal in signals]

    out = []
    for signal, title in (
        ("hr", "Heart rate (/min)"),
        ("spo2", "SpO2 (%)"),
        ("rr", "Respiratory rate (/min)"),
    ):
        series = [(signal, pts(signal), "line")]
        if signal == "hr" and pts("pr"):
            # The pulse rate on the heart-rate chart, in its own colour (docs/alarms.md).
            series = [s for s in series if s[1]] + [("pr", pts("pr"), "line")]
        if series[0][1]:
            out.append(_chart(title, series, _SCALES[signal], t0, t1, tl, marks(signal)))
    bp: list[tuple[str, list[tuple[float, float]], str]] = []
    for signal in ("sbp", "dbp", "map"):
        continuous = pts(signal, cuff=False)
        if continuous:
            bp.append((signal, continuous, "line"))
        cuff = pts(signal, cuff=True)
        if cuff:
            bp.append((signal, cuff, "markers"))
    if bp:
        out.append(
            _chart(
                "Blood pressure (mmHg): ▼ systolic, ▲ diastolic, ○ mean; lines are continuous sources",
                bp,
                _SCALES["bp"],
                t0,
                t1,
                tl,
                marks("sbp", "dbp", "map"),
            )
        )
    legend = (
        '<p class="muted">Shaded: infusion running; grey: infusion paused; red marks: alarm starts. '
        f"Lines break where no reading came for more than {int(_GAP_S)} s.</p>"
    )
    return "".join(out) + legend
