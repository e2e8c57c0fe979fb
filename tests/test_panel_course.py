"""The course page's pure pieces (docs/panel.md "Course page"): paths, the REMS cell, the
table and plots drawn from the monitor's course JSON only."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.course import (
    course_figures,
    course_href,
    course_layout,
    patient_from_path,
    rems_text,
)


@pytest.mark.parametrize(
    ("path", "patient"),
    [
        ("/patient/MRN-0042", "MRN-0042"),
        ("/patient/MRN-0042/", "MRN-0042"),
        (course_href("A.B_1"), "A.B_1"),
        ("/patient/", None),
        ("/bed/chair-1", None),
        (None, None),
    ],
)
def test_a_course_page_path_names_its_patient(path: str | None, patient: str | None) -> None:
    """Only /patient/<id> is a course page."""
    assert patient_from_path(path) == patient


@pytest.mark.parametrize(
    ("rems", "text"),
    [
        (None, "\u2013"),
        (
            {"complete": False, "missing": ["bp.40min", "lot"], "signed": None},
            "missing: the cuff blood pressure at about 40 minutes, taken on time; "
            "the lot number of the devices",
        ),
        ({"complete": True, "missing": [], "signed": None}, "complete, not signed"),
        (
            {"complete": True, "signed": {"by": "n"}, "filed": None, "days_left": 5.5},
            "signed, not filed (5.5 days left)",
        ),
        ({"complete": False, "signed": {"by": "c"}, "filed": {"by": "c"}}, "signed and filed"),
    ],
)
def test_the_rems_cell_says_what_is_missing_or_where_sign_off_is(
    rems: dict[str, Any] | None, text: str
) -> None:
    """docs/course.md "REMS record": the nurse sees what the record still needs."""
    assert rems_text(rems) == text


COURSE = {
    "patient_id": "MRN-0042",
    "responder_rule": {"phq9_drop_pct": 50, "phq9_below": 10},
    "sessions": [
        {
            "id": 3,
            "n": 1,
            "planned": 6,
            "protocol": "iv-ketamine",
            "started_at": "2026-09-21T09:00:00Z",
            "scores": {"phq9": 20},
            "responder": False,
            "peak": {"sbp": 150, "dbp": 90, "hr": 99},
            "min": {"spo2": 95},
            "alarms": 1,
            "checkpoints_missed": 0,
            "dose_mg": 36.0,
        },
        {
            "id": 9,
            "n": 2,
            "planned": 6,
            "protocol": "iv-ketamine",
            "started_at": "2026-09-24T09:00:00Z",
            "scores": {"phq9": 8, "gad7": 6},
            "responder": True,
            "peak": {"sbp": None, "dbp": None, "hr": 80},
            "min": {"spo2": None},
            "alarms": 0,
            "checkpoints_missed": 2,
            "dose_mg": None,
        },
    ],
}


def test_the_table_has_a_row_per_session_in_course_order_with_its_report_button() -> None:
    """Rows carry the session id; numbers "n of planned"; absent values a dash."""
    page = course_layout(COURSE)
    table = page.children[2]
    rows = table.children[1].children
    assert [r.id for r in rows] == ["course-session-3", "course-session-9"]
    first = [c.children for c in rows[0].children]
    assert first[0] == "1 of 6" and first[4] == "150/90" and first[9] == "20"
    second = [c.children for c in rows[1].children]
    assert second[4] == "\u2013" and second[6] == "\u2013" and second[9] == "8 (responder)"
    button = rows[1].children[-1].children
    assert button.id == "course-report-9" and button.className == "report-button"


def test_the_plots_draw_scores_peaks_and_lowest_spo2_by_session_number() -> None:
    """Three figures; PHQ-9 and GAD-7 by n, gaps where a scale was not recorded."""
    scores, vitals, spo2 = course_figures(COURSE["sessions"])
    assert list(scores.data[0].x) == [1, 2] and list(scores.data[0].y) == [20, 8]
    assert list(scores.data[1].y) == [None, 6]
    assert [t.name for t in vitals.data] == ["systolic", "diastolic", "HR"]
    assert list(spo2.data[0].y) == [95, None]
