"""The esketamine REMS monitoring record's completeness, signing and filing rules, as tables
over the shipped esketamine protocol (docs/course.md "REMS record")."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.alarms.config import load_config
from monitor.clinical import rems
from monitor.clinical import rules as pm
from monitor.records.report.rems_html import rems_html
from tests.factories import REMS_EVENTS, T0, rems_session

CONFIG = load_config()
ESKETAMINE = CONFIG.protocols["esketamine"]
END = 7800.0


def _index(kind: str, nth: int = 0) -> int:
    """The index of the nth event of a kind in the factory's time order."""
    ordered = sorted(REMS_EVENTS, key=lambda e: e[1])
    return [i for i, e in enumerate(ordered) if e[0] == kind][nth]


def _record(
    *,
    drop_events: set[int] | None = None,
    drop_cuffs: set[int] | None = None,
    ended: float | None = END,
    protocol: Any = ESKETAMINE,
    sign_off: rems.SignOff | None = None,
    now: float = T0 + END + 60,
    lot: bool = True,
) -> dict[str, Any]:
    events, cuffs = rems_session(drop_events=drop_events, drop_cuffs=drop_cuffs)
    if not lot:
        events = [
            pm.SessionEvent(
                e.type, e.at, {k: v for k, v in (e.data or {}).items() if k != "lot"}, e.id
            )
            if e.type == "dose"
            else e
            for e in events
        ]
    row = {
        "id": 7,
        "patient_id": "MRN-7",
        "patient_label": "J.S.",
        "protocol": protocol.id,
        "opened_at": T0,
        "ended_at": None if ended is None else T0 + ended,
    }
    status = pm.status(protocol, T0, events, cuffs, None, now)
    return rems.record(protocol, row, events, cuffs, status, sign_off or rems.SignOff(), now)


def test_a_fully_recorded_session_is_complete_with_every_field_of_the_form() -> None:
    """Rule 1: nothing missing; the form's fields come from the session as recorded."""
    rec = _record()
    assert rec["missing"] == [] and rec["complete"] is True and rec["required"] is True
    assert rec["medications"] == {
        "benzodiazepines": "no",
        "non_benzodiazepine_sedative_hypnotics": "no",
        "psychostimulants": "yes: methylphenidate",
        "maois": "no",
    }
    assert rec["dose"] == {"total_mg": 56.0, "category": "56", "lots": ["LOT-42A"]}
    assert [d["mg"] for d in rec["devices"]] == [28.0, 28.0]
    assert rec["bp"]["predose"]["sbp"] == 128 and rec["bp"]["at_40_min"]["sbp"] == 138
    assert rec["bp"]["predischarge"]["dbp"] == 80
    assert rec["vitals_acceptable"] == {"predose": True, "discharge": True}
    assert rec["monitoring"]["minutes"] == round((END - 310) / 60, 1)
    assert rec["monitoring"]["meets_minimum"] is True
    assert rec["answers"] == {
        "sedation": True,
        "dissociation": True,
        "respiratory_depression": False,
        "serious_adverse_event": False,
    }
    assert [e["description"] for e in rec["adverse_events"]] == [
        "nausea, resolved without treatment"
    ]
    assert rec["days_left"] == pytest.approx(7.0, abs=0.05)


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        (
            {"drop_events": {_index("checklist")}},
            [
                "medications.benzodiazepines",
                "medications.non_benzodiazepine_sedative_hypnotics",
                "medications.psychostimulants",
                "medications.maois",
            ],
        ),
        ({"drop_events": {_index("dose", 0), _index("dose", 1)}}, ["dose", "lot"]),
        ({"lot": False}, ["lot"]),
        ({"drop_cuffs": {0}}, ["bp.predose"]),
        ({"drop_cuffs": {1}}, ["bp.40min"]),
        ({"drop_cuffs": {2}}, ["bp.predischarge"]),
        (
            {"drop_events": {_index("discharge_request")}},
            ["bp.predischarge", "ready_to_leave"],
        ),
        ({"drop_events": {_index("end")}, "ended": None}, ["monitoring_end"]),
        ({"drop_events": {_index("observation", 1)}}, ["sedation", "dissociation"]),
        (
            {"drop_events": {_index("observation", 2)}},
            ["respiratory_depression", "serious_adverse_event"],
        ),
    ],
)
def test_each_field_not_recorded_is_named_missing(
    change: dict[str, Any], missing: list[str]
) -> None:
    """Rule 1: exactly the fields not recorded are missing, and the record is incomplete."""
    rec = _record(**change)
    assert rec["missing"] == missing and rec["complete"] is False


def test_a_short_monitoring_time_is_flagged_not_missing() -> None:
    """Rule 1: the form records the minutes it was; under 120 is flagged."""
    rec = _record(ended=310 + 100 * 60)
    assert rec["monitoring"]["minutes"] == 100.0 and rec["monitoring"]["meets_minimum"] is False
    assert "monitoring_end" not in rec["missing"]


def test_a_session_of_a_protocol_without_rems_needs_no_record() -> None:
    """A basic or IV session: not required, never complete, nothing to list."""
    rec = _record(protocol=CONFIG.protocols["iv-ketamine"])
    assert (rec["required"], rec["complete"], rec["missing"]) == (False, False, [])
    assert rems.sign_refusal(rec, "admin", "x") == (rems.SignRefusal.NOT_REQUIRED, False)
    assert rems.pending(rec) is False


@pytest.mark.parametrize(
    ("complete", "role", "reason", "expected"),
    [
        (True, "nurse", None, (None, False)),
        (True, "charge", "ignored", (None, False)),
        (False, "nurse", None, (rems.SignRefusal.INCOMPLETE, False)),
        (False, "charge", None, (rems.SignRefusal.INCOMPLETE, False)),
        (False, "charge", "  ", (rems.SignRefusal.INCOMPLETE, False)),
        (False, "charge", "cuff failed; manual BP on paper", (None, True)),
        (False, "admin", "late entry", (None, True)),
    ],
)
def test_an_incomplete_record_is_signed_only_by_charge_or_admin_with_a_reason(
    complete: bool, role: str, reason: str | None, expected: tuple[Any, bool]
) -> None:
    """Rule 2."""
    rec = _record() if complete else _record(drop_cuffs={1})
    assert rems.sign_refusal(rec, role, reason) == expected


def test_a_nurse_cannot_sign_an_incomplete_record_even_with_a_reason() -> None:
    """Rule 2: 403 for a nurse."""
    with pytest.raises(rems.SignForbidden):
        rems.sign_refusal(_record(drop_cuffs={1}), "nurse", "no cuff")


def test_signing_and_filing_happen_once_each_and_in_order() -> None:
    """Rules 2 and 3: filed only after signing; neither twice; pending until both."""
    unsigned = _record()
    assert rems.file_refusal(unsigned) is rems.SignRefusal.NOT_SIGNED and rems.pending(unsigned)
    signed = _record(sign_off=rems.SignOff(signed_at=T0 + END + 30, signed_by="n"))
    assert rems.sign_refusal(signed, "admin", "x") == (rems.SignRefusal.ALREADY_SIGNED, False)
    assert rems.file_refusal(signed) is None and rems.pending(signed)
    filed = _record(
        sign_off=rems.SignOff(
            signed_at=T0 + END + 30, signed_by="n", filed_at=T0 + END + 90, filed_by="c"
        )
    )
    assert rems.file_refusal(filed) is rems.SignRefusal.ALREADY_FILED
    assert rems.pending(filed) is False


def test_days_left_count_down_the_seven_days_from_the_end() -> None:
    """Rule 3: due 7 days after the session ended; negative once overdue."""
    assert _record(now=T0 + END + 2 * 86_400)["days_left"] == 5.0
    assert _record(now=T0 + END + 8 * 86_400)["days_left"] == -1.0
    assert _record(drop_events={_index("end")}, ended=None)["days_left"] is None


def test_the_printable_page_marks_what_is_missing_and_escapes_what_people_typed() -> None:
    """The page draws the JSON record: MISSING where a field is not recorded."""
    rec = _record(drop_cuffs={1})
    rec["patient_label"] = "<script>x</script>"
    page = rems_html(rec, generated_at="2026-09-21T12:00:00Z")
    assert "bp.40min" in page and "MISSING" in page
    assert "<script>x" not in page and "&lt;script&gt;" in page
    assert "LOT-42A" in page and "128/82 mmHg" in page
