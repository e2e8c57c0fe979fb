"""Alarms through the real server: raised from device time, stored, pushed, acknowledged,
and rebuilt after a restart (contract: /api/alarms, ack, technical no-data alarm)."""

from __future__ import annotations

import time

import websockets

from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, feed_until


async def desaturate(dev: Device, t0: float, seconds: int, spo2: float, seq0: int = 1) -> None:
    for i in range(seconds):
        ack = await dev.reading(seq0 + i, {"spo2": spo2, "hr": 80}, ts=t0 + i)
        assert ack["type"] == "ack", ack


async def test_sustained_low_spo2_raises_medium_then_high_on_the_feed(
    server: MonitorProcess,
) -> None:
    """SpO2 < 90 for 15 s (device time) raises medium; < 85 for 10 s more raises high."""
    token = server.add_device("a-bed-1-mon", "a-bed-1")
    t0 = time.time() - 120
    async with websockets.connect(f"{server.ws_url}/ws/feed?token={server.admin_token}") as feed:
        async with Device(server.ws_url, "a-bed-1-mon", token) as dev:
            await desaturate(dev, t0, 17, 88)
            medium = await feed_until(
                feed, lambda m: m["type"] == "alarm" and m["alarm"]["bed"] == "a-bed-1"
            )
            assert medium["alarm"]["signal"] == "spo2"
            assert medium["alarm"]["priority"] == "medium"
            assert medium["alarm"]["kind"] == "physiological"
            await desaturate(dev, t0 + 17, 12, 82, seq0=100)
            high = await feed_until(
                feed, lambda m: m["type"] == "alarm" and m["alarm"]["priority"] == "high"
            )
            assert high["alarm"]["bed"] == "a-bed-1"
    stored = server.get("/api/alarms", bed="a-bed-1")["alarms"]
    assert any(
        a["priority"] == "high" and a["signal"] == "spo2" and a["ended_at"] is None for a in stored
    )


async def test_short_dip_raises_nothing(server: MonitorProcess) -> None:
    """A 5-second artefact dip below 85 stays under the condition delay: no alarm."""
    token = server.add_device("a-bed-2-mon", "a-bed-2")
    t0 = time.time() - 60
    async with Device(server.ws_url, "a-bed-2-mon", token) as dev:
        await desaturate(dev, t0, 5, 80)
        await desaturate(dev, t0 + 5, 20, 97, seq0=10)
    alarms = server.get("/api/alarms", bed="a-bed-2")["alarms"]
    assert [a for a in alarms if a["kind"] == "physiological"] == []


async def test_acknowledge_records_who_and_when(server: MonitorProcess) -> None:
    """POST /api/alarms/{id}/ack acknowledges as the logged-in user; the alarm stays visible."""
    token = server.add_device("a-bed-3-mon", "a-bed-3")
    t0 = time.time() - 120
    async with Device(server.ws_url, "a-bed-3-mon", token) as dev:
        await desaturate(dev, t0, 20, 82)
    (alarm,) = [
        a for a in server.get("/api/alarms", bed="a-bed-3")["alarms"] if a["signal"] == "spo2"
    ]
    r = server.post(f"/api/alarms/{alarm['id']}/ack")
    assert r.status_code == 200, r.text
    acked = r.json()
    assert acked["acknowledged_by"] == "admin" and acked["acknowledged_at"] is not None
    assert acked["ended_at"] is None  # still shown until the condition clears
    beds = {b["id"]: b for b in server.get("/api/beds")}
    assert [a["id"] for a in beds["a-bed-3"]["alarms"]] == [alarm["id"]]
    assert server.post("/api/alarms/no-such-alarm/ack").status_code == 404


async def test_audio_pause_answers_with_its_end(server: MonitorProcess) -> None:
    """Audio pause for a bed is a command with a visible end time."""
    token = server.add_device("a-bed-4-mon", "a-bed-4")
    async with Device(server.ws_url, "a-bed-4-mon", token) as dev:
        await desaturate(dev, time.time() - 100, 20, 82)
    r = http_client.post(
        f"{server.base_url}/api/beds/a-bed-4/audio-pause",
        json={"seconds": 60},
        headers=server.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["audio_paused_until"] is not None
    assert (
        http_client.post(
            f"{server.base_url}/api/beds/nope/audio-pause", headers=server.headers
        ).status_code
        == 404
    )
