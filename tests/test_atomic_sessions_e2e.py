"""Repeats and races on the session use cases through the real server, on both engines
(docs/api.md, "Repeats and races"): N simultaneous identical commands store one effect, every
other answer is the 409 it would get arriving second (never a 500), and every reader of the
session still answers, before and after a restart on the same database. The races are the
API's semantics: the app runs in this process (tests/conftest.py, InProcessMonitor), over
real HTTP on both engines; the restart builds a new app on the same database."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from monitor.clinical import session as session_model
from monitor.core.model import parse_rfc3339, to_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess, clinic_config, post_event, start_in_process
from tests.factories import FULL_CHECKLIST, TEST_CHECKLIST
from tests.strategies import concurrent_session_commands
from tests.wsclient import send_frames

# Protocols that let every gated event be reached within a test (docs/protocols.md): race-iv
# gates dosing on the checklist and a pre-dose BP and blocks discharge for an hour (so `end`
# needs the override); race-in spaces intranasal devices 5 min apart (so a second one needs
# the dose override).
RACE_IV = {
    "label": "Race test, IV",
    "checklist": TEST_CHECKLIST,
    "predose_bp": {"required": True, "sbp": 140, "dbp": 90},
    "dosing": {"drug": "ketamine", "route": "iv", "weight_item": "weight_kg"},
    "discharge": {"after": {"anchor": "infusion_start", "min": 60}},
}
RACE_IN = {
    "label": "Race test, intranasal",
    "dosing": {
        "drug": "esketamine",
        "route": "intranasal",
        "device_mg": 28,
        "device_interval_min": 5,
        "max_devices": 3,
    },
}
SIZES = [2, 20]
_beds = itertools.count(1)


def _with_race_protocols(data: dict[str, Any]) -> None:
    data["protocols"]["race-iv"] = RACE_IV
    data["protocols"]["race-in"] = RACE_IN


@pytest.fixture(scope="module")
def asrv(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """One monitor app per engine with the race protocols, shared by the module."""
    tmp = tmp_path_factory.mktemp("atomic")
    config = clinic_config(tmp, _with_race_protocols)
    proc = start_in_process(db_url, tmp, {"clinic_config": config})
    try:
        yield proc
    finally:
        proc.stop()


def burst(srv: MonitorProcess, requests: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    """Send (method, path, body) requests all at once, as the admin; the answers in order."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests))
        async with http_client.AsyncClient(
            base_url=srv.base_url, headers=srv.headers, timeout=60, limits=limits
        ) as client:
            return list(
                await asyncio.gather(
                    *(client.request(m, path, json=body) for m, path, body in requests)
                )
            )

    return asyncio.run(run())


def code(r: httpx.Response) -> str | int:
    """The answer's stable code, or its status when it is a success."""
    return r.json()["detail"]["code"] if r.status_code >= 400 else r.status_code


def one_wins(answers: list[httpx.Response], loser: str, success: int = 200) -> httpx.Response:
    """Exactly one success and every other answer the 409 ``loser``; the success."""
    assert [r.status_code for r in answers if r.status_code >= 500] == [], [r.text for r in answers]
    wins = [r for r in answers if r.status_code == success]
    assert len(wins) == 1, [(r.status_code, r.text) for r in answers]
    losers = Counter(code(r) for r in answers if r is not wins[0])
    assert losers == Counter({loser: len(answers) - 1}), [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert r.json()["detail"]["message"]
    return wins[0]


def readers_answer(srv: MonitorProcess, sid: int) -> dict[str, Any]:
    """The session, the beds and the session's report all answer 200; the session."""
    answers = {
        path: http_client.get(f"{srv.base_url}{path}", headers=srv.headers, timeout=30)
        for path in (f"/api/sessions/{sid}", "/api/beds", f"/api/sessions/{sid}/report")
    }
    for path, r in answers.items():
        assert r.status_code == 200, (path, r.text)
    return dict(answers[f"/api/sessions/{sid}"].json())


def audit_counts(srv: MonitorProcess, sid: int) -> Counter[str]:
    """How many audit entries of each action the session has (the admin's audit API)."""
    return Counter(e["action"] for e in srv.get("/api/audit", session=sid)["entries"])


def event_counts(session: dict[str, Any]) -> Counter[str]:
    return Counter(e["type"] for e in session["events"])


def race_event(
    srv: MonitorProcess,
    sid: int,
    n: int,
    body: dict[str, Any],
    loser: str,
    audit: tuple[str, ...] = (),
) -> dict[str, Any]:
    """N identical events at once: one stored (with its audit entries), the rest ``loser``,
    the readers still answering; the session after."""
    before_events = event_counts(srv.get(f"/api/sessions/{sid}"))
    before_audit = audit_counts(srv, sid)
    path = f"/api/sessions/{sid}/events"
    answers = burst(srv, [("POST", path, body)] * n)
    one_wins(answers, loser)
    session = readers_answer(srv, sid)
    assert event_counts(session) - before_events == Counter({body["type"]: 1})
    if loser == "duplicate_event":
        # Each repeat names the one stored event.
        stored = [e["id"] for e in session["events"] if e["type"] == body["type"]][-1]
        named = {r.json()["detail"]["event_id"] for r in answers if r.status_code == 409}
        assert named == {stored}
    added = audit_counts(srv, sid) - before_audit
    assert added == Counter({f"session_{body['type']}": 1, **dict.fromkeys(audit, 1)})
    return session


def admit(srv: MonitorProcess, protocol: str = "basic") -> tuple[int, str, str]:
    """A fresh bed with a device and a session on it: (session id, bed, device token)."""
    bed = f"race-bed-{next(_beds)}"
    token = srv.add_device(f"{bed}-mon", bed)
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": "P", "protocol": protocol})
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), bed, token


def cuff(srv: MonitorProcess, bed: str, token: str, sbp: float, dbp: float, seq: int) -> None:
    send_frames(
        srv.ws_url,
        f"{bed}-mon",
        token,
        [(seq, {"sbp": sbp, "dbp": dbp, "map": round((sbp + 2 * dbp) / 3)}, time.time(), "nibp")],
    )


def test_a_double_infusion_start_stores_one_start_and_the_second_gets_event_not_allowed(
    asrv: MonitorProcess,
) -> None:
    """docs/api.md, "Repeats and races": two simultaneous infusion_start store one; the
    other is the 409 a second press gets, and the session, beds and report still answer."""
    sid, _, _ = admit(asrv)
    s = race_event(asrv, sid, 2, {"type": "infusion_start"}, "event_not_allowed")
    assert s["phase"] == "infusion" and s["infusion_running"] is True


@pytest.mark.parametrize("n", SIZES)
def test_simultaneous_identical_phase_events_store_one_each(asrv: MonitorProcess, n: int) -> None:
    """docs/api.md, "Repeats and races": N identical start, pause, resume, observation,
    discharge request, stop and end at once store one of each; the others get the 409 of
    arriving second (event_not_allowed, duplicate_event, session_ended)."""
    sid, _, _ = admit(asrv)
    race_event(asrv, sid, n, {"type": "infusion_start"}, "event_not_allowed")
    s = race_event(asrv, sid, n, {"type": "infusion_pause"}, "event_not_allowed")
    assert s["infusion_running"] is False
    s = race_event(asrv, sid, n, {"type": "infusion_resume"}, "event_not_allowed")
    assert s["infusion_running"] is True
    observation = {"type": "observation", "data": {"moaas": 4, "note": "drowsy"}}
    race_event(asrv, sid, n, observation, "duplicate_event")
    s = race_event(asrv, sid, n, {"type": "infusion_stop"}, "event_not_allowed")
    assert s["phase"] == "recovery"
    race_event(asrv, sid, n, {"type": "discharge_request"}, "duplicate_event")
    s = race_event(asrv, sid, n, {"type": "end"}, "session_ended")
    assert s["phase"] == "ended"
    assert [e["type"] for e in s["events"]] == [
        "infusion_start",
        "infusion_pause",
        "infusion_resume",
        "observation",
        "infusion_stop",
        "discharge_request",
        "end",
    ]


@pytest.mark.parametrize("n", SIZES)
def test_simultaneous_gated_events_and_their_overrides_store_one_each(
    asrv: MonitorProcess, n: int
) -> None:
    """docs/api.md, "Repeats and races": N identical checklists, prescriber overrides of a
    high pre-dose BP, doses and discharge overrides at once store one each with one audit
    entry of the override; the others get duplicate_event, event_not_allowed, session_ended."""
    sid, bed, token = admit(asrv, "race-iv")
    race_event(asrv, sid, n, {"type": "checklist", "data": FULL_CHECKLIST}, "duplicate_event")
    cuff(asrv, bed, token, 152, 96, 1)
    start = {"type": "infusion_start", "data": {"prescriber": "Dr. Q", "reason": "chronic"}}
    race_event(asrv, sid, n, start, "event_not_allowed", audit=("predose_bp_override",))
    s = race_event(asrv, sid, n, {"type": "dose", "data": {"mg_per_kg": 0.5}}, "duplicate_event")
    assert [e["data"]["total_mg"] for e in s["events"] if e["type"] == "dose"] == [36.2]
    end = {"type": "end", "data": {"override_reason": "patient left against advice"}}
    s = race_event(asrv, sid, n, end, "session_ended", audit=("discharge_override",))
    assert s["phase"] == "ended"


@pytest.mark.parametrize("n", SIZES)
def test_simultaneous_dose_overrides_store_one_device(asrv: MonitorProcess, n: int) -> None:
    """docs/api.md, "Repeats and races": N identical overridden devices at once (inside the
    protocol's 5-minute spacing) store one device and one dose_override entry."""
    sid, _, _ = admit(asrv, "race-in")
    assert post_event(asrv, sid, {"type": "infusion_start"}).status_code == 200
    assert post_event(asrv, sid, {"type": "dose", "data": {"lot": "L1"}}).status_code == 200
    again = {"type": "dose", "data": {"lot": "L1", "override_reason": "first device failed"}}
    s = race_event(asrv, sid, n, again, "duplicate_event", audit=("dose_override",))
    assert [e["data"]["device"] for e in s["events"] if e["type"] == "dose"] == [1, 2]


@pytest.mark.parametrize("n", SIZES)
def test_simultaneous_identical_limit_changes_store_one_change(
    asrv: MonitorProcess, n: int
) -> None:
    """docs/api.md, "Repeats and races": N identical limit changes at once all answer 200
    with the same limits; one change is stored and audited once."""
    sid, _, _ = admit(asrv)
    body = {"overrides": {"spo2": {"low": {"medium": 88}}}, "reason": "known low baseline"}
    answers = burst(asrv, [("PUT", f"/api/sessions/{sid}/limits", body)] * n)
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert {r.json()["limits"]["spo2"]["low"]["medium"] for r in answers} == {88}
    assert audit_counts(asrv, sid)["limits_change"] == 1
    readers_answer(asrv, sid)
    # A plain repeat changes nothing either; a different change is stored.
    assert asrv.get(f"/api/sessions/{sid}/limits")["overrides"] == body["overrides"]
    r = http_client.put(
        f"{asrv.base_url}/api/sessions/{sid}/limits", json=body, headers=asrv.headers, timeout=10
    )
    assert r.status_code == 200 and audit_counts(asrv, sid)["limits_change"] == 1
    other = {"overrides": {"spo2": {"low": {"medium": 89}}}, "reason": "changed"}
    r = http_client.put(
        f"{asrv.base_url}/api/sessions/{sid}/limits", json=other, headers=asrv.headers, timeout=10
    )
    assert r.status_code == 200 and audit_counts(asrv, sid)["limits_change"] == 2


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backdated", [False, True], ids=["now", "backdated"])
def test_simultaneous_admissions_to_one_bed_open_one_session(
    asrv: MonitorProcess, n: int, backdated: bool
) -> None:
    """docs/api.md, "Repeats and races": N admissions to one bed at once (dated now or
    earlier) give one 201 and N-1 bed_occupied; the bed holds one open session."""
    bed = f"race-bed-{next(_beds)}"
    asrv.add_device(f"{bed}-mon", bed)
    body: dict[str, Any] = {"bed": bed, "patient_label": "P"}
    if backdated:
        body["at"] = to_rfc3339(time.time() - 60)
    won = one_wins(burst(asrv, [("POST", "/api/sessions", body)] * n), "bed_occupied", 201)
    listed = asrv.get("/api/sessions", bed=bed)["sessions"]
    assert [s["id"] for s in listed] == [won.json()["id"]]
    readers_answer(asrv, won.json()["id"])
    # Arriving second, one at a time, gets the same answer.
    assert code(asrv.post("/api/sessions", body)) == "bed_occupied"


class SessionRaces(RuleBasedStateMachine):
    """2-5 random commands at once to one session, again and again (docs/api.md, "Repeats
    and races"): no 500, each answer a success or a documented 409, one stored event per
    successful event, and the stored events always fold into the phase the session shows."""

    srv: MonitorProcess

    @initialize()
    def open_session(self) -> None:
        self.sid, self.bed, _ = admit(self.srv)
        self.stored = 0

    @rule(commands=concurrent_session_commands)
    def send_at_once(self, commands: list[tuple[str, dict[str, Any]]]) -> None:
        requests = [
            ("POST", f"/api/sessions/{self.sid}/events", body)
            if kind == "event"
            else ("PUT", f"/api/sessions/{self.sid}/limits", body)
            for kind, body in commands
        ]
        answers = burst(self.srv, requests)
        documented = {"event_not_allowed", "session_ended", "duplicate_event"}
        for r in answers:
            assert r.status_code == 200 or (r.status_code == 409 and code(r) in documented), r.text
        stored_now = sum(
            1
            for (kind, _), r in zip(commands, answers, strict=True)
            if kind == "event" and r.status_code == 200
        )
        s = readers_answer(self.srv, self.sid)
        events = s["events"]
        assert len(events) == self.stored + stored_now
        self.stored = len(events)
        state = session_model.replay(
            (e["type"], parse_rfc3339(e["at"]))
            for e in events
            if e["type"] in session_model.PHASE_EVENTS
        )
        assert s["phase"] == state.phase.value
        assert s["infusion_running"] is state.running

    def teardown(self) -> None:
        post_event(self.srv, self.sid, {"type": "end"})


def test_random_simultaneous_commands_keep_every_session_readable(asrv: MonitorProcess) -> None:
    """docs/api.md, "Repeats and races": whatever mix of commands arrives at once, the
    stored events fold without error and every reader answers."""
    SessionRaces.srv = asrv
    run_state_machine_as_test(
        SessionRaces,
        settings=settings(
            max_examples=5,
            stateful_step_count=5,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_raced_sessions_are_served_after_a_restart_on_the_same_database(
    asrv: MonitorProcess,
) -> None:
    """docs/api.md, "Repeats and races": after races, the monitor restarted on the same
    database starts, and serves every session it holds, its beds and reports."""
    sid, _, _ = admit(asrv)
    race_event(asrv, sid, 20, {"type": "infusion_start"}, "event_not_allowed")
    asrv.stop()
    asrv.start()
    # The list folds every stored session; each is served on its own too.
    sessions = asrv.get("/api/sessions", limit=1000)["sessions"]
    assert sid in {s["id"] for s in sessions}
    for other in sessions:
        assert asrv.get(f"/api/sessions/{other['id']}")["id"] == other["id"]
    s = readers_answer(asrv, sid)
    assert [e["type"] for e in s["events"]] == ["infusion_start"] and s["phase"] == "infusion"


def store_event_behind_the_monitor(db_url: str, sid: int, event_type: str) -> None:
    """Write a session event straight into the database, as the unguarded code could: the
    history the guard prevents, already stored."""
    from monitor.records.schema import session_events
    from monitor.records.store import Store

    async def run() -> None:
        store = await Store.open(db_url)
        try:
            async with store.engine.begin() as conn:
                now = time.time()
                await conn.execute(
                    session_events.insert().values(
                        session_id=sid, type=event_type, at=now, recorded_at=now, by="admin"
                    )
                )
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_a_stored_history_that_does_not_fold_answers_record_needs_attention(
    asrv: MonitorProcess,
) -> None:
    """docs/api.md, "Repeats and races": a session whose stored events do not fold (two
    infusion_start) stores nothing more; each event gets 409 record_needs_attention naming
    the event that does not fit. Last in the module: its bed's session no longer reads."""
    sid, _, _ = admit(asrv)
    assert post_event(asrv, sid, {"type": "infusion_start"}).status_code == 200
    store_event_behind_the_monitor(asrv.db_url, sid, "infusion_start")
    events = asrv.get("/api/audit", session=sid)["entries"]
    for body in ({"type": "observation", "data": {"moaas": 3}}, {"type": "end"}):
        r = post_event(asrv, sid, body)
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert detail["code"] == "record_needs_attention"
        assert detail["event_type"] == "infusion_start" and isinstance(detail["event_id"], int)
    assert asrv.get("/api/audit", session=sid)["entries"] == events
