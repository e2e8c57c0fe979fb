"""Pure tests of the bed page's trend figure (no browser)."""

from __future__ import annotations

from typing import Any

from dashboard import figures
from monitor.core.model import to_rfc3339
from tests.factories import T0


def reading(t: float, **values: float) -> dict[str, Any]:
    source = "nibp" if "sbp" in values else None
    return {"ts": to_rfc3339(t), "values": values, "source": source, "device_id": "d", "seq": 1}


def test_trace_order_matches_what_the_feed_client_extends() -> None:
    """vigil.js appends with trace indices hr 0, spo2 1, rr 2, sbp 3, dbp 4, map 5."""
    fig = figures.trend_figure([])
    assert [t.name for t in fig.data] == ["HR", "SPO2", "RR", "SBP", "DBP", "MAP"]
    assert figures.TRACE_INDEX == {"hr": 0, "spo2": 1, "rr": 2, "sbp": 3, "dbp": 4, "map": 5}
    assert fig.layout.meta["max_points"] == figures.MAX_POINTS


def test_continuous_signals_are_lines_and_cuff_pressure_markers() -> None:
    """HR, SpO2, RR as lines; cuff BP as sys/dia/mean markers, never a line."""
    rows = [reading(T0 + i, hr=70 + i, spo2=97, rr=14) for i in range(3)]
    rows.append(reading(T0 + 3, sbp=128, dbp=82, map=97))
    fig = figures.trend_figure(rows)
    hr, spo2, rr, sbp, dbp, mp = fig.data
    assert hr.mode == "lines" and list(hr.y) == [70, 71, 72]
    assert sbp.mode == "markers" and list(sbp.y) == [128]
    assert sbp.marker.symbol == "triangle-down" and dbp.marker.symbol == "triangle-up"
    assert list(mp.y) == [97]


def test_missing_values_are_not_drawn_as_zero() -> None:
    """A reading without spo2 adds no spo2 point (not measured, never zero)."""
    fig = figures.trend_figure([reading(T0, hr=70), reading(T0 + 1, hr=71, spo2=96)])
    assert list(fig.data[1].y) == [96]
    assert len(fig.data[0].y) == 2


def test_times_are_drawn_in_the_browsers_local_time() -> None:
    """Server-drawn x values use the offset the browser reports, as live appends do."""
    assert figures.local_x(to_rfc3339(T0), 0) == "2026-09-21 14:13:20.000"
    assert figures.local_x(to_rfc3339(T0), 120) == "2026-09-21 16:13:20.000"
    assert figures.local_x("garbage", 0) is None


def test_limits_become_bands_from_the_clinic_config_shape() -> None:
    """Limits are shown as bands: medium thresholds of each direction."""
    limits = {
        "limits": {
            "spo2": {"low": {"medium": 90, "high": 85}},
            "hr": {"low": {"medium": 50, "high": 40}, "high": {"medium": 120}},
        }
    }
    assert figures.limit_bands(limits) == {"spo2": (90.0, None), "hr": (50.0, 120.0)}
    fig = figures.trend_figure([], limits=limits)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2
    assert figures.limit_bands({"weird": 1}) == {}


def test_phase_boundaries_events_and_alarm_spans_are_on_the_time_axis() -> None:
    """Phase events as solid lines, observations dotted, alarms as coloured spans."""
    session = {
        "id": 3,
        "phase": "recovery",
        "events": [
            {"type": "infusion_start", "at": to_rfc3339(T0 + 10)},
            {"type": "observation", "at": to_rfc3339(T0 + 20), "data": {"moaas": 4}},
            {"type": "infusion_stop", "at": to_rfc3339(T0 + 30)},
        ],
    }
    alarm = {
        "started_at": to_rfc3339(T0 + 12),
        "ended_at": to_rfc3339(T0 + 18),
        "priority": "high",
        "signal": "spo2",
    }
    fig = figures.trend_figure([reading(T0, hr=70)], session=session, alarms=[alarm])
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.line.dash for s in lines] == ["solid", "dot", "solid"]
    spans = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(spans) == 1 and spans[0].fillcolor == figures.PRIORITY_COLOURS["high"]
    labels = [a.text for a in fig.layout.annotations]
    assert "MOAA/S 4" in labels and "start" in labels and "stop" in labels
    assert fig.layout.uirevision == "session-3"


def test_open_alarm_span_runs_to_the_last_point() -> None:
    """An alarm that has not ended is drawn up to the newest reading."""
    alarm = {
        "started_at": to_rfc3339(T0 + 1),
        "ended_at": None,
        "priority": "medium",
        "signal": "hr",
    }
    fig = figures.trend_figure([reading(T0, hr=70), reading(T0 + 5, hr=130)], alarms=[alarm])
    span = next(s for s in fig.layout.shapes if s.type == "rect")
    assert span.x1 == figures.local_x(to_rfc3339(T0 + 5), 0)
