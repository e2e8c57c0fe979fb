"""Device -> ingest -> store -> feed, through the real server (contract: device websocket,
readings API, feed). Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, feed_until


async def test_reading_is_acked_stored_and_pushed_to_the_feed(server: MonitorProcess) -> None:
    """A reading is acked, readable from GET /api/readings and pushed on the feed."""
    token = server.add_device("chair-3-mon", "chair-3")
    async with websockets.connect(f"{server.ws_url}/ws/feed?token={server.admin_token}") as feed:
        hello = await feed_until(feed, lambda m: m["type"] == "hello")
        assert any(b["id"] == "chair-3" for b in hello["beds"])
        async with Device(server.ws_url, "chair-3-mon", token) as dev:
            ts = time.time() - 1
            assert await dev.reading(42, {"hr": 78, "spo2": 97, "rr": 14}, ts=ts) == {
                "type": "ack",
                "seq": 42,
            }
        pushed = await feed_until(feed, lambda m: m["type"] == "reading")
    assert pushed["bed"] == "chair-3" and pushed["seq"] == 42
    assert pushed["values"] == {"hr": 78, "spo2": 97, "rr": 14}
    stored = server.get("/api/readings", bed="chair-3")["readings"]
    assert [(r["seq"], r["values"]["spo2"]) for r in stored] == [(42, 97)]


async def test_resent_seq_is_acked_again_and_stored_once(server: MonitorProcess) -> None:
    """A reading sent again with a stored seq is acknowledged again and stored once."""
    token = server.add_device("dev-a", "bed-a")
    async with Device(server.ws_url, "dev-a", token) as dev:
        ts = time.time()
        assert (await dev.reading(7, {"hr": 70}, ts=ts))["type"] == "ack"
        assert (await dev.reading(7, {"hr": 70}, ts=ts)) == {"type": "ack", "seq": 7}
    # A reconnect does not change that.
    async with Device(server.ws_url, "dev-a", token) as dev:
        assert (await dev.reading(7, {"hr": 70}, ts=ts)) == {"type": "ack", "seq": 7}
    assert len(server.get("/api/readings", bed="bed-a")["readings"]) == 1


async def test_cuff_reading_is_stored_with_its_source(server: MonitorProcess) -> None:
    """A cuff triple is stored as one reading tagged nibp, with device time kept."""
    token = server.add_device("dev-c", "bed-c")
    ts = time.time() - 30
    async with Device(server.ws_url, "dev-c", token) as dev:
        await dev.reading(1, {"sbp": 128, "dbp": 82, "map": 97}, ts=ts, source="nibp")
    (r,) = server.get("/api/readings", bed="bed-c")["readings"]
    assert r["source"] == "nibp" and r["values"] == {"sbp": 128, "dbp": 82, "map": 97}
    beds = {b["id"]: b for b in server.get("/api/beds")}
    latest = beds["bed-c"]["latest"]["sbp"]
    assert latest["value"] == 128 and latest["age_s"] >= 29


@pytest.mark.parametrize("how", ["none", "wrong", "revoked"])
async def test_device_without_a_valid_token_is_refused(server: MonitorProcess, how: str) -> None:
    """No token, a wrong one or a revoked one: closed with 1008, nothing stored."""
    token = server.add_device("dev-r", "bed-r")
    if how == "revoked":
        assert (
            http_client.delete(
                f"{server.base_url}/api/devices/dev-r", headers=server.headers
            ).status_code
            == 200
        )
    headers = (
        {}
        if how == "none"
        else {"Authorization": f"Bearer {token if how == 'revoked' else 'x' * 43}"}
    )
    async with websockets.connect(f"{server.ws_url}/ws/device", additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert server.get("/api/readings", bed="bed-r")["readings"] == []


async def test_token_in_query_string_is_accepted(server: MonitorProcess) -> None:
    """Devices that cannot set headers may pass ?token=."""
    token = server.add_device("dev-q", "bed-q")
    async with websockets.connect(f"{server.ws_url}/ws/device?token={token}") as ws:
        from monitor.wire.device import encode_reading

        await ws.send(encode_reading("dev-q", 1, time.time(), {"spo2": 95}))
        assert '"ack"' in await ws.recv()


async def test_bad_frame_gets_an_error_and_the_connection_stays_open(
    server: MonitorProcess,
) -> None:
    """A bad frame is answered with its code, nothing is stored, the next good one is acked."""
    token = server.add_device("dev-b", "bed-b")
    async with Device(server.ws_url, "dev-b", token) as dev:
        err = await dev.reading(1, {"spo2": 101})
        assert err == {
            "type": "error",
            "seq": 1,
            "code": "invalid_value",
            "detail": "spo2 must be within 0..100",
        }
        await dev.ws.send(b"\x00\x01binary")
        assert (await dev.recv())["code"] == "binary_frame"
        assert (await dev.reading(2, {"spo2": 99}))["type"] == "ack"
    assert [r["seq"] for r in server.get("/api/readings", bed="bed-b")["readings"]] == [2]


async def test_frame_over_the_size_limit_closes_with_1009(server: MonitorProcess) -> None:
    """A frame over 64 KiB closes the connection with 1009 and stores nothing."""
    token = server.add_device("dev-s", "bed-s")
    async with Device(server.ws_url, "dev-s", token) as dev:
        await dev.ws.send('{"type":"reading","pad":"' + "x" * 70_000 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await dev.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert "limit" in closed.value.rcvd.reason


async def test_readings_api_pages_by_device_time(server: MonitorProcess) -> None:
    """since <= ts < until, oldest first, at most limit; page with since = last ts."""
    token = server.add_device("dev-p", "bed-p")
    t0 = time.time() - 100
    async with Device(server.ws_url, "dev-p", token) as dev:
        # Sent out of order: the answer is in device-time order regardless.
        for seq in [3, 1, 2, 5, 4]:
            assert (await dev.reading(seq, {"hr": 60 + seq}, ts=t0 + seq))["type"] == "ack"
    from monitor.core.model import to_rfc3339

    page = server.get("/api/readings", bed="bed-p", limit=2)
    assert [r["seq"] for r in page["readings"]] == [1, 2]
    page2 = server.get("/api/readings", bed="bed-p", since=page["next_since"], limit=10)
    assert [r["seq"] for r in page2["readings"]] == [2, 3, 4, 5]
    window = server.get(
        "/api/readings", bed="bed-p", since=to_rfc3339(t0 + 2), until=to_rfc3339(t0 + 4)
    )
    assert [r["seq"] for r in window["readings"]] == [2, 3]


def test_health_answers_without_login_and_the_api_does_not(server: MonitorProcess) -> None:
    """/health is open; the API wants a bearer token."""
    health = http_client.get(f"{server.base_url}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["failing"] == []
    assert http_client.get(f"{server.base_url}/api/beds").status_code == 401
    assert (
        http_client.get(
            f"{server.base_url}/api/beds", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    assert http_client.get(f"{server.base_url}/openapi.json").status_code == 200


def test_wrong_password_is_refused(server: MonitorProcess) -> None:
    """Login with a wrong password gets 401 and no token."""
    r = http_client.post(
        f"{server.base_url}/api/auth/token", data={"username": "admin", "password": "nope"}
    )
    assert r.status_code == 401 and "access_token" not in r.json()
