"""The printable session report: one self-contained HTML page (inline CSS and SVG, no scripts).

Every piece of text that came from a person or a device (patient label, notes, user names,
device ids, audit details) is escaped: the page must never carry markup it was handed.
Times are shown in UTC, with the offset from the session's opening beside them. The trend
charts are monitor.records.report.html_charts', the protocol's sections html_protocol's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
from monitor.records.report.html_charts import charts_section
from monitor.records.report.html_kit import CSS, DISCLAIMER, SIGNAL_NAMES, esc, table, utc, when
from monitor.records.report.html_protocol import protocol_html

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
        charts_section(rows, alarm_list, tl),
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
