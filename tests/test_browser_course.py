"""The course page in headless Chromium (docs/course.md, docs/panel.md): one page per patient
with every session's summary and scores as a table and small plots, each session's report a
click away; the bed page's earlier sessions are the patient's, never a namesake's."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.core.model import parse_rfc3339
from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    axe_serious,
    browser_fixture,
    device_factory_fixture,
    login,
    page_fixture,
    panel_fixture,
    unique,
)
from tests.conftest import MonitorProcess
from tests.wsclient import measure_after

pytestmark = pytest.mark.browser


def _session(
    server: MonitorProcess, dev: Any, bed: str, label: str, patient: str, sbp: float, phq9: int
) -> int:
    body = {"bed": bed, "patient_label": label, "patient_id": patient}
    session = server.post("/api/sessions", body).json()
    sid, opened = int(session["id"]), parse_rfc3339(session["opened_at"])
    assert dev.send({"hr": 70, "spo2": 96, "rr": 14}, ts=measure_after(opened))["type"] == "ack"
    reply = dev.send({"sbp": sbp, "dbp": 80}, ts=measure_after(opened), source="nibp")
    assert reply["type"] == "ack"
    obs = {"type": "observation", "data": {"phq9": [phq9] * 9}}
    assert server.post(f"/api/sessions/{sid}/events", obs).status_code == 200
    for kind in ("infusion_start", "infusion_stop", "end"):
        assert server.post(f"/api/sessions/{sid}/events", {"type": kind}).status_code == 200
    return sid


def test_a_patients_course_page_shows_every_session_and_opens_its_report(
    sqlite_server: MonitorProcess, panel: Any, page: Any, device_factory: Any
) -> None:
    """Two sessions of one patient and one of a namesake: the course page lists the two,
    numbered of the planned six, with peak BP and PHQ-9 totals, three plots, and a report
    that opens with the session's own data."""
    bed, label = unique("course"), unique("JS")
    patient, namesake = unique("MRN"), unique("MRN")
    dev = device_factory(bed)
    first = _session(sqlite_server, dev, bed, label, patient, 132, 2)
    other = _session(sqlite_server, dev, bed, label, namesake, 118, 3)
    second = _session(sqlite_server, dev, bed, label, patient, 151, 1)

    login(page, panel.url)
    page.goto(f"{panel.url}/patient/{patient}")
    page.wait_for_selector("#course-table")
    rows = page.locator("#course-table tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-session") for i in range(2)] == [
        str(first),
        str(second),
    ]
    one, two = (rows.nth(i).inner_text() for i in range(2))
    assert "1 of 6" in one and "132/80" in one and "18" in one
    assert "2 of 6" in two and "151/80" in two and "9 (responder)" in two
    page.wait_for_function("document.querySelectorAll('#course-page .js-plotly-plot').length === 3")
    phq9 = page.evaluate("document.querySelector('#course-plot-0 .js-plotly-plot').data[0].y")
    assert list(phq9) == [18, 9]

    with page.expect_popup() as popup_info:
        page.click(f"#course-report-{second}")
    report = popup_info.value
    report.wait_for_url("blob:**")
    assert label in report.content() and "151" in report.content()

    page.goto(f"{panel.url}/bed/{bed}?session={second}")
    page.wait_for_selector(f"#session-link-{first}")
    assert page.locator(f"#session-link-{other}").count() == 0
    page.click("#course-link")
    page.wait_for_selector(f"#course-session-{first}")
    assert page.url.endswith(f"/patient/{patient}")


def test_the_course_page_has_no_serious_accessibility_violation(
    sqlite_server: MonitorProcess, panel: Any, page: Any, device_factory: Any
) -> None:
    """docs/panel.md: axe-core finds no serious or critical violation on a course page with
    its table, report buttons and plots drawn."""
    bed, patient = unique("axe"), unique("MRN")
    dev = device_factory(bed)
    for sbp, phq9 in ((128, 2), (141, 1)):
        _session(sqlite_server, dev, bed, unique("KL"), patient, sbp, phq9)
    login(page, panel.url)
    page.goto(f"{panel.url}/patient/{patient}")
    page.wait_for_selector("#course-table")
    page.wait_for_function("document.querySelectorAll('#course-page .js-plotly-plot').length === 3")
    assert axe_serious(page) == []


def test_an_unknown_patient_gets_a_clear_message(panel: Any, page: Any) -> None:
    """No sessions for that identifier: said on the page, nothing else drawn."""
    login(page, panel.url)
    page.goto(f"{panel.url}/patient/{unique('nobody')}")
    page.wait_for_selector("#page-error")
    assert "No sessions for patient" in page.text_content("#page-error")
    assert page.locator("#course-table").count() == 0
