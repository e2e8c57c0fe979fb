"""Protocols through the real server on both engines (docs/protocols.md): the list, the
checklist, the pre-dose gate and its 409 codes, checkpoints satisfied by the cuff, overdue
checkpoint alarms and the discharge gate with its charge-nurse override."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.core.model import parse_rfc3339, to_rfc3339
from tests.conftest import MonitorProcess, clinic_config, post_event, start_in_process
from tests.factories import ESKETAMINE_CHECKLIST, TEST_CHECKLIST
from tests.polling import poll
from tests.wsclient import send_frames

PASSWORD = "correct horse battery"
CHECKLIST = {
    "consent": True,
    "escort": True,
    "weight_kg": 71.5,
    "last_food": "2026-09-21T06:00:00Z",
    "medications": "none",
}
# Short offsets so that the server's clock gets there within a test (docs/protocols.md):
# seconds where a clinic's protocol has minutes, and a ticker 5x the shipped rate, so the
# overdue, restored and eligible states are reached in about two seconds, not ten.
MOAAS_DUE_S = 1.5
MOAAS_WINDOW_S = 0.75
DISCHARGE_AFTER_S = 1.5
TICK = {"tick_interval_s": 0.2}
QUICK = {
    "label": "Quick test protocol",
    "checklist": TEST_CHECKLIST,
    "predose_bp": {"required": True, "sbp": 140, "dbp": 90},
    "dosing": {"drug": "ketamine", "route": "iv", "weight_item": "weight_kg"},
    # A tighter systolic limit while dosing runs (within the clinic's override bounds).
    "phases": {"infusion": {"limits": {"sbp": {"high": {"medium": 150}}}}},
    "checkpoints": [
        {
            "id": "bp-30s",
            "kind": "bp",
            "anchor": "infusion_start",
            "offset_min": 0.5,
            "window_min": 0.25,
        },
        {
            "id": "moaas-2s",
            "kind": "moaas",
            "anchor": "infusion_start",
            "offset_min": MOAAS_DUE_S / 60,
            "window_min": MOAAS_WINDOW_S / 60,
        },
    ],
    "discharge": {
        "after": {"anchor": "infusion_start", "min": DISCHARGE_AFTER_S / 60},
        "bp": {"sbp": [90, 140], "dbp": [50, 90]},
        "spo2_above": 92,
        "hr": [50, 110],
        "moaas": 5,
        "escort_item": "escort",
    },
}


def _with_quick(data: dict[str, Any]) -> None:
    data["protocols"]["quick"] = QUICK


@pytest.fixture(scope="module")
def psrv(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """The monitor app (in this process) with the shipped protocols and a quick one, on both
    engines."""
    tmp = tmp_path_factory.mktemp("protocols")
    proc = start_in_process(db_url, tmp, {"clinic_config": clinic_config(tmp, _with_quick), **TICK})
    proc.add_user("p-nurse", "nurse", PASSWORD)
    proc.add_user("p-charge", "charge", PASSWORD)
    try:
        yield proc
    finally:
        proc.stop()


def _as(srv: MonitorProcess, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.login(user, PASSWORD)}"}


def _admit(srv: MonitorProcess, bed: str, protocol: str | None = "quick") -> tuple[int, str]:
    token = srv.add_device(f"{bed}-mon", bed)
    body: dict[str, Any] = {"bed": bed, "patient_label": "P"}
    if protocol is not None:
        body["protocol"] = protocol
    r = srv.post("/api/sessions", body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), token


def _send(
    srv: MonitorProcess,
    bed: str,
    token: str,
    frames: list[tuple[int, dict[str, float], float, str | None]],
) -> None:
    send_frames(srv.ws_url, f"{bed}-mon", token, frames)


def _dose(srv: MonitorProcess, bed: str, token: str, sid: int) -> float:
    """Fill the checklist, take a normal pre-dose cuff BP and start dosing; the dosing time."""
    assert post_event(srv, sid, {"type": "checklist", "data": CHECKLIST}).status_code == 200
    _send(srv, bed, token, [(1, {"sbp": 124, "dbp": 78, "map": 93}, time.time(), "nibp")])
    r = post_event(srv, sid, {"type": "infusion_start"})
    assert r.status_code == 200, r.text
    return parse_rfc3339(r.json()["infusion_started_at"])


def test_the_clinic_protocols_are_listed_with_their_rules(psrv: MonitorProcess) -> None:
    """docs/protocols.md: GET /api/protocols gives each protocol's checklist, checkpoints and
    discharge rules; esketamine's 40-min bp checkpoint and 120-min discharge among them."""
    protocols = {p["id"]: p for p in psrv.get("/api/protocols")}
    assert {"basic", "iv-ketamine", "esketamine", "quick"} <= set(protocols)
    esk = protocols["esketamine"]
    assert esk["label"] and esk["checklist"] and esk["discharge"]["after"]["min"] == 120
    assert any(c["kind"] == "bp" and c["offset_min"] == 40 for c in esk["checkpoints"])
    assert [p for p in protocols.values() if p["default"]] == [protocols["basic"]]


def test_a_session_runs_the_default_protocol_unless_it_names_one(psrv: MonitorProcess) -> None:
    """docs/protocols.md: POST /api/sessions takes an optional protocol; the default gates
    nothing, and an unknown protocol is refused."""
    sid, _ = _admit(psrv, "pr-bed-1", protocol=None)
    s = psrv.get(f"/api/sessions/{sid}")
    assert s["protocol"] == "basic" and s["checklist"] == [] and s["checkpoints"] == []
    assert s["discharge"] == {"eligible": True, "eligible_at": None, "blocked_by": []}
    psrv.add_device("pr-bed-2-mon", "pr-bed-2")
    r = psrv.post("/api/sessions", {"bed": "pr-bed-2", "patient_label": "P", "protocol": "nope"})
    assert r.status_code == 422 and r.json()["detail"]["code"] == "invalid_request"
    assert [f["loc"] for f in r.json()["detail"]["fields"]] == [["body", "protocol"]]
    sid, _ = _admit(psrv, "pr-bed-2", protocol="esketamine")
    s = psrv.get(f"/api/sessions/{sid}")
    assert s["protocol"] == "esketamine" and {i["id"] for i in s["checklist"]} >= {"consent"}
    assert {c["id"]: c["due_at"] for c in s["checkpoints"]}["bp-40"] is None


@pytest.mark.parametrize(
    "data",
    [
        {"consent": False},
        {"consent": "yes"},
        {"medications": ""},
        {"weight_kg": "71"},
        {"last_food": "yesterday"},
        {"shoe_size": 42},
        {},
    ],
)
def test_a_checklist_value_of_the_wrong_kind_is_refused_with_422(
    psrv: MonitorProcess, data: dict[str, Any]
) -> None:
    """docs/protocols.md: confirm takes true, text a non-empty string, number a number, time
    an RFC 3339 time; anything else gets 422 and nothing is stored."""
    bed = f"pr-ck-{abs(hash(repr(data))) % 100000}"
    sid, _ = _admit(psrv, bed)
    r = post_event(psrv, sid, {"type": "checklist", "data": data})
    assert r.status_code == 422, r.text
    assert psrv.get(f"/api/sessions/{sid}")["events"] == []


def test_dosing_is_gated_by_checklist_then_pre_dose_bp_in_that_order(psrv: MonitorProcess) -> None:
    """docs/protocols.md: infusion_start gets 409 checklist_incomplete (with missing), then
    predose_bp_missing, then predose_bp_high unless a prescriber and a reason are given
    (audited)."""
    bed = "pr-bed-3"
    sid, token = _admit(psrv, bed)
    r = post_event(psrv, sid, {"type": "infusion_start"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["code"] == "checklist_incomplete" and detail["missing"] == list(CHECKLIST)
    part = {k: v for k, v in CHECKLIST.items() if k != "medications"}
    assert post_event(psrv, sid, {"type": "checklist", "data": part}).status_code == 200
    r = post_event(psrv, sid, {"type": "infusion_start"})
    assert r.json()["detail"] == {
        **r.json()["detail"],
        "code": "checklist_incomplete",
        "missing": ["medications"],
    }
    s = post_event(psrv, sid, {"type": "checklist", "data": {"medications": "sertraline"}}).json()
    assert all(i["done"] for i in s["checklist"])
    assert {i["id"]: i["value"] for i in s["checklist"]}["weight_kg"] == 71.5
    r = post_event(psrv, sid, {"type": "infusion_start"})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "predose_bp_missing"
    _send(psrv, bed, token, [(1, {"sbp": 150, "dbp": 85, "map": 107}, time.time(), "nibp")])
    r = post_event(psrv, sid, {"type": "infusion_start", "data": {"prescriber": "Dr A"}})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "predose_bp_high"
    decision = {"prescriber": "Dr A", "reason": "treated hypertension, benefit outweighs"}
    r = post_event(psrv, sid, {"type": "infusion_start", "data": decision})
    assert r.status_code == 200 and r.json()["phase"] == "infusion"
    audit = psrv.get("/api/audit", session=sid)["entries"]
    overrides = [e for e in audit if e["action"] == "predose_bp_override"]
    assert [(e["actor"], e["detail"]) for e in overrides] == [("admin", decision)]


def test_a_bp_checkpoint_is_done_by_a_cuff_reading_in_its_window(psrv: MonitorProcess) -> None:
    """docs/protocols.md: a bp checkpoint is done by a cuff reading (source nibp) whose device
    ts falls in its window; the session shows the reading that did it."""
    bed = "pr-bed-4"
    sid, token = _admit(psrv, bed)
    dosed = _dose(psrv, bed, token, sid)
    cp = {c["id"]: c for c in psrv.get(f"/api/sessions/{sid}")["checkpoints"]}["bp-30s"]
    assert cp["status"] == "upcoming" and cp["due_at"] == to_rfc3339(dosed + 30)
    # Not a cuff reading: hr and spo2 at the due time do nothing.
    _send(psrv, bed, token, [(2, {"hr": 70, "spo2": 97}, dosed + 30, None)])
    # The device measured the cuff 28 s after dosing (inside 15..45 s).
    _send(psrv, bed, token, [(3, {"sbp": 126, "dbp": 80, "map": 95}, dosed + 28, "nibp")])
    cp = {c["id"]: c for c in psrv.get(f"/api/sessions/{sid}")["checkpoints"]}["bp-30s"]
    assert cp["status"] == "done" and cp["done_at"] == to_rfc3339(dosed + 28)
    assert cp["satisfied_by"]["type"] == "reading" and cp["satisfied_by"]["seq"] == 3


def test_ending_is_gated_by_discharge_with_a_charge_override(psrv: MonitorProcess) -> None:
    """docs/protocols.md: end gets 409 discharge_blocked with blocked_by; an override needs a
    reason and the charge or admin role (a nurse gets 403), and is audited."""
    bed = "pr-bed-5"
    sid, token = _admit(psrv, bed)
    _dose(psrv, bed, token, sid)
    r = post_event(psrv, sid, {"type": "end"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["code"] == "discharge_blocked"
    assert {"hr_missing", "spo2_missing", "moaas_missing"} <= set(detail["blocked_by"])
    why = {"type": "end", "data": {"override_reason": "transferred to the emergency department"}}
    assert post_event(psrv, sid, why, _as(psrv, "p-nurse")).status_code == 403
    assert (
        post_event(psrv, sid, {"type": "end", "data": {"override_reason": " "}}).status_code == 409
    )
    assert psrv.get(f"/api/sessions/{sid}")["phase"] == "infusion"
    r = post_event(psrv, sid, why, _as(psrv, "p-charge"))
    assert r.status_code == 200 and r.json()["phase"] == "ended"
    audit = psrv.get("/api/audit", session=sid)["entries"]
    over = [e for e in audit if e["action"] == "discharge_override"]
    assert len(over) == 1 and over[0]["actor"] == "p-charge"
    assert over[0]["detail"]["reason"] == "transferred to the emergency department"
    assert set(detail["blocked_by"]) <= set(over[0]["detail"]["blocked_by"]) | {"too_soon"}


def test_a_session_ends_without_override_once_the_criteria_are_met(psrv: MonitorProcess) -> None:
    """docs/protocols.md: discharge becomes eligible from the live vitals and the observation."""
    bed = "pr-bed-6"
    sid, token = _admit(psrv, bed)
    dosed = _dose(psrv, bed, token, sid)
    assert post_event(psrv, sid, {"type": "infusion_stop"}).status_code == 200
    now = time.time()
    _send(
        psrv,
        bed,
        token,
        [
            (2, {"sbp": 122, "dbp": 79, "map": 93}, now, "nibp"),
            (3, {"hr": 74, "spo2": 97, "rr": 14}, now, None),
        ],
    )
    assert post_event(psrv, sid, {"type": "observation", "data": {"moaas": 5}}).status_code == 200
    d = poll(lambda: (s := psrv.get(f"/api/sessions/{sid}")["discharge"])["eligible"] and s)
    assert d["blocked_by"] == [] and d["eligible_at"] == to_rfc3339(dosed + DISCHARGE_AFTER_S)
    r = post_event(psrv, sid, {"type": "end"}, _as(psrv, "p-nurse"))
    assert r.status_code == 200 and r.json()["phase"] == "ended"


def _checkpoint_alarm(srv: MonitorProcess, bed: str, ended: bool) -> dict[str, Any] | None:
    for a in srv.get("/api/alarms", bed=bed)["alarms"]:
        if a["signal"] == "checkpoint" and "moaas-2s" in a["id"]:
            if (a["ended_at"] is not None) is ended:
                return dict(a)
    return None


def test_an_overdue_checkpoint_raises_a_low_technical_alarm_until_it_is_done(
    psrv: MonitorProcess,
) -> None:
    """docs/protocols.md: an overdue checkpoint raises a low-priority technical alarm with
    signal checkpoint on the bed, on the server clock; it can be acknowledged, and ends when
    the checkpoint is done."""
    bed = "pr-bed-7"
    sid, token = _admit(psrv, bed)
    dosed = _dose(psrv, bed, token, sid)
    # moaas-2s is due 1.5 s after dosing and on time until 2.25 s; then it is overdue.
    alarm = poll(lambda: _checkpoint_alarm(psrv, bed, ended=False))
    assert (alarm["kind"], alarm["priority"], alarm["bed"]) == ("technical", "low", bed)
    prefix, _, due_ms = alarm["id"].rpartition(".")
    assert (
        prefix == f"{bed}.checkpoint.moaas-2s"
        and abs(int(due_ms) - (dosed + MOAAS_DUE_S) * 1000) < 2
    )
    assert time.time() >= dosed + MOAAS_DUE_S + MOAAS_WINDOW_S
    cp = {c["id"]: c for c in psrv.get(f"/api/sessions/{sid}")["checkpoints"]}["moaas-2s"]
    assert cp["status"] == "overdue"
    beds = {b["id"]: b for b in psrv.get("/api/beds")}
    assert alarm["id"] in {a["id"] for a in beds[bed]["alarms"]}
    ack = psrv.post(f"/api/alarms/{alarm['id']}/ack")
    assert ack.status_code == 200, ack.text
    acked = _checkpoint_alarm(psrv, bed, ended=False)
    assert acked is not None and acked["acknowledged_by"] == "admin"
    r = post_event(psrv, sid, {"type": "observation", "data": {"moaas": 4}})
    assert r.status_code == 200
    ended = poll(lambda: _checkpoint_alarm(psrv, bed, ended=True))
    assert ended["id"] == alarm["id"]
    cp = {c["id"]: c for c in psrv.get(f"/api/sessions/{sid}")["checkpoints"]}["moaas-2s"]
    assert cp["status"] == "done" and cp["late"] is True


def test_an_admission_dated_earlier_holds_the_readings_since_and_gates_on_them(
    psrv: MonitorProcess,
) -> None:
    """docs/protocols.md: POST /api/sessions takes an optional earlier "at" (a late entry or a
    store-and-forward device), never before the bed's previous session ended nor ahead of now;
    a cuff BP measured since then is the session's pre-dose BP."""
    bed = "pr-bed-8"
    token = psrv.add_device(f"{bed}-mon", bed)
    t = time.time() - 600
    _send(psrv, bed, token, [(1, {"sbp": 121, "dbp": 77, "map": 92}, t + 60, "nibp")])
    body = {"bed": bed, "patient_label": "P", "protocol": "quick"}
    ahead = psrv.post("/api/sessions", {**body, "at": to_rfc3339(time.time() + 3600)})
    assert ahead.status_code == 422
    r = psrv.post("/api/sessions", {**body, "at": to_rfc3339(t)})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["opened_at"] == to_rfc3339(t)
    assert post_event(psrv, sid, {"type": "checklist", "data": CHECKLIST}).status_code == 200
    r = post_event(psrv, sid, {"type": "infusion_start", "at": to_rfc3339(t + 120)})
    assert r.status_code == 200, r.text
    why = {"type": "end", "at": to_rfc3339(t + 180), "data": {"override_reason": "test"}}
    assert post_event(psrv, sid, why).status_code == 200
    # The next patient cannot be admitted before the previous one left.
    r = psrv.post("/api/sessions", {**body, "at": to_rfc3339(t + 170)})
    assert r.status_code == 409
    assert psrv.post("/api/sessions", {**body, "at": to_rfc3339(t + 190)}).status_code == 201


def test_a_protocol_s_phase_limits_are_in_force_in_that_phase(psrv: MonitorProcess) -> None:
    """docs/protocols.md: per-phase alarm-limit overrides of the protocol: a systolic of 160
    alarms during the quick protocol's infusion (clinic default: 180)."""
    bed = "pr-bed-9"
    sid, token = _admit(psrv, bed)
    assert psrv.get(f"/api/sessions/{sid}/limits")["limits"]["sbp"]["high"]["medium"] == 180
    _dose(psrv, bed, token, sid)
    limits = psrv.get(f"/api/sessions/{sid}/limits")["limits"]
    assert limits["sbp"]["high"]["medium"] == 150
    _send(psrv, bed, token, [(2, {"sbp": 160, "dbp": 85, "map": 110}, time.time(), "nibp")])
    alarm = poll(
        lambda: next(
            (a for a in psrv.get("/api/alarms", bed=bed)["alarms"] if a["signal"] == "sbp"), None
        )
    )
    assert (alarm["kind"], alarm["priority"]) == ("physiological", "medium")


def test_a_checkpoint_alarm_survives_a_restart_once_and_still_ends_when_done(
    app_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """docs/protocols.md: the alarm stage restores checkpoint alarms from the store when it
    rebuilds a bed: after a restart the same alarm is live (not a second one) and ends when
    the checkpoint is done."""
    # A clean restart is the app's lifespan ending and a new app rebuilding from the same
    # database: in this process (kill -9 restarts are tests/test_crash_recovery.py's).
    path = clinic_config(tmp_path_factory.mktemp("restart"), _with_quick)
    srv = app_factory(clinic_config=path, **TICK)
    bed = "pr-rs-1"
    sid, token = _admit(srv, bed)
    _dose(srv, bed, token, sid)
    alarm = poll(lambda: _checkpoint_alarm(srv, bed, ended=False))
    srv.stop()
    srv.start()
    live = [a for a in srv.get("/api/alarms", bed=bed)["alarms"] if a["signal"] == "checkpoint"]
    assert [a["id"] for a in live if "moaas-2s" in a["id"]] == [alarm["id"]]
    beds = {b["id"]: b for b in srv.get("/api/beds")}
    assert alarm["id"] in {a["id"] for a in beds[bed]["alarms"]}
    assert post_event(srv, sid, {"type": "observation", "data": {"moaas": 5}}).status_code == 200
    ended = poll(lambda: _checkpoint_alarm(srv, bed, ended=True))
    assert ended["id"] == alarm["id"]


def test_an_iv_dose_is_completed_from_the_weight_and_an_inconsistent_one_refused(
    psrv: MonitorProcess,
) -> None:
    """docs/protocols.md "Doses": dose events only while dosing runs; mg/kg and total mg from
    the checklist weight; a pair that disagrees gets 422 and nothing is stored."""
    bed = "pr-bed-10"
    sid, token = _admit(psrv, bed)
    early = post_event(psrv, sid, {"type": "dose", "data": {"mg_per_kg": 0.5}})
    assert early.status_code == 409 and early.json()["detail"]["code"] == "dose_outside_infusion"
    _dose(psrv, bed, token, sid)
    bad = post_event(psrv, sid, {"type": "dose", "data": {"mg_per_kg": 0.5, "total_mg": 50}})
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "invalid_request"
    assert [f["loc"] for f in bad.json()["detail"]["fields"]] == [["body", "data"]]
    typo = post_event(psrv, sid, {"type": "dose", "data": {"mg_per_kg": "0.5"}})
    assert typo.status_code == 422
    r = post_event(psrv, sid, {"type": "dose", "data": {"mg_per_kg": 0.5, "lot": "K-123"}})
    assert r.status_code == 200, r.text
    doses = [e["data"] for e in r.json()["events"] if e["type"] == "dose"]
    assert len(doses) == 1
    assert doses[0]["total_mg"] == round(0.5 * 71.5, 1)
    assert (doses[0]["drug"], doses[0]["route"], doses[0]["lot"]) == ("ketamine", "iv", "K-123")


def test_intranasal_devices_keep_five_minutes_apart_unless_a_charge_nurse_overrides(
    psrv: MonitorProcess,
) -> None:
    """docs/protocols.md "Doses": esketamine devices of 28 mg each, 5 min apart; a device
    sooner gets 409 device_interval, overridable with a reason by charge (nurse 403), audited."""
    bed = "pr-bed-11"
    sid, token = _admit(psrv, bed, protocol="esketamine")
    assert (
        post_event(psrv, sid, {"type": "checklist", "data": ESKETAMINE_CHECKLIST}).status_code
        == 200
    )
    _send(psrv, bed, token, [(1, {"sbp": 124, "dbp": 78, "map": 93}, time.time(), "nibp")])
    assert post_event(psrv, sid, {"type": "infusion_start"}).status_code == 200
    first = post_event(psrv, sid, {"type": "dose", "data": {"lot": "E-9"}})
    assert first.status_code == 200, first.text
    soon = post_event(psrv, sid, {"type": "dose", "data": {"lot": "E-9"}})
    assert soon.status_code == 409
    detail = soon.json()["detail"]
    assert detail["code"] == "device_interval"
    first_at = parse_rfc3339(next(e["at"] for e in first.json()["events"] if e["type"] == "dose"))
    assert abs(parse_rfc3339(detail["next_at"]) - (first_at + 300)) < 0.01
    why = {"type": "dose", "data": {"lot": "E-9", "override_reason": "patient sneezed, redo"}}
    assert post_event(psrv, sid, why, _as(psrv, "p-nurse")).status_code == 403
    r = post_event(psrv, sid, why, _as(psrv, "p-charge"))
    assert r.status_code == 200, r.text
    doses = [e["data"] for e in r.json()["events"] if e["type"] == "dose"]
    assert [(d["device"], d["cumulative_mg"]) for d in doses] == [(1, 28), (2, 56)]
    audit = psrv.get("/api/audit", session=sid)["entries"]
    assert [e["detail"] for e in audit if e["action"] == "dose_override"] == [
        {"reason": "patient sneezed, redo"}
    ]
