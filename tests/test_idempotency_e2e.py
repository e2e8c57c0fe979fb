"""Idempotency-Key through the real server, on both engines (docs/api.md, "Idempotency-Key").

The API's semantics: the app runs in this process (tests/inprocess.py) over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from dashboard.client import MonitorClient, event_key
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401


def _admit(server: MonitorProcess, bed: str) -> int:
    server.add_device(f"{bed}-mon", bed)
    r = server.post("/api/sessions", {"bed": bed, "patient_label": "I.K."})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _with_key(server: MonitorProcess, key: str) -> dict[str, str]:
    return {**server.headers, "Idempotency-Key": key}


def _events(server: MonitorProcess, sid: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in server.get(f"/api/sessions/{sid}")["events"] if e["type"] == kind]


async def _burst(
    server: MonitorProcess, path: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> list[httpx.Response]:
    async with http_client.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return list(
            await asyncio.gather(*(client.post(path, json=body, headers=headers) for _ in range(n)))
        )


def test_a_repeated_admission_with_one_key_gets_the_first_answer_and_opens_one_session(
    server: MonitorProcess,
) -> None:
    """docs/api.md Idempotency-Key: a repeat with the same key gets the first answer, status
    and body, marked replayed, and stores nothing."""
    server.add_device("ik-bed-1-mon", "ik-bed-1")
    headers = _with_key(server, str(uuid.uuid4()))
    body = {"bed": "ik-bed-1", "patient_label": "I.K."}
    first = server.post("/api/sessions", body, headers)
    again = server.post("/api/sessions", body, headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(server.get("/api/sessions", bed="ik-bed-1")["sessions"]) == 1


def test_twenty_simultaneous_observations_with_one_key_store_one(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: of requests racing with one key exactly one runs; every
    answer is that one's."""
    sid = _admit(server, "ik-bed-2")
    body = {"type": "observation", "data": {"note": "racing"}}
    answers = asyncio.run(
        _burst(server, f"/api/sessions/{sid}/events", body, _with_key(server, "k-obs-20"), 20)
    )
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert len({r.content for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 19
    assert len(_events(server, sid, "observation")) == 1


def test_a_refusal_frees_the_key_and_the_same_request_is_judged_anew(
    server: MonitorProcess,
) -> None:
    """docs/api.md Idempotency-Key: only a success is kept; a refused request changed nothing
    and its repeat is judged on the state as it is then."""
    sid = _admit(server, "ik-bed-3")
    headers = _with_key(server, "k-pause")
    refused = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_pause"}, headers)
    assert refused.status_code == 409 and refused.json()["detail"]["code"] == "event_not_allowed"
    assert server.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"}).status_code == 200
    paused = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_pause"}, headers)
    assert paused.status_code == 200 and "idempotent-replayed" not in paused.headers
    again = server.post(f"/api/sessions/{sid}/events", {"type": "infusion_pause"}, headers)
    assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    assert len(_events(server, sid, "infusion_pause")) == 1


def test_twenty_refused_requests_with_one_key_each_get_the_refusal(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: requests waiting on a refused one are judged themselves."""
    sid = _admit(server, "ik-bed-8")
    body = {"type": "infusion_stop"}  # no infusion yet: refused
    answers = asyncio.run(
        _burst(server, f"/api/sessions/{sid}/events", body, _with_key(server, "k-stop-20"), 20)
    )
    assert {(r.status_code, r.json()["detail"]["code"]) for r in answers} == {
        (409, "event_not_allowed")
    }
    assert _events(server, sid, "infusion_stop") == []


def test_a_key_sent_again_with_another_body_is_refused(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: a key reused for another request is a 422 on the header."""
    sid = _admit(server, "ik-bed-4")
    headers = _with_key(server, "k-reused")
    path = f"/api/sessions/{sid}/events"
    assert server.post(path, {"type": "observation", "data": {"moaas": 4}}, headers).is_success
    r = server.post(path, {"type": "observation", "data": {"moaas": 3}}, headers)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert detail["fields"][0]["loc"] == ["header", "Idempotency-Key"]
    assert detail["fields"][0]["type"] == "idempotency_key_reused"
    assert len(_events(server, sid, "observation")) == 1


def test_keys_belong_to_their_user(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: the same key from two users is two requests."""
    sid = _admit(server, "ik-bed-5")
    server.add_user("ik-nurse", "nurse", "ik-nurse-password")
    nurse = {
        "Authorization": f"Bearer {server.login('ik-nurse', 'ik-nurse-password')}",
        "Idempotency-Key": "k-shared",
    }
    body = {"type": "observation", "data": {"note": "each"}}
    path = f"/api/sessions/{sid}/events"
    assert server.post(path, body, _with_key(server, "k-shared")).status_code == 200
    mine = server.post(path, body, nurse)
    assert mine.status_code == 200 and "idempotent-replayed" not in mine.headers
    assert sorted(e["by"] for e in _events(server, sid, "observation")) == ["admin", "ik-nurse"]


def test_a_malformed_key_is_a_422_and_changes_nothing(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: 1 to 128 printable ASCII characters."""
    sid = _admit(server, "ik-bed-6")
    for key in ("has space", "x" * 129):
        r = server.post(
            f"/api/sessions/{sid}/events", {"type": "observation"}, _with_key(server, key)
        )
        assert r.status_code == 422 and r.json()["detail"]["fields"][0]["loc"][0] == "header"
    assert _events(server, sid, "observation") == []


def test_the_openapi_document_offers_the_header_on_changes_only(server: MonitorProcess) -> None:
    """docs/api.md Idempotency-Key: declared on POST and PUT operations, not on logins."""
    paths = http_client.get(f"{server.base_url}/openapi.json", timeout=10).json()["paths"]

    def takes(path: str, method: str) -> bool:
        params = paths[path][method].get("parameters", [])
        return any(p["name"] == "Idempotency-Key" for p in params)

    assert takes("/api/sessions/{session_id}/events", "post")
    assert takes("/api/sessions", "post")
    assert not takes("/api/auth/token", "post")
    assert not takes("/api/sessions/{session_id}", "get")


def test_the_panels_key_is_the_same_for_one_press_on_one_view_only() -> None:
    """docs/api.md Idempotency-Key: the panel keys a command by the session's id, version and
    body, so a double-click repeats and anything else is a new command."""
    view = {"id": 7, "version": 3}
    body = {"type": "observation", "data": {"moaas": 4, "note": "x"}}
    same = {"type": "observation", "data": {"note": "x", "moaas": 4}}
    assert event_key(view, body) == event_key(dict(view), same) is not None
    assert event_key({"id": 7, "version": 4}, body) != event_key(view, body)
    assert event_key({"id": 8, "version": 3}, body) != event_key(view, body)
    assert event_key(view, {"type": "observation", "data": {"moaas": 3}}) != event_key(view, body)
    assert event_key({"id": 7}, body) is None


def test_a_panel_double_click_stores_one_event_and_both_clicks_succeed(
    server: MonitorProcess,
) -> None:
    """docs/api.md Idempotency-Key: two callbacks of one press on the bed page send one key;
    the monitor stores the event once and answers both with it."""
    sid = _admit(server, "ik-bed-7")
    view = server.get(f"/api/sessions/{sid}")
    body = {"type": "infusion_start"}

    async def double_click() -> list[Any]:
        client = MonitorClient(server.base_url, timeout_s=30)
        try:
            key = event_key(view, body)
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            f"/api/sessions/{sid}/events",
                            server.admin_token,
                            body,
                            idempotency_key=key,
                        )
                        for _ in range(2)
                    )
                )
            )
        finally:
            await client.aclose()

    first, second = asyncio.run(double_click())
    assert first == second and first["phase"] == "infusion"
    assert len(_events(server, sid, "infusion_start")) == 1
    assert server.get(f"/api/sessions/{sid}")["version"] == view["version"] + 1
