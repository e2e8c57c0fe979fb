"""Shared pieces of the session reports: input normalisation, phase timeline, statistics.

Reports are built from plain data handed in by the API layer (no DB access, no clock), so
inputs are accepted in the shapes the rest of Vigil already has: the session as in
``GET /api/sessions/{id}`` (times as RFC 3339 strings, or epoch seconds), readings as dicts
or ``monitor.core.model.Reading``, alarms as ``monitor.core.model.Alarm`` or their API dicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.core.model import (
    SIGNALS,
    Alarm,
    AlarmKind,
    AlarmState,
    Priority,
    Reading,
    parse_rfc3339,
)


@dataclass(frozen=True, slots=True)
class ReportReading:
    device_id: str
    seq: int
    ts: float
    values: Mapping[str, float]
    source: str | None


def epoch(value: object) -> float | None:
    """Epoch seconds from epoch seconds or RFC 3339 text; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a time cannot be a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError(f"not a time: {value!r:.40}")


def normalise_readings(readings: Iterable[Mapping[str, Any] | Reading]) -> list[ReportReading]:
    """Readings as ``ReportReading``, oldest first (ties by device and seq, for stable output)."""
    out: list[ReportReading] = []
    for r in readings:
        if isinstance(r, Reading):
            out.append(ReportReading(r.device_id, r.seq, r.ts, dict(r.values), r.source))
            continue
        ts = epoch(r["ts"])
        if ts is None:
            raise ValueError("a reading needs a ts")
        out.append(
            ReportReading(
                device_id=str(r["device_id"]),
                seq=int(r["seq"]),
                ts=ts,
                values={k: float(v) for k, v in dict(r["values"]).items()},
                source=r.get("source"),
            )
        )
    out.sort(key=lambda r: (r.ts, r.device_id, r.seq))
    return out


def normalise_alarm(alarm: Alarm | Mapping[str, Any]) -> Alarm:
    """An alarm as stored, or as the API shows it (``GET /api/alarms``); raises ValueError
    when its kind, priority or state is not one of Vigil's."""
    if isinstance(alarm, Alarm):
        return alarm
    started = epoch(alarm.get("started_at"))
    return Alarm(
        id=str(alarm.get("id", "")),
        bed_id=str(alarm.get("bed", alarm.get("bed_id", ""))),
        signal=str(alarm.get("signal", "")),
        kind=AlarmKind(str(alarm.get("kind", ""))),
        priority=Priority(str(alarm.get("priority", ""))),
        condition=str(alarm.get("condition", "")),
        started_at=started if started is not None else 0.0,
        state=AlarmState(str(alarm.get("state", ""))),
        ended_at=epoch(alarm.get("ended_at")),
        acknowledged_at=epoch(alarm.get("acknowledged_at")),
        acknowledged_by=alarm.get("acknowledged_by"),
        session_id=alarm.get("session_id"),
        device_id=alarm.get("device_id"),
        value=alarm.get("value"),
        escalated=bool(alarm.get("escalated", False)),
    )


@dataclass(frozen=True, slots=True)
class Span:
    name: str  # "baseline" | "infusion" | "paused" | "recovery"
    start: float
    end: float | None  # None: still open at the time of the report


@dataclass(frozen=True, slots=True)
class Timeline:
    opened_at: float | None
    ended_at: float | None
    infusion_start: float | None
    infusion_stop: float | None
    spans: tuple[Span, ...]

    @property
    def infusion_running_s(self) -> float | None:
        """Time the infusion ran, pauses excluded (None if it never started or is open)."""
        if self.infusion_start is None:
            return None
        total = 0.0
        for span in self.spans:
            if span.name == "infusion":
                if span.end is None:
                    return None
                total += span.end - span.start
        return total

    def phase_at(self, ts: float) -> str:
        """The phase a measurement time falls in ('paused' counts as infusion)."""
        if self.infusion_start is None or ts < self.infusion_start:
            return "baseline"
        if self.infusion_stop is None or ts < self.infusion_stop:
            return "infusion"
        return "recovery"


def timeline(session: Mapping[str, Any]) -> Timeline:
    """Phase spans rebuilt from the session's events, in order of their ``at``.

    A session whose record needs attention (``record_problem``) is read up to its offending
    event, as every reader reads it (docs/reliability.md, "An impossible session record is
    isolated"); the events section still lists every stored event."""
    opened = epoch(session.get("opened_at"))
    ended = epoch(session.get("ended_at"))
    stored = list(session.get("events") or [])
    problem = session.get("record_problem")
    if isinstance(problem, Mapping):
        cut = next(
            (i for i, e in enumerate(stored) if e.get("id") == problem.get("event_id")), None
        )
        if cut is not None:
            stored = stored[:cut]
    events = sorted(
        (
            (epoch(e.get("at")) or 0.0, str(e.get("type")))
            for e in stored
            if e.get("type") != "observation"
        ),
        key=lambda pair: pair[0],
    )
    spans: list[Span] = []
    current = "baseline"
    since = opened
    start = stop = None
    for at, kind in events:
        nxt = {
            "infusion_start": "infusion",
            "infusion_pause": "paused",
            "infusion_resume": "infusion",
            "infusion_stop": "recovery",
            "end": "ended",
        }.get(kind)
        if nxt is None:
            continue
        if kind == "infusion_start" and start is None:
            start = at
        if kind == "infusion_stop":
            stop = at
        if kind == "end" and ended is None:
            ended = at
        if since is not None:
            spans.append(Span(current, since, at))
        current, since = nxt, at
    if current != "ended" and since is not None:
        spans.append(Span(current, since, ended))
    return Timeline(opened, ended, start, stop, tuple(spans))


@dataclass(frozen=True, slots=True)
class Stats:
    n: int
    min: float
    max: float
    mean: float


def stats(values: Sequence[float]) -> Stats | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return Stats(len(finite), min(finite), max(finite), sum(finite) / len(finite))


def signal_stats(readings: Sequence[ReportReading]) -> dict[str, Stats]:
    out: dict[str, Stats] = {}
    for signal in SIGNALS:
        s = stats([r.values[signal] for r in readings if signal in r.values])
        if s is not None:
            out[signal] = s
    return out


def fmt_number(value: float) -> str:
    """Numbers as people write them: 97, 36.5, never 97.0 or 1e+02."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{h} h {m:02d} min"
    if m:
        return f"{sign}{m} min {s:02d} s"
    return f"{sign}{s} s"
