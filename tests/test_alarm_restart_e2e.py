"""Alarm state across time and restarts (issue 3: state survives a monitor restart;
contract: a silent device raises a technical alarm after 10 s)."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import MonitorProcess
from tests.wsclient import Device


async def test_silent_device_raises_a_technical_alarm_within_ten_seconds(
    sqlite_server: MonitorProcess,
) -> None:
    """A device that sends nothing for 10 s raises kind technical, signal device."""
    s = sqlite_server
    token = s.add_device("quiet-mon", "quiet-bed")
    async with Device(s.ws_url, "quiet-mon", token) as dev:
        assert (await dev.reading(1, {"hr": 70}))["type"] == "ack"
        last = time.monotonic()
        deadline = last + 14
        found = None
        while time.monotonic() < deadline and not found:
            await asyncio.sleep(0.5)
            found = [
                a
                for a in s.get("/api/alarms", bed="quiet-bed", active="true")["alarms"]
                if a["signal"] == "device"
            ]
        assert found, "no technical alarm"
        assert time.monotonic() - last <= 12.5
        assert found[0]["kind"] == "technical"
        # Data again ends it.
        assert (await dev.reading(2, {"hr": 70}))["type"] == "ack"
        await asyncio.sleep(0.3)
        assert not [
            a
            for a in s.get("/api/alarms", bed="quiet-bed", active="true")["alarms"]
            if a["signal"] == "device"
        ]


async def test_active_alarms_survive_a_restart(server_factory) -> None:  # type: ignore[no-untyped-def]
    """An alarm active before a restart (even SIGKILL) is active after it, same id."""
    s: MonitorProcess = server_factory()
    token = s.add_device("r-mon", "r-bed")
    t0 = time.time() - 100
    async with Device(s.ws_url, "r-mon", token) as dev:
        for i in range(20):
            assert (await dev.reading(i + 1, {"spo2": 82}, ts=t0 + i))["type"] == "ack"
    await asyncio.sleep(0.3)
    before = {
        a["id"]
        for a in s.get("/api/alarms", bed="r-bed", active="true")["alarms"]
        if a["signal"] == "spo2"
    }
    assert before
    s.kill()
    s.start()
    after = s.get("/api/alarms", bed="r-bed", active="true")["alarms"]
    assert before <= {a["id"] for a in after}
    beds = {b["id"]: b for b in s.get("/api/beds")}
    assert before <= {a["id"] for a in beds["r-bed"]["alarms"]}


async def test_revoked_device_raises_no_data_alarm(sqlite_server: MonitorProcess) -> None:
    """A device taken out of service (token revoked) does not go on to alarm "no data"."""
    import httpx

    s = sqlite_server
    token = s.add_device("gone-mon", "gone-bed")
    async with Device(s.ws_url, "gone-mon", token) as dev:
        assert (await dev.reading(1, {"hr": 70}))["type"] == "ack"
    r = httpx.delete(f"{s.base_url}/api/devices/gone-mon", headers=s.headers)
    assert r.status_code == 200
    await asyncio.sleep(12)
    active = s.get("/api/alarms", bed="gone-bed", active="true")["alarms"]
    assert [a for a in active if a["signal"] == "device"] == []
