"""FHIR R4 for the course (docs/integration.md "FHIR export", docs/course.md): the patient's
identifier, one Encounter per session, and PHQ-9 and GAD-7 as Observations with their item
answers. Pure: plain session JSON in (as ``GET /api/sessions/{id}`` shows it), dicts out.

- Patient: the clinic's ``patient_id`` as its identifier (system ``urn:vigil:patient``), and
  nothing else: Vigil stores no name beyond the label, and the label may be initials.
- Encounter: one per session, identifier ``urn:vigil:session``, class AMB, period
  admission..end, status finished or in-progress.
- Observation, category ``survey``: PHQ-9 coded LOINC 44249-1 and GAD-7 LOINC 69737-5 with the
  monitor's total as ``valueInteger`` and each item answer as a component (coded in
  ``urn:vigil:phq9-item`` / ``urn:vigil:gad7-item``, 1-based item numbers), effective at the
  observation event's time; one per questionnaire recorded.
- ids are UUID v5 of stable keys, so the same course exports to the same Bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from monitor.clinical.scores import SCALES, Scale, total
from monitor.core.model import to_rfc3339
from monitor.records.report.common import epoch
from monitor.records.report.fhir_bundle import ACT_CODE_SYSTEM, SESSION_ID_SYSTEM
from monitor.records.report.fhir_common import LOINC, category
from monitor.records.report.fhir_common import stable_uuid as _uuid

PATIENT_ID_SYSTEM: Final = "urn:vigil:patient"
EVENT_ID_SYSTEM: Final = "urn:vigil:event"


def patient_identifier(patient_id: str) -> dict[str, str]:
    return {"system": PATIENT_ID_SYSTEM, "value": patient_id}


def patient_resource(patient_id: str) -> dict[str, Any]:
    """The Patient of a course: the identifier only."""
    return {
        "resourceType": "Patient",
        "id": _uuid("course-patient", patient_id),
        "identifier": [patient_identifier(patient_id)],
    }


def encounter_resource(session: Mapping[str, Any], subject: Mapping[str, Any]) -> dict[str, Any]:
    """One session as an Encounter."""
    sid = session.get("id")
    opened, ended = epoch(session.get("opened_at")), epoch(session.get("ended_at"))
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": _uuid("course-encounter", sid),
        "identifier": [{"system": SESSION_ID_SYSTEM, "value": str(sid)}],
        "status": "finished" if ended is not None else "in-progress",
        "class": {"system": ACT_CODE_SYSTEM, "code": "AMB", "display": "ambulatory"},
        "subject": dict(subject),
    }
    period = {
        k: str(to_rfc3339(v)) for k, v in (("start", opened), ("end", ended)) if v is not None
    }
    if period:
        enc["period"] = period
    return enc


def score_observations(
    session: Mapping[str, Any], subject: Mapping[str, Any], encounter: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Bundle entries: one Observation per PHQ-9 or GAD-7 recorded in the session."""
    out: list[dict[str, Any]] = []
    for event in session.get("events") or []:
        data = event.get("data") or {}
        if event.get("type") != "observation":
            continue
        for scale in Scale:
            items = data.get(scale.value)
            if items is None:
                continue
            spec = SCALES[scale]
            obs_id = _uuid("score", session.get("id"), event.get("id"), scale.value)
            obs = {
                "resourceType": "Observation",
                "id": obs_id,
                "identifier": [
                    {"system": EVENT_ID_SYSTEM, "value": f"{event.get('id')}/{scale.value}"}
                ],
                "status": "final",
                "category": category("survey", "Survey"),
                "code": {
                    "coding": [
                        {"system": LOINC, "code": spec.loinc_total, "display": spec.display}
                    ],
                    "text": spec.display,
                },
                "subject": dict(subject),
                "encounter": dict(encounter),
                "effectiveDateTime": str(to_rfc3339(epoch(event.get("at")))),
                "valueInteger": total(scale, items),
                "component": [
                    {
                        "code": {
                            "coding": [{"system": f"urn:vigil:{scale.value}-item", "code": str(i)}],
                            "text": f"{spec.display.split(' ')[0]} item {i}",
                        },
                        "valueInteger": int(v),
                    }
                    for i, v in enumerate(items, start=1)
                ],
            }
            if event.get("by"):
                obs["performer"] = [{"display": str(event["by"])}]
            out.append({"fullUrl": f"urn:uuid:{obs_id}", "resource": obs})
    return out


def course_bundle(patient_id: str, sessions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The course as a FHIR R4 Bundle (collection): Patient, an Encounter per session, and
    the questionnaires of each session."""
    patient = patient_resource(patient_id)
    subject = {"reference": f"urn:uuid:{patient['id']}"}
    entries: list[dict[str, Any]] = [{"fullUrl": f"urn:uuid:{patient['id']}", "resource": patient}]
    for session in sessions:
        enc = encounter_resource(session, subject)
        entries.append({"fullUrl": f"urn:uuid:{enc['id']}", "resource": enc})
        entries += score_observations(session, subject, {"reference": f"urn:uuid:{enc['id']}"})
    return {
        "resourceType": "Bundle",
        "id": _uuid("course-bundle", patient_id),
        "identifier": patient_identifier(patient_id),
        "type": "collection",
        "entry": entries,
    }


def with_course(bundle: dict[str, Any], session: Mapping[str, Any]) -> dict[str, Any]:
    """A session's Bundle (monitor.records.report.fhir_bundle) with its patient's identifier on the
    Patient and the session's PHQ-9 and GAD-7 Observations added; nothing else changes."""
    entries = bundle["entry"]
    patient = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient")
    encounter = next(e for e in entries if e["resource"]["resourceType"] == "Encounter")
    if session.get("patient_id"):
        patient.setdefault("identifier", []).append(patient_identifier(str(session["patient_id"])))
    subject = {"reference": f"urn:uuid:{patient['id']}"}
    entries += score_observations(session, subject, {"reference": encounter["fullUrl"]})
    return bundle
