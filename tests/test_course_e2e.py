"""A patient's course through the real server on both engines (docs/course.md): sessions
belong to a patient by ``patient_id``, never by label; each has its number in the course,
protocol, scores, peaks, lowest SpO2 and alarm count; questionnaires are validated and totalled
by the monitor."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.polling import poll
from tests.wsclient import Device


def _event(server: MonitorProcess, sid: int, kind: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind}
    if data is not None:
        body["data"] = data
    r = server.post(f"/api/sessions/{sid}/events", body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _session(
    server: MonitorProcess,
    bed: str,
    token: str,
    patient_id: str,
    frames: list[tuple[dict[str, float], str | None]],
    phq9: list[int],
    gad7: list[int] | None = None,
) -> dict[str, Any]:
    """Admit, send ``frames`` from the bed's device, record the questionnaires, end."""
    r = server.post(
        "/api/sessions", {"bed": bed, "patient_label": "J.S.", "patient_id": patient_id}
    )
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])

    async def send() -> None:
        async with Device(server.ws_url, f"{bed}-mon", token) as dev:
            base = int(time.time() * 1000)
            for i, (values, source) in enumerate(frames):
                ack = await dev.reading(base + i, values, time.time(), source)
                assert ack.get("type") == "ack", ack

    asyncio.run(send())
    obs: dict[str, Any] = {"phq9": phq9}
    if gad7 is not None:
        obs["gad7"] = gad7
    stored = _event(server, sid, "observation", obs)["events"][-1]["data"]
    assert stored["phq9_total"] == sum(phq9)
    _event(server, sid, "infusion_start")
    _event(server, sid, "infusion_stop")
    return _event(server, sid, "end")


def test_two_patients_sharing_a_label_have_their_own_courses(server: MonitorProcess) -> None:
    """Rule 1: "J.S." twice on one bed (patient A) and once on another (patient B): each
    course holds only its own sessions, numbered, with its peaks, lowest SpO2, alarm count,
    PHQ-9/GAD-7 totals and the responder rule."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"MRN-A-{tag}", f"MRN-B-{tag}"
    bed1, bed2 = f"c1-{tag}", f"c2-{tag}"
    tok1 = server.add_device(f"{bed1}-mon", bed1)
    tok2 = server.add_device(f"{bed2}-mon", bed2)

    calm = [({"hr": 72, "spo2": 97}, None), ({"sbp": 124, "dbp": 78}, "nibp")]
    first = _session(server, bed1, tok1, a, calm, [2] * 9, [2] * 7)
    assert first["patient_id"] == a and first["course"] == {"n": 1, "planned": 6}
    other = _session(
        server,
        bed2,
        tok2,
        b,
        [({"hr": 64, "spo2": 99}, None), ({"sbp": 110, "dbp": 70}, "nibp")],
        [3] * 9,
    )
    surge = [({"hr": 88, "spo2": 93}, None), ({"sbp": 205, "dbp": 104}, "nibp")]
    second = _session(server, bed1, tok1, a, surge, [1] * 9)
    assert second["course"] == {"n": 2, "planned": 6}

    course = poll(
        lambda: (c := server.get(f"/api/patients/{a}"))["sessions"][1]["alarms"] >= 1 and c
    )
    assert course, "the high systolic alarm was not counted"
    assert course["patient_id"] == a
    assert [s["id"] for s in course["sessions"]] == [first["id"], second["id"]]
    s1, s2 = course["sessions"]
    assert (s1["n"], s2["n"]) == (1, 2)
    assert s1["protocol"] == "basic" and s1["started_at"] == first["opened_at"]
    assert s1["ended_at"] == first["ended_at"]
    assert s1["scores"] == {"phq9": 18, "gad7": 14} and s2["scores"] == {"phq9": 9}
    assert (s1["responder"], s2["responder"]) == (False, True)
    assert s1["peak"] == {"sbp": 124, "dbp": 78, "hr": 72} and s1["min"] == {"spo2": 97}
    assert s2["peak"] == {"sbp": 205, "dbp": 104, "hr": 88} and s2["min"] == {"spo2": 93}
    assert s1["alarms"] == 0
    alarms = server.get("/api/alarms", bed=bed1)["alarms"]
    counted = [a for a in alarms if a["kind"] == "physiological" and a["priority"] != "low"]
    assert s2["alarms"] == len(counted) >= 1

    theirs = server.get(f"/api/patients/{b}")["sessions"]
    assert [(s["id"], s["n"], s["scores"]) for s in theirs] == [(other["id"], 1, {"phq9": 27})]
    listed = server.get("/api/sessions", patient_id=a)["sessions"]
    assert sorted(s["id"] for s in listed) == [first["id"], second["id"]]

    bundle = server.get(f"/api/patients/{a}/fhir.json")
    Bundle.model_validate(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == [
        "Patient",
        "Encounter",
        "Observation",
        "Observation",
        "Encounter",
        "Observation",
    ]
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == a
    totals = [
        e["resource"]["valueInteger"] for e in bundle["entry"] if "valueInteger" in e["resource"]
    ]
    assert totals == [18, 14, 9]
    session_bundle = server.get(f"/api/sessions/{second['id']}/report.fhir.json")
    Bundle.model_validate(session_bundle)
    assert {"system": "urn:vigil:patient", "value": a} in session_bundle["entry"][0]["resource"][
        "identifier"
    ]


def test_an_unknown_patient_is_404_and_a_malformed_id_422(server: MonitorProcess) -> None:
    """GET /api/patients/{patient_id}: the one error shape for both."""
    missing = http_client.get(
        f"{server.base_url}/api/patients/nobody-{uuid.uuid4().hex[:6]}", headers=server.headers
    )
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
    bad = http_client.get(f"{server.base_url}/api/patients/a%20b", headers=server.headers)
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "data",
    [
        {"phq9": [1] * 8},
        {"phq9": [1] * 10},
        {"phq9": [1] * 8 + [4]},
        {"phq9": [1] * 8 + [-1]},
        {"phq9": [1] * 8 + ["1"]},
        {"phq9": [1] * 8 + [True]},
        {"phq9": [1] * 8 + [1.5]},
        {"phq9": 9},
        {"gad7": [0] * 6},
        {"gad7": [0] * 6 + [7]},
        {"phq9_total": 12},
        {"moaas": "4"},
        {"moaas": True},
        {"cadss6": 25},
        {"sedation": "yes"},
        {"adverse_event": ""},
    ],
)
def test_a_questionnaire_or_scale_out_of_shape_is_a_422(
    server: MonitorProcess, data: dict[str, Any]
) -> None:
    """Scores are validated server-side: wrong counts, items outside 0-3, a client's own
    total, strings or booleans for scores all get the envelope's invalid_request."""
    r = server.post("/api/sessions/1/events", {"type": "observation", "data": data})
    assert r.status_code == 422, (data, r.text)
    detail = r.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert any(f["loc"][:3] == ["body", "observation", "data"] for f in detail["fields"]), detail


def test_the_rems_answers_and_questionnaires_are_stored_with_totals(
    server: MonitorProcess,
) -> None:
    """The observation kinds added for the course and the REMS form are accepted as given,
    questionnaires with the monitor's totals beside the items."""
    bed = f"o-{uuid.uuid4().hex[:8]}"
    server.add_device(f"{bed}-mon", bed)
    sid = server.post("/api/sessions", {"bed": bed, "patient_label": "O"}).json()["id"]
    for data, extra in (
        ({"gad7": [3, 3, 3, 3, 3, 3, 3]}, {"gad7_total": 21}),
        ({"phq9": [0] * 9, "note": "better"}, {"phq9_total": 0}),
        ({"sedation": True, "dissociation": False, "respiratory_depression": False}, {}),
        ({"serious_adverse_event": False, "adverse_event": "nausea, resolved"}, {}),
    ):
        stored = _event(server, sid, "observation", data)["events"][-1]["data"]
        assert stored == {**data, **extra}
