"""The protocol's part of the FHIR R4 session Bundle: what was given and what was assessed.

Mapping (docs/integration.md, "FHIR export"):
- each ``dose`` event is a MedicationAdministration (status ``completed``): the drug as text
  (Vigil keeps no drug terminology), a lot as the batch of a contained Medication, the route
  as SNOMED CT (47625008 intravenous, 46713006 nasal), the dose in mg (UCUM ``mg``), mg/kg,
  weight, concentration, rate and device number in ``dosage.text``; ``effectiveDateTime`` is
  the event's time (for intranasal, the device's), the performer the user who recorded it,
  an override's reason a note;
- each MOAA/S or CADSS-6 score of an ``observation`` event is an Observation (category
  ``survey``, ``valueInteger``). No LOINC code for either scale was found, so both are coded
  in Vigil's local CodeSystem ``ASSESSMENT_SYSTEM`` (codes ``moaas`` and ``cadss6``);
- ids are UUID v5 of the session and event, like the vital signs, so an export is stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from monitor.core.model import to_rfc3339
from monitor.records.report.common import epoch
from monitor.records.report.fhir_common import UCUM, category
from monitor.records.report.fhir_common import stable_uuid as _uuid

SNOMED: Final = "http://snomed.info/sct"
# Vigil's own code system, for the scales LOINC has no code for (docs/integration.md).
ASSESSMENT_SYSTEM: Final = "urn:vigil:codesystem:assessment"
EVENT_ID_SYSTEM: Final = "urn:vigil:session-event"

ROUTES: Final[Mapping[str, tuple[str, str]]] = {
    "iv": ("47625008", "Intravenous route"),
    "intranasal": ("46713006", "Nasal route"),
}
# observation data key -> (local code, display, short text)
SCALES: Final[Mapping[str, tuple[str, str, str]]] = {
    "moaas": (
        "moaas",
        "Modified Observer's Assessment of Alertness/Sedation (MOAA/S) score",
        "MOAA/S",
    ),
    "cadss6": (
        "cadss6",
        "Clinician-Administered Dissociative States Scale, 6 items (CADSS-6) total",
        "CADSS-6",
    ),
}


def _number(value: object) -> str:
    assert isinstance(value, int | float)
    return f"{value:g}"


def _dosage_text(data: Mapping[str, Any]) -> str:
    parts = []
    if isinstance(data.get("device"), int):
        parts.append(f"device {data['device']}")
    if isinstance(data.get("mg_per_kg"), int | float):
        per_kg = f"{_number(data['mg_per_kg'])} mg/kg"
        if isinstance(data.get("weight_kg"), int | float):
            per_kg += f" x {_number(data['weight_kg'])} kg"
        parts.append(per_kg)
    if isinstance(data.get("total_mg"), int | float):
        parts.append(f"{_number(data['total_mg'])} mg")
    if isinstance(data.get("cumulative_mg"), int | float):
        parts.append(f"{_number(data['cumulative_mg'])} mg so far")
    if isinstance(data.get("concentration_mg_ml"), int | float):
        parts.append(f"{_number(data['concentration_mg_ml'])} mg/mL")
    if isinstance(data.get("rate"), str):
        parts.append(f"rate {data['rate']}")
    return "; ".join(parts)


def medication_administration(
    session_id: object,
    event: Mapping[str, Any],
    subject: Mapping[str, Any],
    encounter: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``dose`` event (the session view's event JSON) as a MedicationAdministration."""
    data: Mapping[str, Any] = event.get("data") or {}
    drug = str(data.get("drug") or "unspecified")
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": _uuid("medication-administration", session_id, event.get("id")),
        "identifier": [{"system": EVENT_ID_SYSTEM, "value": f"{session_id}/{event.get('id')}"}],
        "status": "completed",
        "subject": dict(subject),
        "context": dict(encounter),
        "effectiveDateTime": to_rfc3339(epoch(event.get("at"))),
    }
    if data.get("lot"):
        # R4 keeps the lot on the Medication, not on the administration.
        resource["contained"] = [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"text": drug},
                "batch": {"lotNumber": str(data["lot"])},
            }
        ]
        resource["medicationReference"] = {"reference": "#med", "display": drug}
    else:
        resource["medicationCodeableConcept"] = {"text": drug}
    if event.get("by"):
        resource["performer"] = [{"actor": {"display": str(event["by"])}}]
    dosage: dict[str, Any] = {}
    text = _dosage_text(data)
    if text:
        dosage["text"] = text
    route = ROUTES.get(str(data.get("route")))
    if route is not None:
        dosage["route"] = {
            "coding": [{"system": SNOMED, "code": route[0], "display": route[1]}],
            "text": route[1],
        }
    if isinstance(data.get("total_mg"), int | float):
        dosage["dose"] = {"value": data["total_mg"], "unit": "mg", "system": UCUM, "code": "mg"}
    if dosage:
        resource["dosage"] = dosage
    if data.get("override_reason"):
        resource["note"] = [{"text": f"Outside the dosing rules: {data['override_reason']}"}]
    return resource


def scale_observations(
    session_id: object,
    event: Mapping[str, Any],
    subject: Mapping[str, Any],
    encounter: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The MOAA/S and CADSS-6 scores of one ``observation`` event, one Observation each."""
    data: Mapping[str, Any] = event.get("data") or {}
    out = []
    for key, (code, display, short) in SCALES.items():
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": _uuid("observation", session_id, "event", event.get("id"), key),
            "identifier": [
                {"system": EVENT_ID_SYSTEM, "value": f"{session_id}/{event.get('id')}/{key}"}
            ],
            "status": "final",
            "category": category("survey", "Survey"),
            "code": {
                "coding": [{"system": ASSESSMENT_SYSTEM, "code": code, "display": display}],
                "text": short,
            },
            "subject": dict(subject),
            "encounter": dict(encounter),
            "effectiveDateTime": to_rfc3339(epoch(event.get("at"))),
            "valueInteger": value,
        }
        if event.get("by"):
            obs["performer"] = [{"display": str(event["by"])}]
        out.append(obs)
    return out


def protocol_entries(
    session: Mapping[str, Any], subject: Mapping[str, Any], encounter: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Bundle entries for the session's doses and sedation/dissociation scores, in event
    order."""
    session_id = session.get("id")
    entries = []
    for event in session.get("events") or []:
        if event.get("type") == "dose":
            resources = [medication_administration(session_id, event, subject, encounter)]
        elif event.get("type") == "observation":
            resources = scale_observations(session_id, event, subject, encounter)
        else:
            continue
        entries += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return entries
