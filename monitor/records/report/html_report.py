"""The printable session report: one self-contained HTML page (inline CSS and SVG, no scripts).

Every piece of text that came from a person or a device (patient label, notes, user names,
device ids, audit details) is escaped: the page must never carry markup it was handed.
Times are shown in UTC, with the offset from the session's opening beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from monitor.clinical.protocols import Protocol
from monitor.core.model import SIGNAL_UNITS, SIGNALS, Alarm, Reading
from monitor.records.report.common import (
    ReportReading,
    Timeline,
    epoch,
    fmt_duration,
    fmt_number,
    normalise_alarm,
    normalise_readings,
    signal_stats,
    stats,
    timeline,
)
from monitor.records.report.html_kit import CSS, DISCLAIMER, esc, table, utc, when
from monitor.records.report.html_protocol import protocol_html

SIGNAL_NAMES: Final[Mapping[str, str]] = {
    "hr": "Heart rate",
    "pr": "Pulse rate",
    "spo2": "SpO2",
    "rr": "Respiratory rate",
    "sbp": "Systolic BP",
    "dbp": "Diastolic BP",
    "map": "Mean BP",
}
OBSERVATION_NAMES: Final[Mapping[str, str]] = {
    "moaas": "MOAA/S",
    "cadss6": "CADSS-6",
    "side_effect": "Side effect",
    "medication": "Medication",
    "note": "Note",
}
EVENT_NAMES: Final[Mapping[str, str]] = {
    "infusion_start": "Infusion started",
    "infusion_pause": "Infusion paused",
    "infusion_resume": "Infusion resumed",
    "infusion_stop": "Infusion stopped",
    "end": "Session ended",
    "observation": "Observation",
    "checklist": "Checklist answers",
    "dose": "Dose given",
    "discharge_request": "Discharge requested",
}
PHASES: Final = ("baseline", "infusion", "recovery")

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


# --- sections ------------------------------------------------------------------------------


def _phase_section(session: Mapping[str, Any], tl: Timeline) -> str:
    origin = tl.opened_at
    paused = sum((s.end - s.start) for s in tl.spans if s.name == "paused" and s.end is not None)
    rows = [
        ("Session opened", when(tl.opened_at, origin), ""),
        (
            "Infusion started",
            when(tl.infusion_start, origin),
            "baseline "
            + fmt_duration(
                tl.infusion_start - tl.opened_at
                if tl.infusion_start is not None and tl.opened_at is not None
                else None
            ),
        ),
    ]
    for span in tl.spans:
        if span.name == "paused":
            rows.append(
                (
                    "Infusion paused",
                    when(span.start, origin),
                    "for "
                    + (fmt_duration(span.end - span.start) if span.end else "(still paused)"),
                )
            )
    rows.append(
        (
            "Infusion stopped",
            when(tl.infusion_stop, origin),
            "ran "
            + fmt_duration(tl.infusion_running_s)
            + (f", paused {fmt_duration(paused)}" if paused else ""),
        )
    )
    recovery = (
        tl.ended_at - tl.infusion_stop
        if tl.ended_at is not None and tl.infusion_stop is not None
        else None
    )
    rows.append(("Session ended", when(tl.ended_at, origin), "recovery " + fmt_duration(recovery)))
    planned = session.get("infusion_planned_s")
    if isinstance(planned, int | float):
        rows.append(("Planned infusion", "", fmt_duration(float(planned))))
    if tl.opened_at is not None and tl.ended_at is not None:
        rows.append(("Whole session", "", fmt_duration(tl.ended_at - tl.opened_at)))
    return table(["Phase event", "Time", "Duration"], [(esc(a), b, esc(c)) for a, b, c in rows])


def _baseline_section(
    session: Mapping[str, Any], readings: Sequence[ReportReading], tl: Timeline
) -> str:
    recorded = session.get("baseline") or {}
    before = [r for r in readings if tl.phase_at(r.ts) == "baseline"]
    measured = signal_stats(before)
    rows = []
    for signal in SIGNALS:
        value = recorded.get(signal) if isinstance(recorded, Mapping) else None
        m = measured.get(signal)
        if value is None and m is None:
            continue
        rows.append(
            (
                esc(SIGNAL_NAMES[signal]),
                esc(SIGNAL_UNITS[signal]),
                esc(fmt_number(float(value))) if isinstance(value, int | float) else "–",
                esc(f"{m.mean:.1f}") if m else "–",
                esc(m.n) if m else "0",
            )
        )
    return table(
        ["Signal", "Unit", "Recorded baseline", "Mean before infusion", "Readings"],
        rows,
        numeric={2, 3, 4},
    )


def _stats_section(readings: Sequence[ReportReading], tl: Timeline) -> str:
    overall = signal_stats(readings)
    by_phase = {
        phase: signal_stats([r for r in readings if tl.phase_at(r.ts) == phase]) for phase in PHASES
    }
    rows = []
    for signal in SIGNALS:
        s = overall.get(signal)
        if s is None:
            continue
        phase_means = [
            esc(f"{by_phase[p][signal].mean:.1f}") if signal in by_phase[p] else "–" for p in PHASES
        ]
        rows.append(
            [
                esc(SIGNAL_NAMES[signal]),
                esc(SIGNAL_UNITS[signal]),
                esc(s.n),
                esc(fmt_number(s.min)),
                esc(fmt_number(s.max)),
                esc(f"{s.mean:.1f}"),
                *phase_means,
            ]
        )
    return table(
        [
            "Signal",
            "Unit",
            "Readings",
            "Min",
            "Max",
            "Mean",
            "Mean baseline",
            "Mean infusion",
            "Mean recovery",
        ],
        rows,
        numeric={2, 3, 4, 5, 6, 7, 8},
    )


def _alarm_section(alarms: Sequence[Alarm], origin: float | None) -> str:
    rows = []
    for a in sorted(alarms, key=lambda a: (a.started_at, a.id)):
        to_ack = a.acknowledged_at - a.started_at if a.acknowledged_at is not None else None
        duration = a.ended_at - a.started_at if a.ended_at is not None else None
        rows.append(
            [
                when(a.started_at, origin),
                esc(a.signal),
                esc(a.kind),
                f'<span class="prio-{esc(a.priority)}">{esc(a.priority)}</span>',
                esc(a.condition),
                esc(fmt_number(a.value)) if isinstance(a.value, int | float) else "",
                when(a.ended_at, origin)
                + (f" ({esc(fmt_duration(duration))})" if duration is not None else ""),
                when(a.acknowledged_at, origin)
                if a.acknowledged_at is not None
                else "not acknowledged",
                esc(a.acknowledged_by or ""),
                esc(fmt_duration(to_ack)),
                "yes" if a.escalated else "",
                esc(a.state),
            ]
        )
    return table(
        [
            "Started",
            "Signal",
            "Kind",
            "Priority",
            "Condition",
            "Value",
            "Ended",
            "Acknowledged",
            "By",
            "Time to ack",
            "Escalated",
            "State",
        ],
        rows,
    )


def _data_text(data: object) -> str:
    if not isinstance(data, Mapping):
        return esc(data) if data else ""
    parts = []
    for key, value in data.items():
        name = OBSERVATION_NAMES.get(str(key), str(key).replace("_", " "))
        parts.append(f"<b>{esc(name)}</b>: {esc(value)}")
    return "; ".join(parts)


def _events_section(session: Mapping[str, Any], origin: float | None) -> str:
    events = sorted(
        session.get("events") or [], key=lambda e: (epoch(e.get("at")) or 0.0, str(e.get("id")))
    )
    rows = []
    for e in events:
        at, recorded = epoch(e.get("at")), epoch(e.get("recorded_at"))
        late = (
            f' <span class="muted">(entered {esc(utc(recorded))})</span>'
            if at is not None and recorded is not None and recorded - at > 60
            else ""
        )
        kind = str(e.get("type"))
        rows.append(
            [
                when(at, origin) + late,
                esc(EVENT_NAMES.get(kind, kind)),
                _data_text(e.get("data")),
                esc(e.get("by") or ""),
            ]
        )
    return table(["Time", "Event", "Details", "By"], rows)


def _audit_section(audit: Sequence[Mapping[str, Any]], origin: float | None) -> str:
    rows = []
    for entry in sorted(audit, key=lambda x: epoch(x.get("at")) or 0.0):
        detail = entry.get("detail")
        rows.append(
            [
                when(epoch(entry.get("at")), origin),
                esc(entry.get("actor") or ""),
                esc(entry.get("action") or ""),
                esc(entry.get("target") or ""),
                _data_text(detail) if isinstance(detail, Mapping) else esc(detail or ""),
            ]
        )
    return table(["Time", "Who", "Action", "Target", "Detail"], rows)


# --- charts --------------------------------------------------------------------------------


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


def _charts_section(
    readings: Sequence[ReportReading], alarms: Sequence[Alarm], tl: Timeline
) -> str:
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


# --- the page ------------------------------------------------------------------------------


def _record_problem_note(session: Mapping[str, Any]) -> str:
    """The record's problem, said before anything is read from it (docs/reliability.md)."""
    problem = session.get("record_problem")
    if not isinstance(problem, Mapping):
        return ""
    return (
        '<p class="record-problem"><b>Record needs attention:</b> stored event '
        f"{esc(problem.get('event_id'))} ({esc(problem.get('type'))}, "
        f"{esc(utc(epoch(problem.get('at')), date=True))}) does not fit the events before it: "
        f"{esc(problem.get('message'))}. Phases and times are shown up to that event; the "
        "events section lists every stored event. Ask an administrator to repair the record.</p>"
    )


def report_html(
    session: Mapping[str, Any],
    readings: Iterable[Mapping[str, Any] | Reading],
    alarms: Iterable[Alarm | Mapping[str, Any]],
    audit: Iterable[Mapping[str, Any]] | None = None,
    *,
    generated_at: float,
    bed_label: str | None = None,
    protocol: Protocol | None = None,
) -> str:
    """The printable report of one session as a complete HTML document; ``protocol`` is the
    session's (its checkpoints' wording), None when it runs none or the clinic dropped it."""
    audit_list = list(audit) if audit is not None else None
    rows = normalise_readings(readings)
    alarm_list = [normalise_alarm(a) for a in alarms]
    tl = timeline(session)
    origin = tl.opened_at
    label = str(session.get("patient_label") or "")
    bed = bed_label if bed_label is not None else str(session.get("bed") or "")
    devices = sorted({r.device_id for r in rows})
    first_ts = stats([r.ts for r in rows])
    meta = [
        ("Patient", esc(label) or '<span class="muted">(no label)</span>'),
        ("Bed", esc(bed)),
        ("Age", esc(session.get("age")) if session.get("age") is not None else "–"),
        ("Session", esc(session.get("id"))),
        ("Phase", esc(session.get("phase") or "")),
        ("Opened", esc(utc(tl.opened_at, date=True))),
        ("Ended", esc(utc(tl.ended_at, date=True)) if tl.ended_at is not None else "still open"),
        ("Devices", esc(", ".join(devices)) or "–"),
        (
            "Readings",
            f"{len(rows)}"
            + (
                f" ({esc(utc(first_ts.min, date=True))} to {esc(utc(first_ts.max, date=True))})"
                if first_ts
                else ""
            ),
        ),
        ("Report generated", esc(utc(generated_at, date=True))),
    ]
    meta_html = "".join(f"<tr><td><b>{esc(k)}</b></td><td>{v}</td></tr>" for k, v in meta)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Vigil session report – {esc(label)} – {esc(bed)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Vigil session report</h1>",
        f'<p class="disclaimer">{esc(DISCLAIMER)}</p>',
        f'<table class="meta">{meta_html}</table>',
        _record_problem_note(session),
        "<h2>Phases</h2>",
        _phase_section(session, tl),
        "<h2>Baseline</h2>",
        _baseline_section(session, rows, tl),
        "<h2>Vital signs summary</h2>",
        _stats_section(rows, tl),
        "<h2>Trends</h2>",
        _charts_section(rows, alarm_list, tl),
        f"<h2>Alarms ({len(alarm_list)})</h2>",
        _alarm_section(alarm_list, origin),
        protocol_html(
            session, audit_list or [], protocol, origin=origin, generated_at=generated_at
        ),
        "<h2>Nurse events and observations</h2>",
        _events_section(session, origin),
    ]
    if audit_list is not None:
        parts += ["<h2>Audit trail</h2>", _audit_section(audit_list, origin)]
    parts += [
        f'<p class="muted">Times are UTC; T+m:ss is the time since the session was opened. '
        f"Generated by Vigil at {esc(utc(generated_at, date=True))}.</p>",
        f'<p class="disclaimer">{esc(DISCLAIMER)}</p>',
        "</body></html>",
    ]
    return "\n".join(parts)
