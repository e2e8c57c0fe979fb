"""Sessions through the real server (contract: POST/GET /api/sessions, events, 409s)."""

from __future__ import annotations

import time

from monitor.core.model import parse_rfc3339, to_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, measure_after


def admit(server: MonitorProcess, bed: str, **extra: object) -> dict:
    server.add_device(f"{bed}-mon", bed)
    r = server.post("/api/sessions", {"bed": bed, "patient_label": "P-1", "age": 54, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_admit_opens_a_session_in_baseline(server: MonitorProcess) -> None:
    """Admitting a patient opens a session in phase baseline, listed as the bed's open one."""
    s = admit(server, "s-bed-1")
    assert s["phase"] == "baseline" and s["bed"] == "s-bed-1" and s["infusion_elapsed_s"] == 0
    listed = server.get("/api/sessions", bed="s-bed-1", open="true")["sessions"]
    assert [x["id"] for x in listed] == [s["id"]]
    assert server.get(f"/api/sessions/{s['id']}")["patient_label"] == "P-1"


def test_a_bed_has_at_most_one_open_session(server: MonitorProcess) -> None:
    """A second admission to a bed with an open session gets 409."""
    admit(server, "s-bed-2")
    r = server.post("/api/sessions", {"bed": "s-bed-2", "patient_label": "P-2"})
    assert r.status_code == 409


def test_admission_to_an_unknown_bed_is_404(server: MonitorProcess) -> None:
    """Beds come from device registration; an unknown bed is not invented."""
    assert server.post("/api/sessions", {"bed": "nowhere", "patient_label": "P"}).status_code == 404


def test_phase_events_move_the_session_and_misfits_get_409(server: MonitorProcess) -> None:
    """infusion_start/pause/resume/stop/end change the phase; a misfit gets 409 with a reason."""
    s = admit(server, "s-bed-3")
    sid = s["id"]
    bad = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_stop"})
    assert bad.status_code == 409 and "baseline" in bad.json()["detail"]["message"]
    s = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"}).json()
    assert s["phase"] == "infusion" and s["infusion_running"] is True
    s = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_pause"}).json()
    assert s["infusion_running"] is False
    s = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_resume"}).json()
    s = server.post(
        f"/api/sessions/{sid}/events", {"type": "observation", "data": {"moaas": 4}}
    ).json()
    s = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_stop"}).json()
    assert s["phase"] == "recovery"
    s = server.post(f"/api/sessions/{sid}/events", {"type": "end"}).json()
    assert s["phase"] == "ended" and s["ended_at"] is not None
    assert [e["type"] for e in s["events"]] == [
        "infusion_start",
        "infusion_pause",
        "infusion_resume",
        "observation",
        "infusion_stop",
        "end",
    ]
    assert s["events"][3]["data"] == {"moaas": 4} and s["events"][3]["by"] == "admin"
    assert server.post(f"/api/sessions/{sid}/events", {"type": "observation"}).status_code == 409
    # Once ended, the bed can take the next patient.
    assert (
        server.post("/api/sessions", {"bed": "s-bed-3", "patient_label": "P-9"}).status_code == 201
    )


def test_infusion_timer_counts_from_the_event_time(server: MonitorProcess) -> None:
    """An event dated in the past (at) sets the timer from that moment."""
    s = admit(server, "s-bed-4")
    at = to_rfc3339(time.time() - 600)
    s = server.post(f"/api/sessions/{s['id']}/events", {"type": "infusion_start", "at": at}).json()
    assert 595 <= s["infusion_elapsed_s"] <= 630


async def test_readings_measured_in_the_open_session_are_its_readings(
    server: MonitorProcess,
) -> None:
    """A reading measured after admission is the open session's; one measured before it is
    the bed's only, though it arrived during the session (docs/reliability.md)."""
    token = server.add_device("s-bed-5-mon", "s-bed-5")
    s = server.post("/api/sessions", {"bed": "s-bed-5", "patient_label": "P"}).json()
    opened = parse_rfc3339(s["opened_at"])
    async with Device(server.ws_url, "s-bed-5-mon", token) as dev:
        assert (await dev.reading(1, {"hr": 80}, ts=measure_after(opened)))["type"] == "ack"
        assert (await dev.reading(2, {"hr": 81}, ts=opened - 30))["type"] == "ack"
    assert [r["seq"] for r in server.get("/api/readings", session=s["id"])["readings"]] == [1]
    assert [r["seq"] for r in server.get("/api/readings", bed="s-bed-5")["readings"]] == [2, 1]


async def test_baseline_is_taken_from_the_baseline_phase(server: MonitorProcess) -> None:
    """Without an entered baseline, infusion_start sets it from the baseline phase's readings."""
    token = server.add_device("s-bed-6-mon", "s-bed-6")
    s = server.post("/api/sessions", {"bed": "s-bed-6", "patient_label": "P"}).json()
    opened = parse_rfc3339(s["opened_at"])  # the baseline phase's readings come after it
    async with Device(server.ws_url, "s-bed-6-mon", token) as dev:
        for i, hr in enumerate([70, 72, 74]):
            assert (await dev.reading(i + 1, {"hr": hr}, ts=measure_after(opened)))["type"] == "ack"
        cuff = {"sbp": 120, "dbp": 80, "map": 93}
        assert (await dev.reading(9, cuff, ts=measure_after(opened), source="nibp"))[
            "type"
        ] == "ack"
    s = server.post(f"/api/sessions/{s['id']}/events", {"type": "infusion_start"}).json()
    assert s["baseline"]["hr"] == 72 and s["baseline"]["sbp"] == 120


def test_bad_session_input_gets_422(server: MonitorProcess) -> None:
    """Unknown fields, out-of-range baselines and unknown event types are refused cleanly."""
    server.add_device("s-bed-7-mon", "s-bed-7")
    assert server.post("/api/sessions", {"bed": "s-bed-7", "patient_label": ""}).status_code == 422
    assert (
        server.post(
            "/api/sessions", {"bed": "s-bed-7", "patient_label": "P", "baseline": {"hr": 999}}
        ).status_code
        == 422
    )
    assert (
        server.post("/api/sessions", {"bed": "s-bed-7", "patient_label": "P", "x": 1}).status_code
        == 422
    )
    s = server.post("/api/sessions", {"bed": "s-bed-7", "patient_label": "P"}).json()
    assert server.post(f"/api/sessions/{s['id']}/events", {"type": "dance"}).status_code == 422
    assert (
        server.post(
            f"/api/sessions/{s['id']}/events", {"type": "infusion_start", "at": "soon"}
        ).status_code
        == 422
    )
    assert server.get(f"/api/sessions/{s['id']}")["phase"] == "baseline"


async def test_session_limits_can_be_overridden_within_clinic_bounds(
    server: MonitorProcess,
) -> None:
    """PUT limits within bounds changes the limits in force (and the alarms); outside is 422."""
    token = server.add_device("s-bed-8-mon", "s-bed-8")
    s = server.post("/api/sessions", {"bed": "s-bed-8", "patient_label": "P"}).json()
    limits = server.get(f"/api/sessions/{s['id']}/limits")
    assert limits["limits"]["spo2"]["low"]["medium"] == 90
    r = http_client.put(
        f"{server.base_url}/api/sessions/{s['id']}/limits",
        json={"overrides": {"spo2": {"low": {"medium": 88}}}},
        headers=server.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["limits"]["spo2"]["low"]["medium"] == 88
    bad = http_client.put(
        f"{server.base_url}/api/sessions/{s['id']}/limits",
        json={"overrides": {"spo2": {"low": {"medium": 50}}}},
        headers=server.headers,
    )
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert [f["loc"] for f in detail["fields"]] == [["body", "overrides", "spo2", "low", "medium"]]
    # SpO2 89 for 20 s, measured within the session: no alarm under the 88 override.
    t0 = time.time()
    async with Device(server.ws_url, "s-bed-8-mon", token) as dev:
        for i in range(20):
            assert (await dev.reading(i + 1, {"spo2": 89}, ts=t0 + i))["type"] == "ack"
    assert [
        a for a in server.get("/api/alarms", bed="s-bed-8")["alarms"] if a["signal"] == "spo2"
    ] == []
