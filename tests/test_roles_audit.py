"""Roles and audit (docs/security.md): nobody in who shouldn't be.

Every route of the running monitor's OpenAPI document is classified by the least role it
needs; the walk proves none but /health and the login answers without a valid token, and
none answers a role below its own. A route missing from the table fails the test, so a new
route must be classified. Every action a clinic must be able to account for leaves an
append-only audit entry readable by admins only.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from monitor.records.store import Store
from monitor.settings import Settings
from tests import http_client
from tests.conftest import ADMIN_PASSWORD, MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device

PUBLIC = None
ROLES = ("nurse", "charge", "admin")

# (method, path) -> the least role that may call it (None: no login at all).
ROUTE_MIN_ROLE: dict[tuple[str, str], str | None] = {
    ("GET", "/health"): PUBLIC,
    ("POST", "/api/auth/token"): PUBLIC,
    ("POST", "/api/auth/logout"): "nurse",
    ("GET", "/api/me"): "nurse",
    ("GET", "/api/auth/me"): "nurse",
    ("GET", "/api/beds"): "nurse",
    ("GET", "/api/readings"): "nurse",
    ("GET", "/api/alarms"): "nurse",
    ("POST", "/api/alarms/{alarm_id}/ack"): "nurse",
    ("POST", "/api/beds/{bed_id}/audio-pause"): "nurse",
    ("GET", "/api/protocols"): "nurse",
    ("POST", "/api/sessions"): "nurse",
    ("GET", "/api/sessions"): "nurse",
    ("GET", "/api/sessions/{session_id}"): "nurse",
    ("POST", "/api/sessions/{session_id}/events"): "nurse",
    ("GET", "/api/sessions/{session_id}/limits"): "nurse",
    ("PUT", "/api/sessions/{session_id}/limits"): "charge",
    ("GET", "/api/sessions/{session_id}/report"): "nurse",
    ("GET", "/api/sessions/{session_id}/report.csv"): "nurse",
    ("GET", "/api/sessions/{session_id}/report.fhir.json"): "nurse",
    ("POST", "/api/devices"): "admin",
    ("DELETE", "/api/devices/{device_id}"): "admin",
    ("POST", "/api/users"): "admin",
    ("POST", "/api/users/{name}/disable"): "admin",
    ("POST", "/api/users/{name}/enable"): "admin",
    ("GET", "/api/audit"): "admin",
    # The course and the REMS record (docs/course.md); signing incomplete needs charge, which
    # the rule checks itself (a nurse's reasoned signature is a 403 override_forbidden).
    ("GET", "/api/patients/{patient_id}"): "nurse",
    ("GET", "/api/patients/{patient_id}/fhir.json"): "nurse",
    ("GET", "/api/sessions/{session_id}/rems"): "nurse",
    ("GET", "/api/sessions/{session_id}/rems.html"): "nurse",
    ("POST", "/api/sessions/{session_id}/rems/sign"): "nurse",
    ("POST", "/api/sessions/{session_id}/rems/filed"): "nurse",
    ("GET", "/api/rems"): "nurse",
}
LOGOUT = ("POST", "/api/auth/logout")

PASSWORD = "roles-password-1"


def _openapi_routes(server: MonitorProcess) -> set[tuple[str, str]]:
    doc = http_client.get(f"{server.base_url}/openapi.json", timeout=10).json()
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}


def _tokens(server: MonitorProcess, prefix: str) -> dict[str, str]:
    tokens = {"admin": server.admin_token}
    for role in ("nurse", "charge"):
        server.add_user(f"{prefix}-{role}", role, PASSWORD)
        tokens[role] = server.login(f"{prefix}-{role}", PASSWORD)
    return tokens


def _request(
    http: httpx.Client, method: str, path: str, token: str | None, ids: dict[str, str]
) -> httpx.Response:
    url = path.format(**ids)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body: dict[str, Any] | None = {
        ("POST", "/api/devices"): {"device_id": "roles-new-dev", "bed": "roles-bed"},
        ("POST", "/api/users"): {"name": "roles-new-user", "role": "nurse", "password": "x" * 12},
        ("POST", "/api/sessions"): {"bed": "roles-bed", "patient_label": "R"},
        ("POST", "/api/sessions/{session_id}/events"): {
            "type": "observation",
            "data": {"note": "r"},
        },
        ("PUT", "/api/sessions/{session_id}/limits"): {"overrides": {}},
        ("POST", "/api/beds/{bed_id}/audio-pause"): {"seconds": 60},
    }.get((method, path))
    if path == "/api/auth/token":
        return http.post(url, data={"username": "nobody", "password": "wrong"})
    return http.request(method, url, json=body, headers=headers)


def test_every_route_is_classified(server: MonitorProcess) -> None:
    """The table covers exactly the routes the monitor serves: a new one must be classified."""
    routes = _openapi_routes(server)
    assert routes - ROUTE_MIN_ROLE.keys() == set(), "classify these routes in ROUTE_MIN_ROLE"
    assert ROUTE_MIN_ROLE.keys() - routes == set(), "stale entries in ROUTE_MIN_ROLE"


def test_no_route_answers_without_a_valid_token_or_below_its_role(server: MonitorProcess) -> None:
    """401 without or with a bad token (except /health and login); 403 below the least role;
    the least role and those above it get through."""
    tokens = _tokens(server, "walk")
    device_token = server.add_device("roles-dev", "roles-bed")
    server.add_device("roles-victim", "roles-bed")
    r = server.post("/api/sessions", {"bed": "roles-bed", "patient_label": "R"})
    assert r.status_code == 201
    ids = {
        "session_id": str(r.json()["id"]),
        "bed_id": "roles-bed",
        "alarm_id": "no-such-alarm",
        "device_id": "roles-victim",
        "name": "roles-no-such-user",
        "patient_id": "roles-no-such-patient",
    }
    users = {"nurse": "walk-nurse", "charge": "walk-charge"}
    wrong: list[str] = []
    http = http_client.Client(base_url=server.base_url, timeout=10)
    for (method, path), least in sorted(ROUTE_MIN_ROLE.items()):
        if least is PUBLIC:
            status = _request(http, method, path, None, ids).status_code
            if status in (401, 403) and path != "/api/auth/token":
                wrong.append(f"{method} {path} public but {status}")
            continue
        for label, token in (
            ("no token", None),
            ("bad token", "x" * 43),
            ("device token", device_token),
        ):
            status = _request(http, method, path, token, ids).status_code
            if status != 401:
                wrong.append(f"{method} {path} with {label}: {status}")
        rank = ROLES.index(least)
        for role in ROLES[:rank]:
            status = _request(http, method, path, tokens[role], ids).status_code
            if status != 403:
                wrong.append(f"{method} {path} as {role}: {status}, wanted 403")
        for role in ROLES[rank:]:
            if method == "DELETE" and role != "admin":
                continue  # only admin reaches it; revoking once is enough
            token = tokens[role]
            if (method, path) == LOGOUT:
                # Logging out revokes the token: spend a fresh one, keep the walk's.
                token = (
                    server.login(users[role], PASSWORD)
                    if role in users
                    else server.login("admin", ADMIN_PASSWORD)
                )
            status = _request(http, method, path, token, ids).status_code
            if status in (401, 403) or status >= 500:
                wrong.append(f"{method} {path} as {role}: {status}, wanted through")
    http.close()
    assert wrong == []


async def test_websockets_refuse_without_a_valid_token(server: MonitorProcess) -> None:
    """/ws/feed and /ws/device close 1008 without a token, with a wrong one, or with the
    other kind (a device token is no login; a login is no device); the feed's first-message
    login (docs/protocol.md) is held to the same."""
    device_token = server.add_device("roles-ws-dev", "roles-ws-bed")

    def auth(token: str) -> str:
        return json.dumps({"type": "auth", "v": 1, "token": token})

    attempts = [
        ("/ws/feed", "", '{"type": "ping", "v": 1}'),
        ("/ws/feed", "", auth("x" * 43)),
        ("/ws/feed", "", auth(device_token)),
        ("/ws/feed", "?token=" + "x" * 43, None),
        ("/ws/feed", f"?token={device_token}", None),
        ("/ws/device", "", None),
        ("/ws/device", "?token=" + "x" * 43, None),
        ("/ws/device", f"?token={server.admin_token}", None),
    ]
    codes = []
    for path, query, first in attempts:
        async with websockets.connect(f"{server.ws_url}{path}{query}") as ws:
            if first is not None:
                await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    assert codes == [1008] * len(attempts)
    # And with the right kind of token each lets in, by header, query or first message.
    async with websockets.connect(f"{server.ws_url}/ws/feed?token={server.admin_token}") as ws:
        assert '"hello"' in await asyncio.wait_for(ws.recv(), 5)
    async with websockets.connect(f"{server.ws_url}/ws/feed") as ws:
        await ws.send(auth(server.admin_token))
        assert '"hello"' in await asyncio.wait_for(ws.recv(), 5)


async def test_actions_leave_an_append_only_audit_trail_for_admins(server: MonitorProcess) -> None:
    """Logins (and failures), acknowledgements, pauses, limit changes (with their reason),
    session events and device/user administration each leave an entry naming who; only
    admins read them."""
    tokens = await asyncio.to_thread(_tokens, server, "aud")
    nurse = {"Authorization": f"Bearer {tokens['nurse']}"}
    charge = {"Authorization": f"Bearer {tokens['charge']}"}
    first = (await asyncio.to_thread(server.get, "/api/audit"))["entries"]

    async with http_client.AsyncClient(base_url=server.base_url, timeout=10) as http:
        failed = await http.post(
            "/api/auth/token", data={"username": "aud-nurse", "password": "wrong-password"}
        )
        assert failed.status_code == 401
        r = await http.post(
            "/api/devices", json={"device_id": "aud-dev", "bed": "aud-bed"}, headers=server.headers
        )
        dev_token = r.json()["token"]
        r = await http.post(
            "/api/sessions", json={"bed": "aud-bed", "patient_label": "A"}, headers=nurse
        )
        sid = r.json()["id"]
        assert (
            await http.post(
                f"/api/sessions/{sid}/events", json={"type": "infusion_start"}, headers=nurse
            )
        ).status_code == 200
        # A sustained desaturation in device time raises an alarm to acknowledge.
        t0 = time.time() - 60
        async with Device(server.ws_url, "aud-dev", dev_token) as dev:
            for i in range(25):
                assert (await dev.reading(i + 1, {"spo2": 80}, ts=t0 + i))["type"] == "ack"
        alarm_id = None
        for _ in range(40):
            alarms = (
                await http.get(
                    "/api/alarms", params={"bed": "aud-bed", "active": "true"}, headers=nurse
                )
            ).json()["alarms"]
            alarm_id = next((a["id"] for a in alarms if a["signal"] == "spo2"), None)
            if alarm_id:
                break
            await asyncio.sleep(0.1)
        assert alarm_id is not None
        assert (await http.post(f"/api/alarms/{alarm_id}/ack", headers=nurse)).status_code == 200
        assert (
            await http.post("/api/beds/aud-bed/audio-pause", json={"seconds": 60}, headers=nurse)
        ).status_code == 200
        limits = (await http.get(f"/api/sessions/{sid}/limits", headers=charge)).json()
        assert (
            await http.put(
                f"/api/sessions/{sid}/limits",
                json={"overrides": limits["overrides"], "reason": "known low baseline"},
                headers=charge,
            )
        ).status_code == 200
        assert (
            await http.delete("/api/devices/aud-dev", headers=server.headers)
        ).status_code == 200
        for who in (nurse, charge):
            assert (await http.get("/api/audit", headers=who)).status_code == 403

    entries = (await asyncio.to_thread(server.get, "/api/audit"))["entries"]
    # Append-only: what was there before is still there, unchanged, in the same order.
    assert entries[: len(first)] == first
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    new = {(e["action"], e["actor"], e["target"]) for e in entries[len(first) :]}
    expected = {
        ("login_failed", "aud-nurse", "127.0.0.1"),
        ("device_add", "admin", "aud-dev"),
        ("session_open", "aud-nurse", "aud-bed"),
        ("session_infusion_start", "aud-nurse", str(sid)),
        ("alarm_ack", "aud-nurse", alarm_id),
        ("audio_pause", "aud-nurse", "aud-bed"),
        ("limits_change", "aud-charge", str(sid)),
        ("device_revoke", "admin", "aud-dev"),
    }
    assert expected - new == set()
    change = next(e for e in entries[len(first) :] if e["action"] == "limits_change")
    assert change["detail"] == {"overrides": limits["overrides"], "reason": "known low baseline"}
    logins = {(e["action"], e["actor"]) for e in entries}
    assert {("login", "aud-nurse"), ("login", "aud-charge"), ("user_add", "admin")} <= logins
    # No secrets in the trail.
    assert "wrong-password" not in str(entries) and PASSWORD not in str(entries)


def test_login_is_rate_limited_per_name_and_address(app_factory: Any) -> None:
    """After the allowed failures even the right password waits (429 with Retry-After) for
    that name; an address that guessed past its own budget waits for every name
    (docs/security.md)."""
    s: MonitorProcess = app_factory(
        login_attempts_per_minute=3, login_attempts_per_address_per_minute=5
    )
    s.add_user("rl-nurse", "nurse", PASSWORD)
    url = f"{s.base_url}/api/auth/token"
    statuses = [
        http_client.post(url, data={"username": "rl-nurse", "password": f"guess-{i}"}).status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 401]
    right = http_client.post(url, data={"username": "rl-nurse", "password": PASSWORD})
    assert right.status_code == 429 and "access_token" not in right.text
    assert 1 <= int(right.headers["retry-after"]) <= 60
    # Another name from the same address still gets its answer, until the address has
    # spent its own budget (5): then guessing any name from it gets nowhere.
    other = [
        http_client.post(url, data={"username": "admin", "password": f"x-{i}"}).status_code
        for i in range(3)
    ]
    assert other == [401, 401, 429]
    # Tokens issued before stay valid: the limit is on guessing, not on working.
    assert http_client.get(f"{s.base_url}/api/me", headers=s.headers).status_code == 200


async def test_no_default_logins_exist(tmp_path: Any) -> None:
    """Secure defaults: settings carry no password, a fresh database has no user at all."""
    assert not [f for f in Settings.model_fields if "password" in f or "secret" in f]
    store = await Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        for name in ("admin", "nurse", "charge", "demo", "root", "vigil"):
            assert await store.user_by_name(name) is None
        assert await store.audit_entries() == []
    finally:
        await store.close()
