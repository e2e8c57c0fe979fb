"""The FHIR session export (report.fhir.json): an R4 Bundle of vital-signs Observations."""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.model import to_rfc3339
from monitor.records.report import report_fhir
from tests.factories import T0, make_reading, make_session_json
from tests.strategies import signal_values

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def loinc(obs: dict[str, Any]) -> str:
    return obs["code"]["coding"][0]["code"]


def export(readings: list[Any], **kw: Any) -> dict[str, Any]:
    session = make_session_json(
        session_id=7, patient_label="Chair-3 patient", phase_events=[("end", 3600.0)], **kw
    )
    bundle = report_fhir(session, readings, bed_label="Chair 3")
    Bundle.model_validate(bundle)  # R4 (R4B models), not R5: stack-notes.md
    return bundle


def test_bundle_is_a_valid_r4_collection_with_patient_and_encounter() -> None:
    """Contract: a FHIR R4 Bundle; the session is an Encounter at the bed, for one Patient."""
    bundle = export([make_reading({"hr": 70.0}, ts=T0 + 5)])
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient", "Encounter", "Observation"]
    patient, encounter = bundle["entry"][0], bundle["entry"][1]["resource"]
    assert patient["resource"]["name"] == [{"text": "Chair-3 patient"}]
    assert encounter["location"] == [{"location": {"display": "Chair 3"}}]
    assert encounter["status"] == "finished"
    assert encounter["period"] == {"start": to_rfc3339(T0), "end": to_rfc3339(T0 + 3600)}
    (obs,) = observations(bundle)
    assert obs["subject"]["reference"] == patient["fullUrl"]
    assert obs["encounter"]["reference"] == bundle["entry"][1]["fullUrl"]


def test_each_continuous_value_is_an_observation_with_loinc_and_ucum() -> None:
    """docs/integration.md: hr 8867-4 /min, spo2 2708-6 %, rr 9279-1 /min, category vital-signs."""
    bundle = export([make_reading({"hr": 78.0, "spo2": 97.5, "rr": 14.0}, ts=T0 + 1, seq=3)])
    got = {
        loinc(o): (
            o["valueQuantity"]["value"],
            o["valueQuantity"]["system"],
            o["valueQuantity"]["code"],
        )
        for o in observations(bundle)
    }
    assert got == {
        "8867-4": (78.0, UCUM, "/min"),
        "2708-6": (97.5, UCUM, "%"),
        "9279-1": (14.0, UCUM, "/min"),
    }
    for o in observations(bundle):
        assert o["category"][0]["coding"][0]["code"] == "vital-signs"
        assert o["status"] == "final"
        assert o["effectiveDateTime"] == to_rfc3339(T0 + 1)
        assert o["device"] == {"display": "dev-1"}
        assert o["identifier"][0]["value"].startswith("dev-1/3/")


def test_cuff_triple_is_a_bp_panel_plus_a_mean_observation() -> None:
    """BP: panel 85354-9 with components 8480-6/8462-4; mean 8478-0 is its own Observation."""
    bundle = export([make_reading({"sbp": 128.0, "dbp": 82.0, "map": 97.0}, ts=T0 + 30)])
    panel, mean = observations(bundle)
    assert loinc(panel) == "85354-9"
    assert "valueQuantity" not in panel
    assert [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in panel["component"]
    ] == [("8480-6", 128.0, "mm[Hg]"), ("8462-4", 82.0, "mm[Hg]")]
    assert loinc(mean) == "8478-0"
    assert mean["valueQuantity"]["value"] == 97.0
    assert panel["method"] == {"text": "non-invasive (cuff)"}


def test_a_lone_systolic_is_its_own_observation() -> None:
    """Without a diastolic there is no panel to build: 8480-6 stands alone."""
    (obs,) = observations(export([make_reading({"sbp": 120.0}, ts=T0)]))
    assert loinc(obs) == "8480-6"
    assert obs["valueQuantity"]["value"] == 120.0


def test_export_is_deterministic_and_json_serialisable() -> None:
    """The same session exported twice is the same document (stable ids)."""
    readings = [make_reading(ts=T0 + i, seq=i) for i in range(5)]
    a, b = export(readings), export(readings)
    assert orjson.dumps(a) == orjson.dumps(b)
    ids = [e["fullUrl"] for e in a["entry"]]
    assert len(ids) == len(set(ids)) == 2 + 5 * 3


def test_an_open_session_without_readings_is_still_a_valid_bundle() -> None:
    """Export works mid-session: Encounter in-progress, no Observations."""
    session = make_session_json(session_id=9)
    bundle = report_fhir(session, [], bed_label="Chair 9")
    Bundle.model_validate(bundle)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Encounter"]
    assert bundle["entry"][1]["resource"]["status"] == "in-progress"


@settings(max_examples=25, deadline=None)
@given(st.lists(signal_values, min_size=1, max_size=4))
def test_any_stored_readings_export_to_a_valid_bundle_with_every_value(
    value_sets: list[dict[str, float]],
) -> None:
    """Every value of every reading appears once, and the Bundle validates as R4."""
    readings = [make_reading(v, ts=T0 + i, seq=i) for i, v in enumerate(value_sets)]
    bundle = export(readings)
    exported = []
    for o in observations(bundle):
        parts = o.get("component", [o])
        exported += [(p["code"]["coding"][0]["code"], p["valueQuantity"]["value"]) for p in parts]
    codes = {
        "hr": "8867-4",
        "pr": "8889-8",
        "spo2": "2708-6",
        "rr": "9279-1",
        "sbp": "8480-6",
        "dbp": "8462-4",
        "map": "8478-0",
    }
    expected = [(codes[k], v) for values in value_sets for k, v in values.items()]
    assert sorted(exported) == sorted(expected)


def test_pulse_rate_is_loinc_8889_8_and_still_a_heart_rate_vital_sign() -> None:
    """docs/integration.md: pr is 8889-8 "Heart rate by Pulse oximetry" /min, with 8867-4 as
    a second coding so the R4 heart-rate profile holds; hr stays 8867-4 alone."""
    bundle = export([make_reading({"hr": 80.0, "pr": 62.0}, ts=T0 + 1, seq=3)])
    by_value = {o["valueQuantity"]["value"]: o for o in observations(bundle)}
    pulse, heart = by_value[62.0], by_value[80.0]
    assert [c["code"] for c in pulse["code"]["coding"]] == ["8889-8", "8867-4"]
    assert pulse["code"]["text"] == "Heart rate by Pulse oximetry"
    assert pulse["valueQuantity"]["code"] == "/min"
    assert [c["code"] for c in heart["code"]["coding"]] == ["8867-4"]
