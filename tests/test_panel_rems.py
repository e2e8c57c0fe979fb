"""The panel's REMS record, pure pieces (docs/panel.md "REMS record", docs/course.md "REMS
record"): what is missing in the nurse's words, sign-off state with who and when, which
commands are offered to whom, refusals as sentences, and the ward list of records to sign or
file, all drawn from the monitor's JSON only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboard import rems
from dashboard.client import MonitorError
from dashboard.layout import bed_page_layout, header
from dashboard.widgets import HIDDEN, SHOWN
from monitor.alarms.config import load_config
from monitor.clinical import rems as monitor_rems

# 2026-11-25 14:06 UTC; the browser shown one hour east of UTC.
AT = "2026-11-25T14:06:00Z"
TZ = 60
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T|\d{2}:\d{2}:\d{2}")


def _text(node: Any) -> str:
    """The visible text of a Dash component tree."""
    if node is None or isinstance(node, bool | dict):
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(_text(n) for n in node)
    return _text(getattr(node, "children", None))


def _find(node: Any, ident: str) -> Any:
    if isinstance(node, list | tuple):
        for n in node:
            found = _find(n, ident)
            if found is not None:
                return found
        return None
    if getattr(node, "id", None) == ident:
        return node
    children = getattr(node, "children", None)
    return _find(children, ident) if children is not None else None


def _record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "session_id": 41,
        "required": True,
        "complete": False,
        "missing": ["bp.40min", "medications.maois"],
        "signed": None,
        "filed": None,
        "due_at": "2026-12-02T14:06:00Z",
        "days_left": 6.9,
    }
    return rec | changes


def test_every_missing_code_of_the_monitor_has_nurse_words() -> None:
    """Each code the monitor can put in ``missing`` (and each medication class of the shipped
    esketamine protocol) is shown in words, never as the code."""
    esketamine = load_config().protocols["esketamine"]
    assert esketamine.rems is not None
    codes = [str(m) for m in monitor_rems.Missing] + [
        f"medications.{c}" for c in esketamine.rems.medications
    ]
    for code in codes:
        word = rems.missing_word(code)
        assert word != "a field of the form", code
        assert "_" not in word and "bp." not in word and "medications." not in word, word


@pytest.mark.parametrize(
    ("days", "text", "late"),
    [
        (None, "due 7 days after the session ends", False),
        (6.9, "6 days left", False),
        (1.0, "1 day left", False),
        (0.4, "due today: less than a day left", False),
        (-0.3, "overdue by 1 day", True),
        (-2.6, "overdue by 2 days", True),
    ],
)
def test_days_left_of_the_seven_read_as_words_and_never_promise_more(
    days: float | None, text: str, late: bool
) -> None:
    """docs/course.md: days_left counts down to the due time, negative once overdue."""
    assert rems.days_text(days) == text
    assert rems.overdue(days) is late


def test_an_incomplete_record_lists_what_is_missing_and_offers_charge_the_reason() -> None:
    """Incomplete: the status says how many, the list says which in words; Sign is offered,
    the reason field only to charge or admin, Mark filed not before signing."""
    parts = dict(zip(rems.SECTION_OUTPUTS, rems.section_view(_record(), "nurse", TZ), strict=True))
    assert parts[("rems-section", "style")] == SHOWN
    status = parts[("rems-status", "children")]
    assert status.to_plotly_json()["props"]["data-state"] == "incomplete"
    assert _text(status) == "Incomplete: 2 fields still missing."
    missing = _text(parts[("rems-missing", "children")])
    assert "40 minutes" in missing and "MAOIs" in missing and "bp.40min" not in missing
    assert parts[("rems-reason-fields", "style")] == HIDDEN
    assert parts[("rems-sign", "style")] == SHOWN
    assert parts[("rems-filed", "style")] == HIDDEN
    printing = parts[("rems-print-wrap", "children")].to_plotly_json()["props"]
    assert (printing["data-kind"], printing["data-session"]) == ("rems", "41")
    assert parts[("rems-data", "data")] == {"session": 41}

    charge = rems.section_view(_record(), "charge", TZ)
    assert charge[rems.SECTION_OUTPUTS.index(("rems-reason-fields", "style"))] == SHOWN


def test_a_signed_record_says_who_and_when_in_local_time_and_offers_mark_filed() -> None:
    """Signed incomplete by charge: who, the local day and clock, the reason; Sign gone, Mark
    filed offered; filed: who and when, no command left."""
    signed = {"at": AT, "by": "charge1", "incomplete_reason": "cuff failed at 40 min"}
    view = rems.section_view(_record(signed=signed), "charge", TZ)
    parts = dict(zip(rems.SECTION_OUTPUTS, view, strict=True))
    lines = _text(parts[("rems-signoff", "children")])
    assert "Signed by charge1 on 25 Nov 15:06" in lines
    assert "cuff failed at 40 min" in lines
    assert "6 days left (due 2 Dec 15:06)" in lines
    assert not ISO.search(lines)
    assert _text(parts[("rems-missing", "children")]) == ""
    assert parts[("rems-sign", "style")] == HIDDEN
    assert parts[("rems-reason-fields", "style")] == HIDDEN
    assert parts[("rems-filed", "style")] == SHOWN

    filed = rems.section_view(_record(signed=signed, filed={"at": AT, "by": "nurse1"}), "nurse", TZ)
    parts = dict(zip(rems.SECTION_OUTPUTS, filed, strict=True))
    assert "Marked filed by nurse1 on 25 Nov 15:06." in _text(parts[("rems-signoff", "children")])
    assert parts[("rems-sign", "style")] == HIDDEN and parts[("rems-filed", "style")] == HIDDEN


def test_an_overdue_unfiled_record_is_marked_in_red_and_words() -> None:
    """Past its 7 days: the filing line says overdue and carries the overdue class."""
    rec = _record(signed={"at": AT, "by": "n"}, days_left=-1.2)
    line = _find(rems.signoff_lines(rec, 0), "rems-filed-by")
    assert "overdue by 1 day" in _text(line) and line.className == "rems-overdue"


@pytest.mark.parametrize(
    ("status", "code", "info", "words"),
    [
        (
            409,
            "rems_incomplete",
            {"missing": ["lot"]},
            "cannot be signed yet: still missing the lot number",
        ),
        (403, "override_forbidden", {}, "Only a charge nurse or an admin may sign"),
        (409, "rems_signed", {}, "signed already"),
        (409, "rems_not_signed", {}, "Sign the REMS record before marking it filed"),
        (409, "rems_filed", {}, "marked filed already"),
        (409, "rems_not_required", {}, "needs no REMS record"),
    ],
)
def test_refusals_of_sign_and_filed_are_sentences(
    status: int, code: str, info: dict[str, Any], words: str
) -> None:
    """The monitor's REMS codes (docs/course.md) become sentences, never the code."""
    text = rems.refusal_text(MonitorError(status, "refused", code, info))
    assert words in text and code not in text


def test_the_ward_list_shows_bed_patient_date_days_and_missing_in_words() -> None:
    """GET /api/rems rows: bed, label, local session date, days left (overdue marked), what is
    missing while unsigned, and a link to the session on its bed page."""
    records = [
        {
            "session_id": 7,
            "bed": "chair-3",
            "patient_label": "J.S.",
            "ended_at": AT,
            "signed": None,
            "filed": None,
            "missing": ["ready_to_leave"],
            "days_left": -0.5,
        },
        {
            "session_id": 9,
            "bed": "chair-4",
            "patient_label": "A.B.",
            "ended_at": AT,
            "signed": {"at": AT, "by": "n"},
            "filed": None,
            "missing": ["lot"],
            "days_left": 3.2,
        },
    ]
    table = rems.ward_rows(records, TZ)
    late = _find(table, "rems-row-7")
    text = _text(late)
    assert "chair-3" in text and "J.S." in text and "ended 25 Nov 15:06" in text
    assert "Overdue by 1 day" in text and "ready to leave" in text
    assert late.to_plotly_json()["props"]["data-overdue"] == "true"
    assert _find(late, "rems-open-7").href == "/bed/chair-3?session=7"
    signed = _text(_find(table, "rems-row-9"))
    assert "Mark filed" in signed and "3 days left" in signed and "lot" not in signed
    assert not ISO.search(_text(table)) and "_" not in _text(table)
    assert _text(rems.ward_rows([], TZ)) == "Every REMS record is signed and marked filed."


def test_the_bed_page_holds_the_hidden_rems_section_and_the_header_links_the_ward_list() -> None:
    """docs/panel.md ids: the section is in the bed page (hidden until a REMS session), the
    header links /rems."""
    page = bed_page_layout({"id": "chair-1"}, 0.0, None)
    assert _find(page, "rems-section").style == HIDDEN
    assert _find(header("n", "nurse"), "nav-rems").href == "/rems"
