"""The protocol's record (docs/protocols.md "Report and FHIR", "Doses", "Checkpoints that
alarm"): the report's protocol sections, the FHIR doses and scores, device spacing, and the
stale-cuff rule in recovery. Pure: plain data in, no server, no clock."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from monitor.alarms import AlarmEngine, load_config
from monitor.clinical import rules as pm
from monitor.clinical.protocols import Protocol
from monitor.core.model import AlarmState, to_rfc3339
from monitor.records.report import report_fhir, report_html
from monitor.records.report.fhir_protocol import ASSESSMENT_SYSTEM
from tests.factories import (
    ESKETAMINE_CHECKLIST,
    FULL_CHECKLIST,
    IN_DOSING,
    T0,
    make_cuff,
    make_event,
    make_protocol_session_json,
    make_reading,
)

CONFIG = load_config(None)
ESK = CONFIG.protocols["esketamine"]
IV = CONFIG.protocols["iv-ketamine"]
DOSED = 300.0  # seconds after opening


def _device(n: int, **extra: object) -> dict[str, object]:
    return {
        "drug": "esketamine",
        "route": "intranasal",
        "total_mg": 28,
        "device": n,
        "cumulative_mg": 28 * n,
        "lot": "E-9",
        **extra,
    }


ESK_EVENTS: list[tuple[str, float, dict[str, object] | None, str]] = [
    ("checklist", 60, dict(ESKETAMINE_CHECKLIST), "ann"),
    ("checklist", 120, {"benzodiazepines": "yes, lorazepam 1 mg"}, "bob"),
    ("infusion_start", DOSED, {"prescriber": "Dr Rao", "reason": "treated hypertension"}, "ann"),
    ("dose", 310, _device(1), "ann"),
    ("infusion_pause", 400, {"reason": "patient coughing"}, "ann"),
    ("infusion_resume", 500, None, "ann"),
    ("dose", 620, _device(2), "ann"),
    ("dose", 700, _device(3, override_reason="second device not fully sprayed"), "cara"),
    ("infusion_stop", 800, None, "ann"),
    # moaas-40 is due 40 min after dosing, on time until 50 min: this one is 100 s late.
    ("observation", DOSED + 3000 + 100, {"moaas": 4}, "ann"),
    ("end", 3600, {"override_reason": "transferred to the emergency department"}, "cara"),
]
ESK_READINGS = [
    make_cuff(150, 92, ts=T0 + 200, seq=1, device_id="chair-1-mon"),
    make_cuff(128, 82, ts=T0 + DOSED + 2450, seq=2, device_id="chair-1-mon"),
]
ESK_AUDIT: list[dict[str, Any]] = [
    {
        "at": T0 + DOSED,
        "actor": "ann",
        "action": "predose_bp_override",
        "target": "1",
        "detail": {"prescriber": "Dr Rao", "reason": "treated hypertension"},
    },
    {
        "at": T0 + 700,
        "actor": "cara",
        "action": "dose_override",
        "target": "1",
        "detail": {"reason": "second device not fully sprayed"},
    },
    {
        "at": T0 + 3600,
        "actor": "cara",
        "action": "discharge_override",
        "target": "1",
        "detail": {
            "reason": "transferred to the emergency department",
            "blocked_by": ["too_soon", "spo2_missing"],
        },
    },
]


def _esk_session(events: list[Any] | None = None) -> dict[str, object]:
    return make_protocol_session_json(
        ESK, events or ESK_EVENTS, ESK_READINGS, now=T0 + 3700, session_id=1
    )


def _section(page: str) -> str:
    start = page.index("<h2>Protocol:")
    return page[start : page.index("<h2>", start + 4)]


def _rows(section: str, heading: str) -> list[list[str]]:
    """The body rows of the table under ``<h3>heading</h3>``, as plain cell text."""
    start = section.index(f"<h3>{heading}</h3>")
    table = section[start : section.index("</table>", start)]
    body = table[table.index("<tbody>") :]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def _esk_page() -> str:
    return report_html(
        _esk_session(),
        ESK_READINGS,
        [],
        ESK_AUDIT,
        generated_at=T0 + 3700,
        bed_label="Chair 1",
        protocol=ESK,
    )


# --- the report --------------------------------------------------------------------------


def test_the_report_shows_each_checklist_answer_with_who_and_when() -> None:
    """docs/protocols.md "Report and FHIR": checklist answers with who recorded them and when;
    a corrected answer keeps the earlier one in view."""
    rows = {r[0]: r for r in _rows(_section(_esk_page()), "Pre-dose checklist")}
    assert set(rows) == {i.label for i in ESK.checklist}
    consent = rows["Consent signed"]
    assert consent[1] == "Yes (confirmed)" and consent[3] == "ann"
    assert consent[2].startswith(to_rfc3339(T0 + 60)[11:19]) and "T+1:00" in consent[2]
    benzo = rows["Concomitant benzodiazepines (yes or no)"][1:]
    assert benzo[0].startswith("yes, lorazepam 1 mg") and "earlier: no" in benzo[0]
    assert benzo[2] == "bob" and "T+2:00" in benzo[1]
    assert rows["Last food (time; none for 2 h)"][1] == "2026-09-21 06:00 UTC"


def test_the_administration_record_lists_devices_lots_pauses_and_their_reasons() -> None:
    """docs/protocols.md "Doses": every device with its time, dose, running total and lot; a
    pause with its reason; dosing over a high pre-dose BP with the prescriber's decision."""
    rows = _rows(_section(_esk_page()), "Administration record")
    assert [r[1] for r in rows] == [
        "Dosing started",
        "Dose: esketamine, intranasal",
        "Dosing paused",
        "Dosing resumed",
        "Dose: esketamine, intranasal",
        "Dose: esketamine, intranasal",
        "Dosing ended",
    ]
    assert "Dr Rao: treated hypertension" in rows[0][2]
    assert rows[1][2] == "device 1: 28 mg (total so far 28 mg); lot E-9"
    assert "T+5:10" in rows[1][0] and rows[1][3] == "ann"
    assert rows[2][2] == "reason: patient coughing"
    assert rows[5][2].startswith("device 3: 28 mg (total so far 84 mg); lot E-9")
    assert "outside the dosing rules: second device not fully sprayed" in rows[5][2]
    assert rows[5][3] == "cara"


def test_each_checkpoint_is_on_time_late_missed_or_never_due_with_what_did_it() -> None:
    """docs/protocols.md "Report and FHIR": a cuff BP in its window is on time (with the
    reading's value, time and device), a score after it is late (by how much), one never
    taken is missed, one whose anchor never came is never due."""
    rows = {r[0]: r for r in _rows(_section(_esk_page()), "Timed checks")}
    bp = rows["Blood pressure (cuff), 40 min after dosing started"]
    assert bp[3] == "On time"
    assert bp[4].startswith("cuff 128/82 mmHg (mean 97.3) measured")
    assert bp[4].endswith("by chair-1-mon") and "T+45:50" in bp[4]
    moaas = rows["Sedation (MOAA/S), 40 min after dosing started"]
    assert moaas[3] == "Late (1 min 40 s after its window)"
    assert moaas[4].startswith("MOAA/S 4 recorded") and moaas[4].endswith("by ann")
    assert rows["Dissociation (CADSS), 40 min after dosing started"][3] == "Missed"
    discharge = rows["Blood pressure (cuff), when discharge was requested"]
    assert discharge[3].startswith("Never due") and discharge[1] == "–"


def test_the_discharge_decision_and_every_override_are_shown_with_who_and_why() -> None:
    """docs/protocols.md "Report and FHIR": a discharge over the criteria with by whom, when,
    why and what was not met; the gate overrides from the audit log in plain words."""
    section = _section(_esk_page())
    discharge = section[section.index("<h3>Discharge</h3>") : section.index("<h3>Overrides")]
    text = html.unescape(re.sub(r"<[^>]+>", "", discharge))
    assert "Discharged before the criteria were met by cara at" in text
    assert "Reason: transferred to the emergency department." in text
    assert "too soon: the minimum observation time had not passed; no SpO2 since dosing" in text
    overrides = _rows(section, "Overrides of the protocol")
    assert [(r[1], r[2], r[3]) for r in overrides] == [
        ("Dosing despite a high pre-dose blood pressure", "ann", "treated hypertension"),
        (
            "A dose outside the dosing rules (device spacing or count)",
            "cara",
            "second device not fully sprayed",
        ),
        (
            "Discharge before the criteria were met",
            "cara",
            "transferred to the emergency department",
        ),
    ]
    assert overrides[0][4] == "decided by prescriber Dr Rao"
    # Plain words: no reason codes, checkpoint ids or config keys.
    for key in ("too_soon", "bp-40", "override_reason", "predose_bp_override", "moaas-40"):
        assert key not in section


def test_an_iv_dose_shows_mg_per_kg_times_weight_and_a_pause_without_reason_says_so() -> None:
    """docs/protocols.md "Doses": mg/kg x checklist weight = total mg, concentration and
    rate; a pause with no reason is recorded as such; a dosed session ended on its criteria."""
    checklist = {
        "consent": True,
        "escort": True,
        "last_solids": "2026-09-21T01:00:00Z",
        "last_liquids": "2026-09-21T05:00:00Z",
        "weight_kg": 71.5,
        "medications": "none",
    }
    dose = {
        "drug": "ketamine",
        "route": "iv",
        "mg_per_kg": 0.5,
        "weight_kg": 71.5,
        "total_mg": 35.8,
        "concentration_mg_ml": 10,
        "rate": "over 40 min",
    }
    session = make_protocol_session_json(
        IV,
        [
            ("checklist", 60, checklist, "ann"),
            ("infusion_start", 300, None, "ann"),
            ("dose", 300, dose, "ann"),
            ("infusion_pause", 900, None, "ann"),
            ("infusion_resume", 960, None, "ann"),
            ("infusion_stop", 2700, None, "ann"),
            ("end", 5000, None, "ann"),
        ],
        [make_cuff(120, 80, ts=T0 + 100)],
        now=T0 + 5000,
    )
    page = report_html(session, [], [], [], generated_at=T0 + 5000, protocol=IV)
    section = _section(page)
    rows = _rows(section, "Administration record")
    assert rows[1][1] == "Dose: ketamine, intravenous"
    assert rows[1][2] == "0.5 mg/kg × 71.5 kg = 35.8 mg; concentration 10 mg/mL; rate over 40 min"
    assert rows[2][1:3] == ["Dosing paused", "no reason given"]
    checks = {r[0] for r in _rows(section, "Timed checks")}
    assert (
        "Blood pressure (cuff), 10 min after dosing started, then every 10 min during dosing (no. 1)"
        in checks
    )
    assert "Discharge criteria met</b>; discharged by ann" in section
    assert _rows(section, "Overrides of the protocol") == [["none"]]


def test_a_session_without_a_protocol_has_no_protocol_section() -> None:
    """docs/protocols.md: a session judged by no protocol reports none."""
    session = {**_esk_session(), "protocol": None}
    page = report_html(session, [], [], [], generated_at=T0 + 3700)
    assert "<h2>Protocol:" not in page


def test_text_from_people_in_the_protocol_sections_is_escaped() -> None:
    """docs/protocols.md "Report and FHIR": reasons, lots and names are shown, never run."""
    events = list(ESK_EVENTS)
    events[4] = ("infusion_pause", 400, {"reason": "<script>alert(1)</script>"}, "<b>ann</b>")
    page = report_html(_esk_session(events), [], [], [], generated_at=T0 + 3700, protocol=ESK)
    assert "<script>" not in page and "<b>ann</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- FHIR --------------------------------------------------------------------------------


def _bundle(events: list[Any] | None = None) -> dict[str, Any]:
    bundle = report_fhir(_esk_session(events), ESK_READINGS, bed_label="Chair 1")
    Bundle.model_validate(bundle)
    return bundle


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_each_dose_is_a_valid_medication_administration_with_its_lot_route_and_mg() -> None:
    """docs/integration.md "Doses and sedation/dissociation scores": one completed
    MedicationAdministration per dose, at the device's time, lot on a contained Medication,
    SNOMED CT route, dose in mg, the recorder as performer, an override's reason as a note."""
    bundle = _bundle()
    given = _resources(bundle, "MedicationAdministration")
    for resource in given:
        MedicationAdministration.model_validate(resource)
    assert [g["effectiveDateTime"] for g in given] == [to_rfc3339(T0 + s) for s in (310, 620, 700)]
    first = given[0]
    assert first["status"] == "completed"
    assert first["contained"][0]["batch"] == {"lotNumber": "E-9"}
    assert first["medicationReference"] == {"reference": "#med", "display": "esketamine"}
    assert first["dosage"]["route"]["coding"][0]["code"] == "46713006"
    assert first["dosage"]["dose"] == {
        "value": 28,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert first["performer"] == [{"actor": {"display": "ann"}}]
    patient = _resources(bundle, "Patient")[0]["id"]
    encounter = _resources(bundle, "Encounter")[0]["id"]
    assert first["subject"]["reference"] == f"urn:uuid:{patient}"
    assert first["context"]["reference"] == f"urn:uuid:{encounter}"
    assert given[2]["note"] == [
        {"text": "Outside the dosing rules: second device not fully sprayed"}
    ]
    assert "note" not in first
    assert all(uuid.UUID(g["id"]).version == 5 for g in given)
    assert report_fhir(_esk_session(), ESK_READINGS, bed_label="Chair 1") == bundle


def test_an_iv_dose_without_a_lot_names_the_drug_and_route_directly() -> None:
    """docs/integration.md: no lot, no contained Medication; intravenous is SNOMED 47625008."""
    session = make_protocol_session_json(
        IV,
        [
            ("checklist", 60, dict(FULL_CHECKLIST), "ann"),
            ("infusion_start", 300, None, "ann"),
            ("dose", 300, {"drug": "ketamine", "route": "iv", "total_mg": 36}, "ann"),
        ],
        [],
        now=T0 + 400,
    )
    bundle = report_fhir(session, [], bed_label="Chair 2")
    Bundle.model_validate(bundle)
    (given,) = _resources(bundle, "MedicationAdministration")
    MedicationAdministration.model_validate(given)
    assert given["medicationCodeableConcept"] == {"text": "ketamine"} and "contained" not in given
    assert given["dosage"]["route"]["coding"][0]["code"] == "47625008"


def test_moaas_and_cadss_scores_are_observations_in_the_local_code_system() -> None:
    """docs/integration.md: MOAA/S and CADSS-6 have no LOINC code; each score is a survey
    Observation coded in Vigil's local CodeSystem, valueInteger, at the event's time."""
    events = list(ESK_EVENTS)
    events.insert(-1, ("observation", 3450, {"cadss6": 3, "note": "calm"}, "bob"))
    bundle = _bundle(events)
    scored = [o for o in _resources(bundle, "Observation") if "valueInteger" in o]
    for obs in scored:
        Observation.model_validate(obs)
    got = [
        (
            o["code"]["coding"][0]["system"],
            o["code"]["coding"][0]["code"],
            o["valueInteger"],
            o["effectiveDateTime"],
            o["performer"],
        )
        for o in scored
    ]
    assert got == [
        (ASSESSMENT_SYSTEM, "moaas", 4, to_rfc3339(T0 + DOSED + 3100), [{"display": "ann"}]),
        (ASSESSMENT_SYSTEM, "cadss6", 3, to_rfc3339(T0 + 3450), [{"display": "bob"}]),
    ]
    assert all(o["category"][0]["coding"][0]["code"] == "survey" for o in scored)
    # The vital signs stay as they were: LOINC, one per cuff reading here.
    vitals = [o for o in _resources(bundle, "Observation") if "valueInteger" not in o]
    assert {o["code"]["coding"][0]["system"] for o in vitals} == {"http://loinc.org"}


# --- doses: device spacing on both sides ---------------------------------------------------

MIN = 60.0


def _dosed_with_devices(*minutes: float) -> list[pm.SessionEvent]:
    return [
        make_event("checklist", T0 + MIN, dict(FULL_CHECKLIST)),
        make_event("infusion_start", T0 + 10 * MIN),
        *(make_event("dose", T0 + m * MIN) for m in minutes),
    ]


def test_a_device_entered_late_keeps_its_rest_from_the_next_device_too() -> None:
    """docs/protocols.md "Doses": a device dated before one already recorded is refused
    within the rest of that later device (next_device_at), unless overridden."""
    events = _dosed_with_devices(10, 20)
    late = pm.dose(IN_DOSING, T0, events, {}, T0 + 17 * MIN, "nurse")
    assert late.refusal is not None and late.refusal.code is pm.Gate.DEVICE_INTERVAL
    assert late.refusal.detail == {"next_device_at": T0 + 20 * MIN}
    over = pm.dose(
        IN_DOSING, T0, events, {"override_reason": "entered late"}, T0 + 17 * MIN, "charge"
    )
    assert over.refusal is None and over.overridden
    fits = pm.dose(IN_DOSING, T0, events, {}, T0 + 15 * MIN, "nurse")
    assert fits.refusal is None and fits.data["device"] == 2


def test_every_recorded_device_counts_toward_the_maximum_whatever_its_time() -> None:
    """docs/protocols.md "Doses": a fourth device is refused even when dated before the
    others."""
    events = _dosed_with_devices(20, 30, 40)
    d = pm.dose(IN_DOSING, T0, events, {}, T0 + 11 * MIN, "nurse")
    assert d.refusal is not None and d.refusal.code is pm.Gate.DEVICES_EXCEEDED


# --- the stale-cuff rule in recovery --------------------------------------------------------


def test_the_shipped_protocols_watch_the_cuff_in_recovery() -> None:
    """docs/protocols.md "Checkpoints that alarm": iv-ketamine 30 min, esketamine 45 min in
    recovery; the basic protocol leaves the clinic's rule (infusion only)."""
    assert CONFIG.stale_cuff_s("iv-ketamine", "recovery") == 30 * 60
    assert CONFIG.stale_cuff_s("esketamine", "recovery") == 45 * 60
    assert CONFIG.stale_cuff_s("basic", "recovery") is None
    assert CONFIG.stale_cuff_s("iv-ketamine", "infusion") is None
    assert CONFIG.stale_cuff_s(None, "recovery") is None


@pytest.mark.parametrize("minutes", [0, -5, 24 * 60 + 1])
def test_a_stale_cuff_time_out_of_range_is_refused_at_start(minutes: float) -> None:
    """docs/protocols.md: a bad protocol stops the monitor with the reason."""
    with pytest.raises(ValidationError, match="stale_cuff_min"):
        Protocol.model_validate({"label": "x", "phases": {"recovery": {"stale_cuff_min": minutes}}})


def test_the_stale_cuff_alarm_runs_in_recovery_on_the_protocol_s_time() -> None:
    """docs/protocols.md "Checkpoints that alarm": with the protocol's recovery time the
    stale-cuff technical alarm rises after it, a cuff ends it, and so does the session's end."""
    engine = AlarmEngine(CONFIG)
    engine.set_session("bed-1", 1, "infusion", None, None, now=T0)
    engine.on_reading(make_cuff(120, 80, ts=T0 + 60))
    recovery = CONFIG.stale_cuff_s("iv-ketamine", "recovery")
    engine.set_session("bed-1", 1, "recovery", None, None, now=T0 + 100, stale_cuff_s=recovery)
    assert [a for a in engine.tick(T0 + 100 + 1799) if a.signal == "nibp"] == []
    (alarm,) = [a for a in engine.tick(T0 + 100 + 1800) if a.signal == "nibp"]
    assert (alarm.kind, alarm.priority, alarm.condition) == (
        "technical",
        "low",
        "no cuff pressure for 30 min",
    )
    assert alarm.started_at == T0 + 100 + 1800
    cuff = make_reading({"sbp": 118, "dbp": 76, "map": 90}, ts=T0 + 2000, source="nibp")
    (ended,) = [a for a in engine.on_reading(cuff) if a.signal == "nibp"]
    assert ended.id == alarm.id and ended.state is AlarmState.ENDED
    (again,) = [a for a in engine.tick(T0 + 2000 + 1800) if a.signal == "nibp"]
    gone = engine.set_session("bed-1", None, None, None, None, now=T0 + 4000)
    assert [(a.id, a.state) for a in gone if a.signal == "nibp"] == [(again.id, "ended")]


def test_without_a_protocol_time_recovery_keeps_the_clinic_rule() -> None:
    """docs/alarms.md: the clinic's stale_cuff phases (infusion) stay as they were."""
    engine = AlarmEngine(CONFIG)
    engine.set_session("bed-1", 1, "recovery", None, None, now=T0)
    assert [a for a in engine.tick(T0 + 5000) if a.signal == "nibp"] == []
