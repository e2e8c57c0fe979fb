"""The protocol's record through the real server on both engines (docs/protocols.md "Report
and FHIR", "Doses", "Checkpoints that alarm"): the report and FHIR bundle of a whole
esketamine session, the pause's reason, the bed's audio pause over checkpoint alarms, and
the stale-cuff rule in recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation

from monitor.core.model import to_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess, clinic_config, post_event, start_in_process
from tests.factories import ESKETAMINE_CHECKLIST
from tests.polling import poll
from tests.wsclient import send_frames

PASSWORD = "correct horse battery"
# Short times so that the server's clock gets there within a test (docs/protocols.md):
# seconds where a clinic's protocol has minutes, judged by a ticker 5x the shipped rate.
TICK = {"tick_interval_s": 0.2}
QUICK = {
    "label": "Quick records protocol",
    "checklist": [{"id": "consent", "label": "Consent", "kind": "confirm"}],
    "predose_bp": {"required": True, "sbp": 140, "dbp": 90},
    "phases": {"recovery": {"stale_cuff_min": 0.025}},
    "checkpoints": [
        {
            "id": "moaas-1s",
            "kind": "moaas",
            "anchor": "infusion_start",
            "offset_min": 0.02,
            "window_min": 0.01,
        }
    ],
}


@pytest.fixture(scope="module")
def rsrv(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """The monitor app (in this process) with the shipped protocols and a quick one, on both
    engines."""
    tmp = tmp_path_factory.mktemp("records")
    path = clinic_config(tmp, lambda data: data["protocols"].update(quick=QUICK))
    proc = start_in_process(db_url, tmp, {"clinic_config": path, **TICK})
    proc.add_user("r-charge", "charge", PASSWORD)
    try:
        yield proc
    finally:
        proc.stop()


def _ok(srv: MonitorProcess, sid: int, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    r = post_event(srv, sid, body, **kw)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _send(
    srv: MonitorProcess, bed: str, token: str, frames: list[tuple[int, dict[str, float], float]]
) -> None:
    """Cuff readings from the bed's device."""
    send_frames(srv.ws_url, f"{bed}-mon", token, [(*f, "nibp") for f in frames])


def _admit(
    srv: MonitorProcess, bed: str, protocol: str, at: float | None = None
) -> tuple[int, str]:
    token = srv.add_device(f"{bed}-mon", bed)
    body: dict[str, Any] = {"bed": bed, "patient_label": "P", "protocol": protocol}
    if at is not None:
        body["at"] = to_rfc3339(at)
    r = srv.post("/api/sessions", body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), token


def test_a_whole_esketamine_session_is_in_the_report_and_the_fhir_bundle(
    rsrv: MonitorProcess,
) -> None:
    """docs/protocols.md "Report and FHIR": the stored record of an esketamine session
    (entered with its own times) comes out in the report in plain words, with who and why,
    and in the FHIR bundle as MedicationAdministrations and scale Observations."""
    bed = "rec-bed-1"
    t0 = time.time() - 3600
    sid, token = _admit(rsrv, bed, "esketamine", at=t0)
    charge = {"Authorization": f"Bearer {rsrv.login('r-charge', PASSWORD)}"}
    at = lambda s: to_rfc3339(t0 + s)  # noqa: E731 - the session's own clock
    _ok(rsrv, sid, {"type": "checklist", "at": at(60), "data": ESKETAMINE_CHECKLIST})
    _send(rsrv, bed, token, [(1, {"sbp": 150, "dbp": 92, "map": 111}, t0 + 200)])
    decision = {"prescriber": "Dr Rao", "reason": "treated hypertension"}
    _ok(rsrv, sid, {"type": "infusion_start", "at": at(300), "data": decision})
    _ok(rsrv, sid, {"type": "dose", "at": at(310), "data": {"lot": "E-9"}})
    pause = {"type": "infusion_pause", "at": at(400), "data": {"reason": "patient coughing"}}
    _ok(rsrv, sid, pause)
    _ok(rsrv, sid, {"type": "infusion_resume", "at": at(500)})
    _ok(rsrv, sid, {"type": "dose", "at": at(620), "data": {"lot": "E-9"}})
    _ok(rsrv, sid, {"type": "infusion_stop", "at": at(800)})
    _send(rsrv, bed, token, [(2, {"sbp": 128, "dbp": 82, "map": 97}, t0 + 2750)])
    _ok(rsrv, sid, {"type": "observation", "at": at(3400), "data": {"moaas": 4, "cadss6": 3}})
    why = "transferred to the emergency department"
    end = {"type": "end", "data": {"override_reason": why}}
    assert _ok(rsrv, sid, end, headers=charge)["phase"] == "ended"

    r = http_client.get(
        f"{rsrv.base_url}/api/sessions/{sid}/report", headers=rsrv.headers, timeout=10
    )
    assert r.status_code == 200
    page = r.text
    section = page[page.index("<h2>Protocol: Intranasal esketamine (REMS)</h2>") :]
    section = section[: section.index("<h2>", 4)]
    for text in (
        "Dr Rao: treated hypertension",
        "device 1: 28 mg (total so far 28 mg); lot <b>E-9</b>",
        "device 2: 28 mg (total so far 56 mg)",
        "reason: patient coughing",
        "cuff 128/82 mmHg (mean 97) measured",
        "Late</span>",
        "Discharged before the criteria were met</b> by r-charge",
        f"Reason: {why}.",
        "Dosing despite a high pre-dose blood pressure",
    ):
        assert text in section, text
    assert "too soon: the minimum observation time had not passed" in section
    assert "too_soon" not in section and "bp-40" not in section

    r = http_client.get(
        f"{rsrv.base_url}/api/sessions/{sid}/report.fhir.json", headers=rsrv.headers, timeout=10
    )
    bundle = r.json()
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    given = [x for x in resources if x["resourceType"] == "MedicationAdministration"]
    for x in given:
        MedicationAdministration.model_validate(x)
    assert [(g["effectiveDateTime"], g["dosage"]["dose"]["value"]) for g in given] == [
        (at(310), 28),
        (at(620), 28),
    ]
    assert {g["contained"][0]["batch"]["lotNumber"] for g in given} == {"E-9"}
    scores = [x for x in resources if x["resourceType"] == "Observation" and "valueInteger" in x]
    for x in scores:
        Observation.model_validate(x)
    assert sorted((x["code"]["coding"][0]["code"], x["valueInteger"]) for x in scores) == [
        ("cadss6", 3),
        ("moaas", 4),
    ]


@pytest.mark.parametrize("reason", ["", 3, None, "x" * 1001])
def test_a_pause_reason_that_is_not_text_is_refused_with_422(
    rsrv: MonitorProcess, reason: object
) -> None:
    """docs/protocols.md "Doses": infusion_pause's reason is non-empty text of at most 1000
    characters; anything else gets 422 and nothing is stored."""
    bed = f"rec-pause-{abs(hash(repr(reason))) % 100000}"
    sid, _ = _admit(rsrv, bed, "basic")
    _ok(rsrv, sid, {"type": "infusion_start"})
    r = post_event(rsrv, sid, {"type": "infusion_pause", "data": {"reason": reason}})
    if reason is None:
        # null is "not given": a pause needs no reason.
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 422, r.text
    assert [f["loc"][-2:] for f in r.json()["detail"]["fields"]] == [["data", "reason"]]
    events = rsrv.get(f"/api/sessions/{sid}")["events"]
    assert [e["type"] for e in events] == ["infusion_start"]


def _dose_quick(srv: MonitorProcess, bed: str, token: str, sid: int) -> None:
    _ok(srv, sid, {"type": "checklist", "data": {"consent": True}})
    _send(srv, bed, token, [(1, {"sbp": 124, "dbp": 78, "map": 93}, time.time())])
    _ok(srv, sid, {"type": "infusion_start"})


def _alarms(srv: MonitorProcess, bed: str, signal: str) -> list[dict[str, Any]]:
    return [a for a in srv.get("/api/alarms", bed=bed)["alarms"] if a["signal"] == signal]


def test_the_bed_s_audio_pause_silences_its_checkpoint_alarm_until_it_runs_out(
    rsrv: MonitorProcess,
) -> None:
    """docs/protocols.md "Checkpoints that alarm": the bed's audio pause covers its live
    checkpoint alarms as the engine's, stored and shown, and runs out on the server clock."""
    bed = "rec-bed-2"
    sid, token = _admit(rsrv, bed, "quick")
    _dose_quick(rsrv, bed, token, sid)
    alarm = poll(lambda: next(iter(a for a in _alarms(rsrv, bed, "checkpoint")), None))
    r = rsrv.post(f"/api/beds/{bed}/audio-pause", {"seconds": 3})
    assert r.status_code == 200, r.text
    paused = {a["id"]: a for a in r.json()["alarms"]}
    assert alarm["id"] in paused and paused[alarm["id"]]["audio_paused_until"] is not None
    assert r.json()["audio_paused_until"] == paused[alarm["id"]]["audio_paused_until"]
    (stored,) = [a for a in _alarms(rsrv, bed, "checkpoint") if a["id"] == alarm["id"]]
    assert stored["audio_paused_until"] == paused[alarm["id"]]["audio_paused_until"]
    beds = {b["id"]: b for b in rsrv.get("/api/beds")}
    shown = {a["id"]: a for a in beds[bed]["alarms"]}
    assert shown[alarm["id"]]["audio_paused_until"] is not None
    # The pause runs out: the alarm sounds again, still live, same id.
    resumed = poll(
        lambda: next(
            (
                a
                for a in _alarms(rsrv, bed, "checkpoint")
                if a["id"] == alarm["id"] and a["audio_paused_until"] is None
            ),
            None,
        )
    )
    assert resumed["ended_at"] is None and resumed["state"] == "active"


def test_the_stale_cuff_alarm_rises_in_recovery_on_the_protocol_s_time(
    rsrv: MonitorProcess,
) -> None:
    """docs/protocols.md "Checkpoints that alarm": the stale-cuff rule covers recovery with
    the protocol's stale_cuff_min (1.5 s here); a cuff reading ends the alarm."""
    bed = "rec-bed-3"
    sid, token = _admit(rsrv, bed, "quick")
    _dose_quick(rsrv, bed, token, sid)
    assert _alarms(rsrv, bed, "nibp") == []
    _ok(rsrv, sid, {"type": "infusion_stop"})
    alarm = poll(lambda: next(iter(_alarms(rsrv, bed, "nibp")), None))
    assert (alarm["kind"], alarm["priority"]) == ("technical", "low")
    assert alarm["condition"] == "no cuff pressure for 0.025 min"
    assert alarm["session_id"] == sid and alarm["ended_at"] is None
    _send(rsrv, bed, token, [(2, {"sbp": 122, "dbp": 79, "map": 93}, time.time())])
    ended = poll(
        lambda: next(
            (a for a in _alarms(rsrv, bed, "nibp") if a["id"] == alarm["id"] and a["ended_at"]),
            None,
        )
    )
    assert ended["state"] == "ended"
