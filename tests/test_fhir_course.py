"""FHIR R4 for the course (docs/course.md "FHIR"): the Patient by identifier only, one
Encounter per session, PHQ-9 (LOINC 44249-1) and GAD-7 (LOINC 69737-5) Observations with
their item answers; every Bundle validated with fhir.resources (R4B models)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle

from monitor.core.model import to_rfc3339
from monitor.records.report import report_fhir
from monitor.records.report.fhir_course import course_bundle, with_course
from tests.factories import T0, make_reading, make_session_json

PHQ9 = [2, 3, 1, 0, 2, 1, 3, 2, 0]
GAD7 = [1, 1, 2, 0, 3, 1, 0]


def _session(session_id: int, opened_at: float, phq9: list[int], **kw: Any) -> dict[str, Any]:
    s = make_session_json(
        session_id=session_id,
        opened_at=opened_at,
        phase_events=[("infusion_start", 300.0), ("end", 3600.0)],
        observations=[(200.0, {"phq9": phq9, "phq9_total": sum(phq9), **kw})],
    )
    s["patient_id"] = "MRN-0042"
    return s


def _kinds(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]


def _scores(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["category"][0]["coding"][0]["code"] == "survey"
    ]


def test_the_course_bundle_has_the_patient_by_identifier_and_an_encounter_per_session() -> None:
    """Patient: the identifier only; each session one Encounter; each questionnaire one
    Observation referring to both."""
    sessions = [
        _session(1, T0, PHQ9, gad7=GAD7, gad7_total=sum(GAD7)),
        _session(2, T0 + 4 * 86_400, [1] * 9),
    ]
    bundle = course_bundle("MRN-0042", sessions)
    Bundle.model_validate(bundle)
    assert _kinds(bundle) == [
        "Patient",
        "Encounter",
        "Observation",
        "Observation",
        "Encounter",
        "Observation",
    ]
    patient = bundle["entry"][0]["resource"]
    assert set(patient) == {"resourceType", "id", "identifier"}
    assert patient["identifier"] == [{"system": "urn:vigil:patient", "value": "MRN-0042"}]
    encounters = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert [e["resource"]["period"]["start"] for e in encounters] == [
        to_rfc3339(T0),
        to_rfc3339(T0 + 4 * 86_400),
    ]
    phq, gad, later = _scores(bundle)
    assert phq["code"]["coding"][0]["code"] == "44249-1" and phq["valueInteger"] == sum(PHQ9)
    assert [c["valueInteger"] for c in phq["component"]] == PHQ9
    assert gad["code"]["coding"][0]["code"] == "69737-5" and gad["valueInteger"] == sum(GAD7)
    assert [c["valueInteger"] for c in gad["component"]] == GAD7
    assert later["encounter"]["reference"] == encounters[1]["fullUrl"]
    assert all(o["subject"]["reference"] == bundle["entry"][0]["fullUrl"] for o in (phq, later))
    assert phq["effectiveDateTime"] == to_rfc3339(T0 + 200)
    assert course_bundle("MRN-0042", sessions) == bundle  # deterministic ids


def test_a_session_bundle_gains_the_patient_identifier_and_its_questionnaires() -> None:
    """The session export keeps its vital signs and adds the course parts, still valid."""
    session = _session(7, T0, PHQ9)
    bundle = with_course(
        report_fhir(session, [make_reading({"hr": 70.0}, ts=T0 + 5)], bed_label="Chair 3"), session
    )
    Bundle.model_validate(bundle)
    assert _kinds(bundle) == ["Patient", "Encounter", "Observation", "Observation"]
    ids = bundle["entry"][0]["resource"]["identifier"]
    assert {"system": "urn:vigil:patient", "value": "MRN-0042"} in ids
    (score,) = _scores(bundle)
    assert score["valueInteger"] == sum(PHQ9)
    assert score["encounter"]["reference"] == bundle["entry"][1]["fullUrl"]


def test_a_session_without_patient_or_scores_exports_as_before() -> None:
    """No patient_id and no questionnaire: with_course adds nothing."""
    session = make_session_json(session_id=8, phase_events=[("end", 60.0)])
    plain = report_fhir(session, [], bed_label="Chair 1")
    assert with_course(report_fhir(session, [], bed_label="Chair 1"), session) == plain
