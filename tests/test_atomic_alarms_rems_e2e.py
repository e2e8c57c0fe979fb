"""Repeats and races of the alarm, REMS and patient commands through the real server on both
engines (docs/api.md, "Repeats and races: alarms, REMS and patients"): N simultaneous
identical requests store one effect, and every answer is a success or the documented 409.
The races are the API's semantics: the app runs in this process (tests/conftest.py,
InProcessMonitor) over real HTTP and websockets; the CLI runs are real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from monitor.core.model import parse_rfc3339, to_rfc3339
from monitor.records.store import Store
from monitor.usecases import patients
from tests import http_client
from tests.conftest import MonitorProcess, clinic_config, post_event, start_in_process
from tests.polling import poll
from tests.wsclient import Device

BURSTS = (2, 20)

# A protocol whose checkpoints, one per burst size, are overdue about 2.5 s after dosing
# starts, so that checkpoint alarms are there to acknowledge within a test (docs/protocols.md).
RACE_PROTOCOL: dict[str, Any] = {
    "label": "Race test protocol",
    "checklist": [],
    "checkpoints": [
        {
            "id": f"moaas-{n}",
            "kind": "moaas",
            "anchor": "infusion_start",
            "offset_min": 0.02,
            "window_min": 0.02,
        }
        for n in BURSTS
    ],
}


def _with_race(data: dict[str, Any]) -> None:
    data["protocols"]["race"] = RACE_PROTOCOL


@pytest.fixture(scope="module")
def srv(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """One monitor app per engine for the module, with the race protocol."""
    tmp = tmp_path_factory.mktemp("atomic")
    proc = start_in_process(db_url, tmp, {"clinic_config": clinic_config(tmp, _with_race)})
    try:
        yield proc
    finally:
        proc.stop()


async def _burst(
    srv: MonitorProcess, n: int, path: str, body: dict[str, Any] | None = None
) -> list[httpx.Response]:
    """``n`` identical POSTs sent at once, each on its own connection."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with http_client.AsyncClient(
        base_url=srv.base_url, headers=srv.headers, timeout=30, limits=limits
    ) as client:
        return list(await asyncio.gather(*(client.post(path, json=body) for _ in range(n))))


def _codes(answers: list[httpx.Response]) -> list[tuple[int, str | None]]:
    return sorted(
        (r.status_code, r.json()["detail"]["code"] if r.status_code >= 400 else None)
        for r in answers
    )


def _audit(srv: MonitorProcess, action: str, target: str, since: float) -> list[dict[str, Any]]:
    entries = srv.get("/api/audit", since=to_rfc3339(since), limit=10_000)["entries"]
    return [e for e in entries if e["action"] == action and e["target"] == target]


def _readers_answer(srv: MonitorProcess, bed: str, sid: int | None = None) -> None:
    """What panels read still answers after the burst."""
    for path in ("/api/alarms", "/api/beds"):
        assert http_client.get(f"{srv.base_url}{path}", headers=srv.headers).status_code == 200
    if sid is not None:
        for path in (f"/api/sessions/{sid}", f"/api/sessions/{sid}/rems"):
            assert http_client.get(f"{srv.base_url}{path}", headers=srv.headers).status_code == 200


async def _desaturated(srv: MonitorProcess, bed: str) -> dict[str, Any]:
    """A bed with a high SpO2 alarm (20 s at 82 %, device time): the alarm as listed."""
    token = srv.add_device(f"{bed}-mon", bed)
    t0 = time.time() - 120
    async with Device(srv.ws_url, f"{bed}-mon", token) as dev:
        for i in range(20):
            ack = await dev.reading(i + 1, {"spo2": 82, "hr": 80}, ts=t0 + i)
            assert ack["type"] == "ack", ack
    return poll(
        lambda: next(
            (a for a in srv.get("/api/alarms", bed=bed)["alarms"] if a["signal"] == "spo2"), None
        )
    )


# --- acknowledge ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", BURSTS)
async def test_simultaneous_acks_of_one_alarm_store_one_acknowledgement_and_all_answer_it(
    srv: MonitorProcess, n: int
) -> None:
    """docs/api.md "Repeats and races": N simultaneous acks of one alarm all answer 200 with
    the one stored acknowledgement; one alarm_ack audit entry."""
    since = time.time()
    alarm = await _desaturated(srv, f"ack-{n}")
    answers = await _burst(srv, n, f"/api/alarms/{alarm['id']}/ack")
    assert _codes(answers) == [(200, None)] * n
    acks = {(r.json()["acknowledged_by"], r.json()["acknowledged_at"]) for r in answers}
    assert len(acks) == 1 and next(iter(acks))[0] == "admin"
    assert len(_audit(srv, "alarm_ack", alarm["id"], since)) == 1
    (stored,) = [
        a for a in srv.get("/api/alarms", bed=f"ack-{n}")["alarms"] if a["signal"] == "spo2"
    ]
    assert (stored["acknowledged_by"], stored["acknowledged_at"]) == next(iter(acks))
    again = srv.post(f"/api/alarms/{alarm['id']}/ack")
    assert again.status_code == 200 and again.json()["acknowledged_at"] == stored["acknowledged_at"]
    assert len(_audit(srv, "alarm_ack", alarm["id"], since)) == 1
    _readers_answer(srv, f"ack-{n}")


def _checkpoint_alarms(srv: MonitorProcess, bed: str) -> dict[str, dict[str, Any]]:
    """The bed's checkpoint alarms by checkpoint id."""
    alarms = srv.get("/api/alarms", bed=bed)["alarms"]
    return {a["id"].split(".")[2]: a for a in alarms if a["signal"] == "checkpoint"}


async def test_simultaneous_acks_of_a_checkpoint_alarm_store_one_acknowledgement(
    srv: MonitorProcess,
) -> None:
    """docs/api.md "Repeats and races": the protocol's checkpoint alarms are acknowledged once
    too, however many acks arrive at once (2 for one alarm, 20 for another); a repeat answers
    the stored acknowledgement."""
    bed = "cp"
    since = time.time()
    srv.add_device(f"{bed}-mon", bed)
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": "P", "protocol": "race"})
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    assert post_event(srv, sid, {"type": "infusion_start"}).status_code == 200
    alarms = poll(
        lambda: (
            (found := _checkpoint_alarms(srv, bed)).keys() == set(f"moaas-{n}" for n in BURSTS)
            and found
        )
    )
    for n in BURSTS:
        alarm = alarms[f"moaas-{n}"]
        answers = await _burst(srv, n, f"/api/alarms/{alarm['id']}/ack")
        assert _codes(answers) == [(200, None)] * n
        assert len({r.json()["acknowledged_at"] for r in answers}) == 1
        assert len(_audit(srv, "alarm_ack", alarm["id"], since)) == 1
        again = srv.post(f"/api/alarms/{alarm['id']}/ack")
        assert again.status_code == 200
        assert again.json()["acknowledged_at"] == answers[0].json()["acknowledged_at"]
        assert len(_audit(srv, "alarm_ack", alarm["id"], since)) == 1
        live = _checkpoint_alarms(srv, bed)[f"moaas-{n}"]
        assert live["acknowledged_at"] == again.json()["acknowledged_at"]
    _readers_answer(srv, bed, sid)


# --- audio pause ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", BURSTS)
async def test_simultaneous_audio_pauses_store_one_pause_and_one_audit_entry(
    srv: MonitorProcess, n: int
) -> None:
    """docs/api.md "Repeats and races": N presses at once all answer 200 with the one pause;
    one is stored, with one audit entry."""
    bed = f"pause-{n}"
    since = time.time()
    alarm = await _desaturated(srv, bed)
    answers = await _burst(srv, n, f"/api/beds/{bed}/audio-pause", {"seconds": 60})
    assert _codes(answers) == [(200, None)] * n
    untils = {parse_rfc3339(r.json()["audio_paused_until"]) for r in answers}
    (entry,) = _audit(srv, "audio_pause", bed, since)
    (until,) = untils
    # RFC 3339 in the answers carries milliseconds; the audit entry the float itself.
    assert entry["actor"] == "admin" and abs(until - entry["detail"]["until"]) < 0.002
    (stored,) = [a for a in srv.get("/api/alarms", bed=bed)["alarms"] if a["id"] == alarm["id"]]
    assert parse_rfc3339(stored["audio_paused_until"]) == until
    _readers_answer(srv, bed)


# --- REMS sign and file --------------------------------------------------------------------


def _rems_session(srv: MonitorProcess, bed: str) -> int:
    srv.add_device(f"{bed}-mon", bed)
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": "R", "protocol": "esketamine"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


REASON = {"reason": "the 40-minute cuff failed; reading taken by hand, see chart"}


@pytest.mark.parametrize("n", BURSTS)
async def test_simultaneous_rems_signatures_store_one_and_the_others_answer_rems_signed(
    srv: MonitorProcess, n: int
) -> None:
    """docs/api.md "Repeats and races": of N simultaneous signatures one is stored (one audit
    entry); every other answers 409 rems_signed, as a second signature does."""
    since = time.time()
    sid = _rems_session(srv, f"sign-{n}")
    answers = await _burst(srv, n, f"/api/sessions/{sid}/rems/sign", REASON)
    assert _codes(answers) == [(200, None)] + [(409, "rems_signed")] * (n - 1)
    assert len(_audit(srv, "rems_sign_incomplete", str(sid), since)) == 1
    signed = srv.get(f"/api/sessions/{sid}/rems")["signed"]
    assert signed is not None and signed["incomplete_reason"] == REASON["reason"]
    again = srv.post(f"/api/sessions/{sid}/rems/sign", REASON)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "rems_signed"
    _readers_answer(srv, f"sign-{n}", sid)


@pytest.mark.parametrize("n", BURSTS)
async def test_simultaneous_rems_filings_store_one_and_the_others_answer_rems_filed(
    srv: MonitorProcess, n: int
) -> None:
    """docs/api.md "Repeats and races": before signing every filing answers 409
    rems_not_signed; once signed, of N simultaneous filings one is stored and the others
    answer 409 rems_filed."""
    since = time.time()
    sid = _rems_session(srv, f"file-{n}")
    early = await _burst(srv, n, f"/api/sessions/{sid}/rems/filed")
    assert _codes(early) == [(409, "rems_not_signed")] * n
    assert srv.post(f"/api/sessions/{sid}/rems/sign", REASON).status_code == 200
    answers = await _burst(srv, n, f"/api/sessions/{sid}/rems/filed")
    assert _codes(answers) == [(200, None)] + [(409, "rems_filed")] * (n - 1)
    assert len(_audit(srv, "rems_filed", str(sid), since)) == 1
    assert srv.get(f"/api/sessions/{sid}/rems")["filed"] is not None
    _readers_answer(srv, f"file-{n}", sid)


# --- patients: merge and assign ------------------------------------------------------------


def _admitted(srv: MonitorProcess, bed: str, patient: str) -> int:
    srv.add_device(f"{bed}-mon", bed)
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": "M", "patient_id": patient})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _session_audit(srv: MonitorProcess, sid: int, action: str) -> list[dict[str, Any]]:
    entries = srv.get("/api/audit", session=sid)["entries"]
    return [e for e in entries if e["action"] == action]


def test_two_concurrent_merge_and_two_assign_runs_of_the_cli_store_one_change_each(
    srv: MonitorProcess,
) -> None:
    """docs/api.md "Repeats and races": two merge-patient runs at once: one moves the sessions
    (exit 0, one patient_merge entry), the other finds none left (exit 1), as a repeat does;
    two identical assign-patient runs at once both exit 0 and change the session once."""
    since = time.time()
    merged = [_admitted(srv, f"mg2-{i}", "prov-mg2") for i in range(2)]
    split = _admitted(srv, "as2", "prov-as2")
    merges = [
        _cli("merge-patient", "prov-mg2", "--into", "MRN-MG2", "--db", srv.db_url) for _ in range(2)
    ]
    assigns = [_cli("assign-patient", str(split), "MRN-AS2", "--db", srv.db_url) for _ in range(2)]
    merge_codes = sorted(p.wait(60) for p in merges)
    assign_codes = [p.wait(60) for p in assigns]
    assert merge_codes == [0, 1], [p.communicate() for p in merges]
    assert assign_codes == [0, 0], [p.communicate() for p in assigns]
    entries = _audit(srv, "patient_merge", "MRN-MG2", since)
    assert len(entries) == 1 and entries[0]["detail"]["sessions"] == 2
    for sid in merged:
        assert srv.get(f"/api/sessions/{sid}")["patient_id"] == "MRN-MG2"
    assert srv.get("/api/patients/MRN-MG2")["patient_id"] == "MRN-MG2"
    assert len(_session_audit(srv, split, "session_patient")) == 1
    assert srv.get(f"/api/sessions/{split}")["patient_id"] == "MRN-AS2"
    _readers_answer(srv, "as2", split)


async def test_twenty_concurrent_merges_and_assigns_against_the_database_store_one_each(
    srv: MonitorProcess,
) -> None:
    """docs/api.md "Repeats and races": the merge and assign use cases run 20 at once on the
    real database (one connection each): one merge moves the sessions, one assign changes
    the session, the rest are repeats that store nothing."""
    since = time.time()
    sids = [_admitted(srv, f"mg20-{i}", "prov-mg20") for i in range(3)]
    store = await Store.open(srv.db_url)
    try:
        merged = await asyncio.gather(
            *(
                patients.merge_patient(store, "prov-mg20", "MRN-MG20", now=time.time(), by="t")
                for _ in range(20)
            )
        )
        assert sorted(m.moved for m in merged) == [0] * 19 + [3]
        assigned = await asyncio.gather(
            *(
                patients.assign_patient(store, sids[0], "MRN-AS20", now=time.time(), by="t")
                for _ in range(20)
            )
        )
        assert sorted(a.outcome for a in assigned) == sorted(
            [patients.Assigned.CHANGED] + [patients.Assigned.ALREADY] * 19
        )
    finally:
        await store.close()
    assert len(_audit(srv, "patient_merge", "MRN-MG20", since)) == 1
    assert len(_session_audit(srv, sids[0], "session_patient")) == 1
    assert srv.get(f"/api/sessions/{sids[0]}")["patient_id"] == "MRN-AS20"
    assert [srv.get(f"/api/sessions/{s}")["patient_id"] for s in sids[1:]] == ["MRN-MG20"] * 2
    _readers_answer(srv, "mg20-0", sids[0])
