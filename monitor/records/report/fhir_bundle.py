"""The session as a FHIR R4 Bundle (type ``collection``) of vital-signs Observations.

Mapping (docs/integration.md, "FHIR export"):
- one Patient (name text = the session's patient label) and one Encounter (the session:
  class AMB, period = opened..ended, location display = the bed label);
- per reading, one Observation per signal, following the R4 vital-signs profiles:
  hr 8867-4 ``/min``, pr (pulse rate) 8889-8 "Heart rate by Pulse oximetry" ``/min`` with
  8867-4 as a second coding (the R4 heart-rate profile asks for it), spo2 2708-6 ``%``,
  rr 9279-1 ``/min``; systolic and diastolic together
  as the blood-pressure panel 85354-9 with components 8480-6 and 8462-4 ``mm[Hg]``;
  mean pressure 8478-0 as its own Observation (the BP profile has no MAP component, and a
  MAP may come without a pair). A lone systolic or diastolic is its own Observation;
- ``effectiveDateTime`` is the device's measurement time, ``device.display`` the device id,
  ``identifier`` ``device_id/seq/signal`` traces the row back to the stored reading;
- ids are UUID v5 of those keys, so exporting the same session twice gives the same Bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from monitor.core.model import Reading, to_rfc3339
from monitor.records.report.common import ReportReading, epoch, normalise_readings
from monitor.records.report.fhir_common import LOINC, UCUM, category
from monitor.records.report.fhir_common import stable_uuid as _uuid
from monitor.records.report.fhir_protocol import protocol_entries

ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
VITALS_PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
READING_ID_SYSTEM: Final = "urn:vigil:reading"
SESSION_ID_SYSTEM: Final = "urn:vigil:session"


# signal -> (LOINC code, display, UCUM code, unit text, specific R4 vital-signs profile)
SIGNAL_CODES: Final[Mapping[str, tuple[str, str, str, str, str | None]]] = {
    "hr": ("8867-4", "Heart rate", "/min", "beats/minute", "heartrate"),
    "pr": ("8889-8", "Heart rate by Pulse oximetry", "/min", "beats/minute", "heartrate"),
    "spo2": ("2708-6", "Oxygen saturation in Arterial blood", "%", "%", "oxygensat"),
    "rr": ("9279-1", "Respiratory rate", "/min", "breaths/minute", "resprate"),
    "sbp": ("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg", None),
    "dbp": ("8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg", None),
    "map": ("8478-0", "Mean blood pressure", "mm[Hg]", "mmHg", None),
}
BP_PANEL: Final = ("85354-9", "Blood pressure panel with all children optional")


def _concept(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def _quantity(signal: str, value: float) -> dict[str, Any]:
    _, _, ucum, unit, _ = SIGNAL_CODES[signal]
    return {"value": value, "unit": unit, "system": UCUM, "code": ucum}


def _observation(
    key: tuple[object, ...],
    reading: ReportReading,
    label: str,
    subject: dict[str, Any],
    encounter: dict[str, Any],
    profile: str | None,
) -> tuple[str, dict[str, Any]]:
    obs_id = _uuid("observation", *key)
    profiles = [VITALS_PROFILE] + (
        [f"http://hl7.org/fhir/StructureDefinition/{profile}"] if profile else []
    )
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": profiles},
        "identifier": [
            {"system": READING_ID_SYSTEM, "value": f"{reading.device_id}/{reading.seq}/{label}"}
        ],
        "status": "final",
        "category": category("vital-signs", "Vital Signs"),
        "subject": subject,
        "encounter": encounter,
        "effectiveDateTime": to_rfc3339(reading.ts),
        "device": {"display": reading.device_id},
    }
    if reading.source == "nibp":
        resource["method"] = {"text": "non-invasive (cuff)"}
    return obs_id, resource


def report_fhir(
    session: Mapping[str, Any],
    readings: Iterable[Mapping[str, Any] | Reading],
    *,
    bed_label: str,
) -> dict[str, Any]:
    """A FHIR R4 Bundle (collection) of the session's vital signs, as a JSON-ready dict."""
    session_id = session.get("id")
    patient_id = _uuid("patient", session_id)
    encounter_id = _uuid("encounter", session_id)
    label = str(session.get("patient_label") or "")
    subject = {"reference": f"urn:uuid:{patient_id}", "display": label}
    encounter_ref = {"reference": f"urn:uuid:{encounter_id}"}

    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": SESSION_ID_SYSTEM, "value": str(session_id)}],
    }
    if label:
        patient["name"] = [{"text": label}]
    period: dict[str, str] = {}
    opened, ended = epoch(session.get("opened_at")), epoch(session.get("ended_at"))
    if opened is not None:
        period["start"] = str(to_rfc3339(opened))
    if ended is not None:
        period["end"] = str(to_rfc3339(ended))
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": encounter_id,
        "identifier": [{"system": SESSION_ID_SYSTEM, "value": str(session_id)}],
        "status": "finished" if ended is not None else "in-progress",
        "class": {"system": ACT_CODE_SYSTEM, "code": "AMB", "display": "ambulatory"},
        "subject": subject,
        "location": [{"location": {"display": bed_label}}],
    }
    if period:
        encounter["period"] = period

    entries: list[dict[str, Any]] = [
        {"fullUrl": f"urn:uuid:{patient_id}", "resource": patient},
        {"fullUrl": f"urn:uuid:{encounter_id}", "resource": encounter},
    ]
    for r in normalise_readings(readings):
        base_key = (session_id, r.device_id, r.seq)
        values = r.values
        paired = "sbp" in values and "dbp" in values
        for signal in ("hr", "pr", "spo2", "rr", "sbp", "dbp", "map"):
            if signal not in values:
                continue
            if paired and signal == "dbp":
                continue  # already a component of the panel made at "sbp"
            if paired and signal == "sbp":
                obs_id, obs = _observation((*base_key, "bp"), r, "bp", subject, encounter_ref, "bp")
                obs["code"] = _concept(*BP_PANEL)
                obs["component"] = [
                    {
                        "code": _concept(SIGNAL_CODES[s][0], SIGNAL_CODES[s][1]),
                        "valueQuantity": _quantity(s, values[s]),
                    }
                    for s in ("sbp", "dbp")
                ]
            else:
                code, display, _, _, profile = SIGNAL_CODES[signal]
                obs_id, obs = _observation(
                    (*base_key, signal), r, signal, subject, encounter_ref, profile
                )
                obs["code"] = _concept(code, display)
                if signal == "pr":
                    hr_code, hr_display = SIGNAL_CODES["hr"][:2]
                    obs["code"]["coding"].append(
                        {"system": LOINC, "code": hr_code, "display": hr_display}
                    )
                obs["valueQuantity"] = _quantity(signal, values[signal])
            entries.append({"fullUrl": f"urn:uuid:{obs_id}", "resource": obs})
    # Doses and sedation/dissociation scores (monitor.records.report.fhir_protocol).
    entries += protocol_entries(session, subject, encounter_ref)

    return {
        "resourceType": "Bundle",
        "id": _uuid("bundle", session_id),
        "identifier": {"system": SESSION_ID_SYSTEM, "value": str(session_id)},
        "type": "collection",
        "entry": entries,
    }
