"""An impossible stored session history is isolated to its own bed (docs/reliability.md, "An
impossible session record is isolated"): the monitor starts, the ward is served, the session,
its report and /health name the offending event, and the bed is still judged on its readings.
On the app in this process (tests/inprocess.py), restarted as a new app on the same database;
the start of a monitor process over a bad record is pinned by test_startup_isolation_e2e.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from monitor.core.model import parse_rfc3339
from tests import http_client
from tests.browser_support import unique
from tests.conftest import MonitorProcess
from tests.factories import store_impossible_events
from tests.inprocess import in_process_server  # noqa: F401
from tests.polling import poll
from tests.wsclient import Device


@dataclass(frozen=True)
class Ward:
    bad_bed: str
    bad_session: int
    bad_event: int
    bad_at: float
    bad_device: str
    bad_token: str
    good_bed: str
    good_session: int


def _admit(srv: MonitorProcess, bed: str, label: str) -> int:
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": label})
    assert r.status_code in (200, 201), r.text
    sid = int(r.json()["id"])
    r = srv.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"})
    assert r.status_code == 200, r.text
    return sid


@pytest.fixture(scope="module")
def ward(server: MonitorProcess) -> Iterator[Ward]:
    """Two beds infusing; one's record then gets a second ``infusion_start`` written straight
    into the store (as a restored backup would), and the monitor is restarted over it."""
    bad_bed, good_bed = unique("bad-bed"), unique("good-bed")
    bad_device = unique("bad-mon")
    bad_token = server.add_device(bad_device, bad_bed)
    server.add_device(unique("good-mon"), good_bed)
    bad_session = _admit(server, bad_bed, "CD-34")
    good_session = _admit(server, good_bed, "EF-56")
    bad_at = time.time()
    [bad_event] = store_impossible_events(server.db_url, bad_session, [("infusion_start", bad_at)])
    server.stop()
    server.start()
    yield Ward(
        bad_bed, bad_session, bad_event, bad_at, bad_device, bad_token, good_bed, good_session
    )


def _problem_of(ward: Ward, problem: dict[str, Any] | None) -> None:
    assert problem is not None
    assert problem["event_id"] == ward.bad_event
    assert problem["type"] == "infusion_start"
    assert isinstance(problem["at"], str) and problem["at"].endswith("Z")
    assert "infusion_start does not fit" in problem["message"]


def test_the_monitor_starts_over_an_impossible_record_and_health_names_it(
    server: MonitorProcess, ward: Ward
) -> None:
    """The monitor starts whatever the record holds; /health stays 200 and ok for the pipeline
    and lists the record needing attention; the log names the bed once (docs/reliability.md)."""
    r = http_client.get(f"{server.base_url}/health", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["failing"] == []
    found = [x for x in body["records_needing_attention"] if x["session"] == ward.bad_session]
    assert found == [
        {
            "bed": ward.bad_bed,
            "session": ward.bad_session,
            "event_id": ward.bad_event,
            "message": found[0]["message"],
        }
    ]
    assert "infusion_start does not fit" in found[0]["message"]
    assert not [x for x in body["records_needing_attention"] if x["bed"] == ward.good_bed]
    lines = [ln for ln in server.log_text().splitlines() if "could not rebuild" in ln]
    assert len(lines) == 1 and ward.bad_bed in lines[0]
    # One line per start, naming the beds: not one per bed.
    assert ward.good_bed not in lines[-1]


def test_the_ward_is_served_with_the_bad_bed_flagged_and_the_others_as_usual(
    server: MonitorProcess, ward: Ward
) -> None:
    """GET /api/beds answers 200: the bad bed carries ``record_problem`` naming the event, the
    other bed its session as usual (docs/api.md, beds)."""
    beds = {b["id"]: b for b in server.get("/api/beds")}
    bad, good = beds[ward.bad_bed], beds[ward.good_bed]
    _problem_of(ward, bad["record_problem"])
    assert bad["session"]["id"] == ward.bad_session
    _problem_of(ward, bad["session"]["record_problem"])
    # The state up to the last event that fit: the first infusion_start, running.
    assert bad["session"]["infusion_running"] is True
    assert good["record_problem"] is None
    assert good["session"]["id"] == ward.good_session
    assert good["session"]["record_problem"] is None
    assert good["session"]["phase"] == "infusion" and good["session"]["infusion_running"]


def test_the_session_and_its_reports_are_served_flagged(server: MonitorProcess, ward: Ward) -> None:
    """The session GET answers 200 with ``record_problem``; its report in every form 200."""
    body = server.get(f"/api/sessions/{ward.bad_session}")
    _problem_of(ward, body["record_problem"])
    assert [e["id"] for e in body["events"]][-1] == ward.bad_event
    assert server.get(f"/api/sessions/{ward.good_session}")["record_problem"] is None
    listed = server.get("/api/sessions", bed=ward.bad_bed)["sessions"]
    _problem_of(ward, listed[0]["record_problem"])
    for tail in ("report", "report.csv", "report.fhir.json"):
        r = http_client.get(
            f"{server.base_url}/api/sessions/{ward.bad_session}/{tail}",
            headers=server.headers,
            timeout=10,
        )
        assert r.status_code == 200, (tail, r.text[:500])
        if tail == "report":
            assert f"Record needs attention:</b> stored event {ward.bad_event} " in r.text


async def test_the_bed_with_the_bad_record_is_still_judged_on_its_readings(
    server: MonitorProcess, ward: Ward
) -> None:
    """Its readings raise alarms under the phase of the events up to the offending one (the
    infusion's), for its session (docs/reliability.md)."""
    session = server.get(f"/api/sessions/{ward.bad_session}")
    # Measured in the session's span, during its (first, valid) infusion.
    t0 = parse_rfc3339(session["infusion_started_at"]) + 0.5
    async with Device(server.ws_url, ward.bad_device, ward.bad_token) as dev:
        for i in range(20):
            ack = await dev.reading(i + 1, {"spo2": 82.0}, ts=t0 + i)
            assert ack["type"] == "ack", ack

    def spo2_alarms() -> list[dict[str, Any]]:
        return [
            a
            for a in server.get("/api/alarms", bed=ward.bad_bed, active="true")["alarms"]
            if a["signal"] == "spo2"
        ]

    alarms = poll(spo2_alarms)
    assert alarms[0]["session_id"] == ward.bad_session


def test_the_limits_of_a_session_whose_record_needs_attention_can_still_be_changed(
    server: MonitorProcess, ward: Ward
) -> None:
    """A charge nurse may still set the limits the bed is judged by; the bed stays flagged and
    the rest of the ward is served (docs/reliability.md, "Alarms go on")."""
    r = http_client.put(
        f"{server.base_url}/api/sessions/{ward.bad_session}/limits",
        json={"overrides": {"spo2": {"low": {"medium": 88}}}, "reason": "COPD, known low"},
        headers=server.headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["overrides"]["spo2"]["low"]["medium"] == 88
    beds = {b["id"]: b for b in server.get("/api/beds")}
    _problem_of(ward, beds[ward.bad_bed]["record_problem"])
    assert beds[ward.good_bed]["record_problem"] is None
    health = http_client.get(f"{server.base_url}/health", timeout=10).json()
    assert [x["session"] for x in health["records_needing_attention"]] == [ward.bad_session]
