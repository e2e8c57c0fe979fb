"""Alarm state across time and restarts (docs/reliability.md: state survives a monitor restart;
docs/protocol.md: a silent device raises a technical alarm after 10 s)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import MonitorProcess
from tests.wsclient import Device


async def _until(pred: Any, timeout: float = 10.0) -> Any:
    """Poll ``pred`` (blocking HTTP, run in a thread) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(pred)
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


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
        await _until(
            lambda: (
                not [
                    a
                    for a in s.get("/api/alarms", bed="quiet-bed", active="true")["alarms"]
                    if a["signal"] == "device"
                ]
            )
        )


async def test_active_alarms_survive_a_restart(server_factory) -> None:  # type: ignore[no-untyped-def]
    """An alarm active before a restart (even SIGKILL) is active after it, same id."""
    s: MonitorProcess = server_factory()
    token = s.add_device("r-mon", "r-bed")
    t0 = time.time() - 100
    async with Device(s.ws_url, "r-mon", token) as dev:
        for i in range(20):
            assert (await dev.reading(i + 1, {"spo2": 82}, ts=t0 + i))["type"] == "ack"

    def spo2_alarms() -> set[str]:
        return {
            a["id"]
            for a in s.get("/api/alarms", bed="r-bed", active="true")["alarms"]
            if a["signal"] == "spo2"
        }

    before = await _until(spo2_alarms)
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
    # A device still in service that falls silent at the same moment: its alarm shows when
    # the revoked one's would have.
    control = s.add_device("still-mon", "still-bed")
    async with (
        Device(s.ws_url, "gone-mon", token) as dev,
        Device(s.ws_url, "still-mon", control) as other,
    ):
        assert (await dev.reading(1, {"hr": 70}))["type"] == "ack"
        assert (await other.reading(1, {"hr": 70}))["type"] == "ack"
    r = httpx.delete(f"{s.base_url}/api/devices/gone-mon", headers=s.headers)
    assert r.status_code == 200

    def silent(bed: str) -> list[dict[str, object]]:
        active = s.get("/api/alarms", bed=bed, active="true")["alarms"]
        return [a for a in active if a["signal"] == "device"]

    await _until(lambda: silent("still-bed"), timeout=20)
    assert silent("gone-bed") == []
