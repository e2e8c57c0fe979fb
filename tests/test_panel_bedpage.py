"""Pure tests of the bed page's protocol side and plain words (docs/panel.md "The bed page"):
functions of the monitor's data, no browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboard import bedpage, plain, protocol_panel, words
from monitor.core.model import parse_rfc3339, to_rfc3339
from tests.factories import T0

RAW = re.compile(r"\d{4}-\d{2}-\d{2}T|\b[a-z0-9]+_[a-z0-9_]+\b|\b(?:spo2|hr)\.(?:low|high)\b")


def text(component: Any) -> str:
    """The visible text of a Dash component tree (strings and numbers among its children)."""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(text(c) for c in component)
    children = getattr(component, "children", None)
    return text(children) if children is not None else ""


def find_all(component: Any, pred: Any) -> list[Any]:
    out = [component] if pred(component) else []
    children = getattr(component, "children", None)
    for c in children if isinstance(children, list) else [children] if children else []:
        out.extend(find_all(c, pred))
    return out


@pytest.mark.parametrize(
    ("code", "info", "words"),
    [
        ("checklist_incomplete", {"missing": ["consent"]}, "still to do: Consent signed."),
        ("checklist_incomplete", {"missing": ["a", "b"]}, "2 items still to do"),
        ("predose_bp_missing", {}, "take a cuff blood pressure first"),
        ("predose_bp_high", {}, "The prescriber must decide"),
        (
            "discharge_blocked",
            {"blocked_by": ["too_soon", "moaas_missing"], "eligible_at": to_rfc3339(T0)},
            "too soon after dosing (not before",
        ),
        ("device_interval", {"next_at": to_rfc3339(T0)}, "Too soon for the next device: wait"),
        ("override_forbidden", {}, "Only a charge nurse or an admin"),
        ("dose_outside_infusion", {}, "only while dosing runs"),
        ("duplicate_event", {"event_id": 7}, "it is kept once"),
        ("record_needs_attention", {"event_id": 7}, "check the record"),
    ],
)
def test_every_refusal_reads_as_a_sentence_without_its_code(
    code: str, info: dict[str, Any], words: str
) -> None:
    """docs/panel.md: a refusal shows as a sentence by the monitor's stable code."""
    labels = {"consent": "Consent signed"}
    status = 403 if code == "override_forbidden" else 409
    sentence = plain.refusal_text(status, code, info, "raw message", 60, labels)
    assert words in sentence
    assert code not in sentence and "raw message" not in sentence
    assert not RAW.search(sentence), sentence


def test_discharge_blockers_are_listed_in_words_with_the_eligible_clock_time() -> None:
    """docs/panel.md: what blocks a discharge, in words, times on the local clock."""
    session = {
        "discharge": {
            "eligible": False,
            "eligible_at": "2026-09-21T14:52:00Z",
            "blocked_by": ["too_soon", "escort_unconfirmed"],
        }
    }
    shown = protocol_panel.discharge_status(session, tz_offset_min=120)
    assert text(shown) == "Not yet:  too soon after dosing (not before 16:52); escort not confirmed"


def test_a_done_bp_check_names_the_cuff_reading_that_did_it() -> None:
    """docs/protocols.md: a bp checkpoint is done by a cuff reading, shown with its time."""
    session = {
        "checkpoints": [
            {
                "id": "bp-40",
                "kind": "bp",
                "checkpoint": "bp-40",
                "due_at": "2026-09-21T14:40:00Z",
                "status": "done",
                "late": True,
                "window_end": "2026-09-21T14:45:00Z",
                "satisfied_by": {
                    "type": "reading",
                    "ts": "2026-09-21T14:46:10Z",
                    "values": {"sbp": 122.0, "dbp": 78.0, "map": 93.0},
                },
            },
            {
                "id": "moaas-40",
                "kind": "moaas",
                "checkpoint": "moaas-40",
                "due_at": "2026-09-21T14:40:00Z",
                "status": "overdue",
                "window_end": "2026-09-21T14:50:00Z",
            },
            {
                "id": "bp-discharge",
                "kind": "bp",
                "checkpoint": "bp-discharge",
                "status": "upcoming",
            },
        ]
    }
    protocol = {
        "checkpoints": [{"id": "bp-discharge", "anchor": "discharge_request", "offset_min": 0}]
    }
    now = parse_rfc3339("2026-09-21T14:53:00Z")
    items = protocol_panel.checkpoint_items(session, protocol, now, 0)
    words = [text(i) for i in items]
    assert words[0] == "Done Cuff BP at 14:40 cuff 122/78 mmHg at 14:46 (late)"
    assert words[1] == "Overdue MOAA/S (sedation) at 14:40 overdue 3 min: alarm raised"
    assert words[2] == "Upcoming Cuff BP when discharge is asked for "
    assert [i.id for i in items] == ["checkpoint-bp-40", "checkpoint-moaas-40", "checkpoint-bp-discharge"]  # fmt: skip


def test_the_limits_form_is_a_table_by_signal_with_the_clinics_bounds() -> None:
    """docs/panel.md: limits by signal, low/high per priority in word, bounds beside; the
    dotted paths only in the field ids."""
    doc = {
        "limits": {
            "spo2": {"low": {"medium": 90, "high": 85}},
            "sbp": {"high": {"medium": 180, "high": 200, "inclusive": True}},
            "rr": {"low": {"medium": 8}},
        },
        "override_bounds": {"spo2": [80, 95], "sbp": [70, 230]},
    }
    table = bedpage.limits_table(doc, editable=True)
    shown = text(table)
    assert not RAW.search(shown), shown
    rows = find_all(table, lambda c: getattr(c, "className", None) == "limit-signal")
    assert [text(r) for r in rows] == ["SpO\u2082 (%)", "Respiratory rate (/min)", "Systolic BP (mmHg)"]  # fmt: skip
    assert "80\u201395 %" in shown and "fixed by the clinic" in shown
    assert "High priority" in shown and "Medium priority" in shown
    inputs = find_all(table, lambda c: isinstance(getattr(c, "id", None), dict))
    by_path = {i.id["path"]: i for i in inputs}
    assert set(by_path) == {
        "spo2.low.high",
        "spo2.low.medium",
        "rr.low.medium",
        "sbp.high.medium",
        "sbp.high.high",
    }
    assert not by_path["spo2.low.medium"].disabled and by_path["rr.low.medium"].disabled
    assert (by_path["spo2.low.medium"].min, by_path["spo2.low.medium"].max) == (80.0, 95.0)


def test_a_fasting_time_is_the_latest_such_clock_time_before_now() -> None:
    """docs/panel.md: a checklist time "HH:MM" is read on the browser's clock, never ahead."""
    now = parse_rfc3339("2026-09-21T08:00:00Z")
    kinds = {"last_food": "time", "consent": "confirm", "weight": "number", "meds": "text"}
    data, bad = protocol_panel.checklist_answers(
        kinds,
        {"last_food": "09:30", "consent": ["yes"], "weight": 71.5, "meds": "  none "},
        now,
        tz_offset_min=120,
    )
    assert bad == []
    assert data == {
        "last_food": "2026-09-21T07:30:00.000Z",
        "consent": True,
        "weight": 71.5,
        "meds": "none",
    }
    later, _ = protocol_panel.checklist_answers(kinds, {"last_food": "11:00"}, now, 120)
    assert later["last_food"] == "2026-09-20T09:00:00.000Z"
    _, unreadable = protocol_panel.checklist_answers(kinds, {"last_food": "25:99"}, now, 0)
    assert unreadable == ["last_food"]


def test_the_session_header_speaks_in_clock_times_units_and_whole_numbers() -> None:
    """docs/panel.md: "Admitted 14:06", "Heart rate 68 /min", no ISO stamp, no "68.0"."""
    session = {
        "patient_label": "JD-0042",
        "phase": "baseline",
        "opened_at": "2026-11-25T14:06:59.195Z",
        "age": 41,
        "baseline": {"hr": 68.0, "sbp": 115.0},
    }
    shown = text(bedpage.session_info(session, "chair-3", 0))
    assert "Admitted 14:06" in shown
    assert "Baseline: Heart rate 68 /min, Systolic BP 115 mmHg" in shown
    assert "2026-" not in shown and ".0" not in shown


def test_a_session_whose_record_needs_attention_says_so_in_the_header() -> None:
    """docs/reliability.md: the offending event in plain words and whom to ask; none when fine."""
    session = {
        "patient_label": "JD-0042",
        "phase": "infusion",
        "opened_at": "2026-11-25T14:06:59.195Z",
        "record_problem": {
            "event_id": 12,
            "type": "infusion_start",
            "at": "2026-11-25T14:20:00.000Z",
            "message": "infusion_start does not fit a session in infusion (running)",
        },
    }
    shown = text(bedpage.session_info(session, "chair-3", 0))
    assert (
        "Record needs attention: an infusion start that does not fit (event 12). "
        "Ask an administrator."
    ) in shown
    assert "infusion_start" not in shown and "2026-" not in shown
    fine = text(bedpage.session_info({**session, "record_problem": None}, "chair-3", 0))
    assert "Record needs attention" not in fine
    unknown = words.record_text({"event_id": 3, "type": "teleport", "at": None})
    assert unknown.startswith("Record needs attention: an event of a kind")
