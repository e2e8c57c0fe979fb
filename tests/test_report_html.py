"""The printable session report (GET /api/sessions/{id}/report): self-contained, escaped HTML."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

from monitor.core.model import Alarm, AlarmKind, AlarmState, Priority
from monitor.records.report import DISCLAIMER, report_html
from monitor.records.report.common import timeline
from tests.factories import T0, make_reading, make_session_json

HOSTILE = '<script>alert("x")</script> & "Bobby" <img src=x onerror=1>'


def session(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session_id": 42,
        "bed": "chair-3",
        "patient_label": "J.D.",
        "phase_events": [
            ("infusion_start", 600.0),
            ("infusion_pause", 1500.0),
            ("infusion_resume", 1620.0),
            ("infusion_stop", 3000.0),
            ("end", 4200.0),
        ],
        "observations": [(900.0, {"moaas": 4}), (3300.0, {"cadss6": 3, "note": "calm"})],
        "baseline": {"hr": 72.0, "sbp": 128.0},
        "by": "nurse.kim",
    }
    base.update(kw)
    return make_session_json(**base)


def readings() -> list[Any]:
    out = [
        make_reading({"hr": 60.0 + i, "spo2": 97.0, "rr": 14.0}, ts=T0 + 300 * i, seq=i)
        for i in range(14)
    ]
    out += [
        make_reading({"sbp": 120.0, "dbp": 80.0, "map": 93.0}, ts=T0 + 60, seq=100),
        make_reading({"sbp": 140.0, "dbp": 85.0, "map": 103.0}, ts=T0 + 1800, seq=101),
    ]
    return out


def alarms() -> list[Alarm]:
    return [
        Alarm(id="a1", bed_id="chair-3", signal="spo2", kind=AlarmKind.PHYSIOLOGICAL, priority=Priority.HIGH,
              condition="spo2 < 90", started_at=T0 + 1830, state=AlarmState.ENDED, ended_at=T0 + 1900,
              acknowledged_at=T0 + 1845, acknowledged_by="nurse.kim", value=88.0),
        Alarm(id="a2", bed_id="chair-3", signal="device", kind=AlarmKind.TECHNICAL, priority=Priority.LOW,
              condition="no data for 10 s", started_at=T0 + 2011, state=AlarmState.ENDED, ended_at=T0 + 2100),
    ]  # fmt: skip


def render(**kw: Any) -> str:
    args: dict[str, Any] = {
        "session": session(),
        "readings": readings(),
        "alarms": alarms(),
        "generated_at": T0 + 5000,
    }
    args.update(kw)
    return report_html(**args)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    return p


def row_text(page: str, start: str) -> str:
    """The cells (as text) of the first table row starting with ``start``, joined by " | "."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)
        texts = [" ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells]
        joined = " | ".join(texts)
        if joined.startswith(start):
            return joined
    raise AssertionError(f"no row starting {start!r}")


def test_user_text_is_escaped_everywhere() -> None:
    """Patient labels, notes and names are user input: no markup of theirs reaches the page."""
    page = render(
        session=session(
            patient_label=HOSTILE, observations=[(900.0, {"note": HOSTILE})], by=HOSTILE
        ),
        audit=[
            {"at": T0, "actor": HOSTILE, "action": "x", "target": HOSTILE, "detail": {"k": HOSTILE}}
        ],
        bed_label=HOSTILE,
    )
    p = parsed(page)
    assert "script" not in p.tags and "img" not in p.tags
    assert all(name != "onerror" for name, _ in p.attrs)
    assert HOSTILE in "".join(p.text)  # shown as text, faithfully


def test_page_is_self_contained_and_says_it_is_not_a_medical_device() -> None:
    """Printable offline: no scripts, no external resources; the disclaimer is on the page."""
    page = render()
    p = parsed(page)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert not any(name in ("src", "href") for name, _ in p.attrs)
    assert "not a certified medical device" in DISCLAIMER
    assert DISCLAIMER in "".join(p.text)
    assert "@media print" in page and "@page" in page


def test_header_shows_patient_bed_and_generation_time() -> None:
    """Report identifies the patient label, the bed and when it was made."""
    page = render(bed_label="Chair 3")
    text = " ".join(parsed(page).text)
    assert "J.D." in text and "Chair 3" in text
    assert "2026-09-21 15:36:40 UTC" in text  # generated_at = T0 + 5000


def test_phase_timings_count_pauses_out_of_infusion_time() -> None:
    """Phase table: baseline length, infusion running time without pauses, recovery length."""
    page = render()
    assert "baseline 10 min 00 s" in row_text(page, "Infusion started")
    assert "for 2 min 00 s" in row_text(page, "Infusion paused")
    assert "ran 38 min 00 s, paused 2 min 00 s" in row_text(page, "Infusion stopped")
    assert "recovery 20 min 00 s" in row_text(page, "Session ended")


def test_summary_gives_min_max_mean_per_signal() -> None:
    """Per signal: readings, min, max, mean over the session."""
    page = render()
    assert row_text(page, "Heart rate | /min | 14 |").startswith(
        "Heart rate | /min | 14 | 60 | 73 | 66.5"
    )
    assert row_text(page, "Systolic BP | mmHg | 2 |").startswith(
        "Systolic BP | mmHg | 2 | 120 | 140 | 130.0"
    )


def test_baseline_shows_recorded_and_measured_values() -> None:
    """Baseline table: the recorded baseline and the mean of readings before infusion."""
    page = render()
    # hr readings before infusion start (T0+600): 60 (t=0), 61 (t=300) -> 60.5
    assert "72 | 60.5 | 2" in row_text(page, "Heart rate | /min | 72")


def test_every_alarm_is_listed_with_time_to_acknowledgement() -> None:
    """Alarms: each one with its start, priority, and how long until it was acknowledged."""
    page = render()
    spo2 = row_text(page, "14:43:50")  # T0 + 1830
    assert "spo2 < 90" in spo2 and "high" in spo2 and "nurse.kim" in spo2 and "15 s" in spo2
    device = row_text(page, "14:46:51")  # T0 + 2011
    assert "not acknowledged" in device and "technical" in device
    assert "Alarms (2)" in page


def test_every_nurse_event_and_observation_is_listed() -> None:
    """Events: phase changes and observations (MOAA/S, CADSS-6, notes) with who recorded them."""
    page = render()
    assert "MOAA/S: 4" in row_text(page, "14:28:20")  # T0 + 900
    obs = row_text(page, "15:08:20")  # T0 + 3300
    assert "CADSS-6: 3" in obs and "Note: calm" in obs and "nurse.kim" in obs
    for name in (
        "Infusion started",
        "Infusion paused",
        "Infusion resumed",
        "Infusion stopped",
        "Session ended",
    ):
        assert name in page


def test_audit_section_only_when_entries_are_given() -> None:
    """Audit entries are optional; when given they are listed."""
    assert "Audit trail" not in render()
    page = render(
        audit=[{"at": T0 + 1845, "actor": "nurse.kim", "action": "alarm_ack", "target": "a1"}]
    )
    assert "alarm_ack" in row_text(page, "14:44:05")


def test_trend_charts_are_valid_inline_svg_with_cuff_markers() -> None:
    """Charts are inline SVG: lines for continuous signals, one marker per cuff value."""
    page = render()
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 4  # hr, spo2, rr, blood pressure
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
    bp = ET.fromstring(svgs[3])
    titles = [t.text for t in bp.iter("{http://www.w3.org/2000/svg}title")]
    assert titles.count("Systolic BP 120 at 14:14:20") == 1
    assert sum(1 for t in titles if t and t.startswith(("Systolic", "Diastolic", "Mean"))) == 6
    hr = ET.fromstring(svgs[0])
    assert len(list(hr.iter("{http://www.w3.org/2000/svg}polyline"))) == 0  # 300 s apart: no lines


def test_a_gap_in_readings_breaks_the_trend_line() -> None:
    """A silence longer than 30 s is drawn as a gap, never bridged."""
    rs = [
        make_reading({"hr": 70.0}, ts=T0 + s, seq=s)
        for s in list(range(0, 60)) + list(range(200, 260))
    ]
    page = render(readings=rs, alarms=[])
    hr = ET.fromstring(re.findall(r"<svg.*?</svg>", page, flags=re.S)[0])
    assert len(list(hr.iter("{http://www.w3.org/2000/svg}polyline"))) == 2


def test_long_sessions_keep_the_chart_small() -> None:
    """Six hours at 1 Hz: the chart keeps at most two points per pixel column."""
    rs = [make_reading({"hr": 60.0 + (s % 40)}, ts=T0 + s, seq=s) for s in range(6 * 3600)]
    page = render(readings=rs, alarms=[], session=session(phase_events=[]))
    hr = ET.fromstring(re.findall(r"<svg.*?</svg>", page, flags=re.S)[0])
    (line,) = hr.iter("{http://www.w3.org/2000/svg}polyline")
    assert len(line.attrib["points"].split()) <= 2 * 960
    assert len(page) < 200_000


def test_empty_session_renders() -> None:
    """A session with no readings, alarms or events still gives a complete page."""
    page = render(session=make_session_json(), readings=[], alarms=[])
    assert "No readings were stored" in page and page.rstrip().endswith("</html>")


def test_alarm_dicts_from_the_api_are_accepted() -> None:
    """Alarms may be passed as the API's JSON shape (RFC 3339 times)."""
    api_alarm = {
        "id": "x", "bed": "chair-3", "signal": "hr", "kind": "physiological", "priority": "medium",
        "condition": "hr > 120", "started_at": "2026-09-21T14:20:00.000Z", "ended_at": None,
        "acknowledged_at": "2026-09-21T14:21:05.000Z", "acknowledged_by": "n", "state": "acknowledged",
    }  # fmt: skip
    page = render(alarms=[api_alarm])
    assert "1 min 05 s" in row_text(page, "14:20:00")


def test_pulse_rate_has_its_own_row_and_line_beside_heart_rate() -> None:
    """A session with a pulse rate: a "Pulse rate" statistics row (/min) and a line on the
    heart-rate chart in its own colour; nothing breaks (docs/integration.md)."""
    with_pr = [
        make_reading({"hr": 70.0, "pr": 50.0 + i, "spo2": 97.0}, ts=T0 + 300 * i, seq=200 + i)
        for i in range(5)
    ]
    page = render(readings=readings() + with_pr)
    assert "Pulse rate" in page
    assert "#7cb342" in page  # the pulse-rate line
    assert "Pulse rate" not in render()  # only when measured


def test_a_record_needing_attention_is_said_first_and_its_phases_stop_at_the_offending_event() -> (
    None
):
    """docs/reliability.md: the report names the offending event and reads the phases up to it."""
    session = make_session_json(
        phase_events=[("infusion_start", 600), ("infusion_start", 900), ("infusion_stop", 1200)]
    )
    session["record_problem"] = {
        "event_id": 2,
        "type": "infusion_start",
        "at": "2026-09-21T14:15:00.000Z",
        "message": "infusion_start does not fit a session in infusion (running)",
    }
    page = report_html(session, [], [], generated_at=T0 + 5000)
    text = " ".join(parsed(page).text)
    assert "Record needs attention: stored event 2 (infusion_start, 2026-09-21 14:15:00 UTC)" in (
        html.unescape(" ".join(text.split()))
    )
    # The stop after the offending event is not read as the infusion's end.
    tl = timeline(session)
    assert tl.infusion_start == T0 + 600 and tl.infusion_stop is None
    assert timeline({**session, "record_problem": None}).infusion_stop == T0 + 1200
