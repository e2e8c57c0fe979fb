"""Hostile input at the REST and feed doors (docs/reliability.md). NaN and Infinity as raw JSON tokens
and as strings, NUL characters, numbers past 64 bits or past infinity, lone surrogates and
wrong types are refused with 4xx and leave nothing stored; a panel's own garbage is ignored
and an oversized frame from it closes only that panel. Runs on SQLite and PostgreSQL (whose
text and JSON types refuse NUL and NaN, so a gap shows as a 500 there first)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, feed_until

MARKER = "Hostile-Patient-4411"

# Raw request bodies (text, so tokens JSON forbids can be sent): route -> bodies.
SESSION_BODIES = [
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": NaN}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": Infinity}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": -Infinity}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": "NaN"}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": "Infinity"}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": 1e400}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"hr": 9999}}',
    '{"bed": "h-bed", "patient_label": "@M", "baseline": {"temp": 37}}',
    '{"bed": "h-bed", "patient_label": "@M\\u0000x"}',
    '{"bed": "h-bed", "patient_label": "@M\\ud800"}',
    '{"bed": "h-bed", "patient_label": "@M", "age": NaN}',
    '{"bed": "h-bed", "patient_label": "@M", "age": 1e400}',
    '{"bed": "h-bed", "patient_label": "@M", "age": 99999999999999999999999}',
    '{"bed": "h-bed", "patient_label": "@M", "age": "54"}',
    '{"bed": "h-bed", "patient_label": "@M", "age": -1}',
    '{"bed": "h-bed", "patient_label": "@M", "infusion_planned_min": 1e9}',
    '{"bed": "h-bed\\u0000", "patient_label": "@M"}',
    '{"bed": "../etc", "patient_label": "@M"}',
    '{"bed": ["h-bed"], "patient_label": "@M"}',
    '{"bed": "h-bed", "patient_label": "@M", "extra": 1}',
    '{"bed": "h-bed", "patient_label": "@M"',
    '[{"bed": "h-bed", "patient_label": "@M"}]',
    '{"bed": "h-bed", "patient_label": ""}',
    '{"bed": "h-bed", "patient_label": "' + "x" * 5000 + '"}',
    "",
    "null",
]
EVENT_BODIES = [
    '{"type": "observation", "data": {"moaas": NaN}}',
    '{"type": "observation", "data": {"moaas": Infinity}}',
    '{"type": "observation", "data": {"moaas": 1e400}}',
    '{"type": "observation", "data": {"note": "@M\\u0000b"}}',
    '{"type": "observation", "data": {"note\\u0000": "b"}}',
    '{"type": "observation", "data": {"note": "\\udfff"}}',
    '{"type": "observation", "data": {"note": "' + "y" * 5000 + '"}}',
    '{"type": "observation", "at": "NaN"}',
    '{"type": "observation", "at": "2999-01-01T00:00:00Z"}',
    '{"type": "observation", "at": 1790000000}',
    '{"type": "infusion_begin"}',
    '{"type": "infusion_stop"}',  # no infusion running: 409
    '{"type": null}',
    '{"type": "observation", "data": [1, 2]}',
]
PAUSE_BODIES = [
    '{"seconds": NaN}',
    '{"seconds": Infinity}',
    '{"seconds": "NaN"}',
    '{"seconds": -5}',
    '{"seconds": 1e400}',
    '{"seconds": 601}',
    '{"seconds": []}',
]
LIMIT_BODIES = [
    '{"overrides": {"spo2": {"low": NaN}}}',
    '{"overrides": {"spo2": NaN}}',
    '{"overrides": {"spo2": {"low": "NaN"}}}',
    '{"overrides": {"spo2": {"below": 1e400}}}',
    '{"overrides": {"temp": {}}}',
    '{"overrides": []}',
    '{"overrides": null}',
]
QUERIES = [
    ("/api/readings", {"bed": "h-bed\x00"}),
    ("/api/readings", {"since": "NaN"}),
    ("/api/readings", {"since": "Infinity"}),
    ("/api/readings", {"limit": "NaN"}),
    ("/api/readings", {"limit": "1e400"}),
    ("/api/readings", {"limit": "0"}),
    ("/api/readings", {"session": str(2**70)}),
    ("/api/readings", {"until": "\x00"}),
    ("/api/alarms", {"active": "NaN"}),
    ("/api/alarms", {"since": "9" * 50}),
    ("/api/sessions", {"patient_label": "a\x00b"}),
    ("/api/sessions", {"open": "maybe"}),
    ("/api/sessions/" + "9" * 30, {}),
    ("/api/sessions/NaN", {}),
    ("/api/sessions/-1", {}),
    ("/api/audit", {"session": "Infinity"}),
]


def _post_raw(http: httpx.Client, path: str, body: str, method: str = "POST") -> int:
    # "@M" stands for the marker: a hostile body that was stored would leave it behind.
    r = http.request(
        method,
        path,
        content=body.replace("@M", MARKER).encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
    )
    return r.status_code


def test_hostile_bodies_and_queries_get_4xx_and_store_nothing(server: MonitorProcess) -> None:
    """Each hostile body or query: a 4xx, never a 5xx; nothing of it stored anywhere."""
    server.add_device("h-dev", "h-bed")
    ok = server.post("/api/sessions", {"bed": "h-bed2", "patient_label": "Fine"})
    assert ok.status_code == 404  # h-bed2 has no device, so no bed: nothing is created
    server.add_device("h-dev2", "h-bed2")
    sid = server.post("/api/sessions", {"bed": "h-bed2", "patient_label": "Fine"}).json()["id"]
    before_events = len(server.get(f"/api/sessions/{sid}")["events"])
    results: list[tuple[str, int]] = []
    # One keep-alive connection for the lot (a connection per request was most of the time);
    # a hostile request that broke the connection would show as an error here too.
    with http_client.Client(base_url=server.base_url, headers=server.headers, timeout=10) as http:
        for body in SESSION_BODIES:
            results.append((f"session {body[:60]}", _post_raw(http, "/api/sessions", body)))
        for body in EVENT_BODIES:
            path = f"/api/sessions/{sid}/events"
            results.append((f"event {body[:60]}", _post_raw(http, path, body)))
        for body in PAUSE_BODIES:
            path = "/api/beds/h-bed2/audio-pause"
            results.append((f"pause {body}", _post_raw(http, path, body)))
        for body in LIMIT_BODIES:
            path = f"/api/sessions/{sid}/limits"
            results.append((f"limits {body}", _post_raw(http, path, body, "PUT")))
        for path, params in QUERIES:
            results.append((f"GET {path} {params}", http.get(path, params=params).status_code))
    assert len(results) >= 60
    assert [(what, status) for what, status in results if not 400 <= status < 500] == []
    # Nothing of it stored: no session on h-bed, no new event, no override, no marker.
    assert server.get("/api/sessions", bed="h-bed")["sessions"] == []
    session = server.get(f"/api/sessions/{sid}")
    assert len(session["events"]) == before_events and not session["limit_overrides"]
    assert MARKER not in json.dumps(server.get("/api/audit"))
    assert MARKER not in json.dumps(server.get("/api/sessions"))
    # And the API still answers as before.
    assert http_client.get(f"{server.base_url}/health", timeout=10).json()["status"] == "ok"


def test_login_with_hostile_fields_is_refused_not_crashed(server: MonitorProcess) -> None:
    """Login with NUL, huge or odd fields: 401/422, never 5xx, and no token."""
    url = f"{server.base_url}/api/auth/token"
    forms: list[Any] = [
        {"username": "admin\x00", "password": "x"},
        {"username": "a" * 10_000, "password": "x"},
        {"username": "admin", "password": "p" * 100_000},
        {"username": "", "password": ""},
        {"username": "admin' OR '1'='1", "password": "' OR '1'='1"},
        {"username": "admin"},
        # More fields than the login gate reads (make fuzz found this one crashing it).
        {"username": "admin", "password": "x", **{f"f{i}": "y" for i in range(40)}},
    ]
    statuses = [http_client.post(url, data=f, timeout=20).status_code for f in forms]
    statuses.append(http_client.post(url, json={"username": "admin", "password": "x"}).status_code)
    assert all(s in (401, 422, 429) for s in statuses), statuses
    assert "Exception in ASGI application" not in server.log_text()


async def test_feed_ignores_panel_garbage_and_drops_only_an_oversized_panel(
    server: MonitorProcess,
) -> None:
    """Text, binary and NaN from a panel are ignored; 65 KiB closes that panel (1009) while
    another panel and a device carry on."""
    token = server.add_device("hf-dev", "hf-bed")
    url = f"{server.ws_url}/ws/feed?token={server.admin_token}"
    async with (
        websockets.connect(url) as noisy,
        websockets.connect(url) as calm,
        Device(server.ws_url, "hf-dev", token) as dev,
    ):
        await feed_until(noisy, lambda m: m["type"] == "hello")
        await feed_until(calm, lambda m: m["type"] == "hello")
        for junk in ["not json", '{"type": NaN}', b"\x00\xff", '{"type":"reading","v":1}', ""]:
            await noisy.send(junk)
        assert (await dev.reading(1, {"hr": 61}, ts=time.time()))["type"] == "ack"
        got = await feed_until(noisy, lambda m: m["type"] == "reading" and m["bed"] == "hf-bed")
        assert got["seq"] == 1
        await noisy.send("x" * (65 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(noisy.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert (await dev.reading(2, {"hr": 62}, ts=time.time()))["type"] == "ack"
        got = await feed_until(calm, lambda m: m["type"] == "reading" and m["seq"] == 2)
        assert got["bed"] == "hf-bed"
    assert [r["seq"] for r in server.get("/api/readings", bed="hf-bed")["readings"]] == [1, 2]
