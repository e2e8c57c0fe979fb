"""Alarm state across time and restarts (docs/reliability.md: state survives a monitor restart;
docs/protocol.md: a silent device raises a technical alarm after 10 s).

The silent-device tests are about the ticker, not the process: they run on the app in this
process with a clinic config whose no-data timeout is 2 s (the shipped 10 s is pinned by
tests/test_alarm_lifecycle_config.py) and a ticker 5x the shipped rate. The restart test
kills a real process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import http_client
from tests.conftest import InProcessMonitor, MonitorProcess, clinic_config, start_in_process
from tests.wsclient import Device

NO_DATA_S = 2.0


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessMonitor]:
    """The app in this process on SQLite with a 2-s no-data timeout; own beds per test."""
    tmp = tmp_path_factory.mktemp("quiet")

    def short_no_data(data: dict[str, Any]) -> None:
        data["technical"]["no_data"]["timeout_s"] = NO_DATA_S

    settings = {"clinic_config": clinic_config(tmp, short_no_data), "tick_interval_s": 0.2}
    srv = start_in_process(f"sqlite:///{tmp / 'vigil.db'}", tmp, settings)
    try:
        yield srv
    finally:
        srv.stop()


async def _until(pred: Any, timeout: float = 10.0) -> Any:
    """Poll ``pred`` (blocking HTTP, run in a thread) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(pred)
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_silent_device_raises_a_technical_alarm_after_the_no_data_timeout(
    quiet_server: InProcessMonitor,
) -> None:
    """A device that sends nothing for the no-data timeout (10 s shipped, 2 s here) raises
    kind technical, signal device, and data again ends it."""
    s = quiet_server
    token = s.add_device("quiet-mon", "quiet-bed")
    async with Device(s.ws_url, "quiet-mon", token) as dev:
        assert (await dev.reading(1, {"hr": 70}))["type"] == "ack"
        last = time.monotonic()
        found = await _until(
            lambda: [
                a
                for a in s.get("/api/alarms", bed="quiet-bed", active="true")["alarms"]
                if a["signal"] == "device"
            ],
            timeout=NO_DATA_S + 4,
        )
        assert NO_DATA_S - 0.5 <= time.monotonic() - last <= NO_DATA_S + 2.5
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


async def test_revoked_device_raises_no_data_alarm(quiet_server: InProcessMonitor) -> None:
    """A device taken out of service (token revoked) does not go on to alarm "no data"."""

    s = quiet_server
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
    r = http_client.delete(f"{s.base_url}/api/devices/gone-mon", headers=s.headers)
    assert r.status_code == 200

    def silent(bed: str) -> list[dict[str, object]]:
        active = s.get("/api/alarms", bed=bed, active="true")["alarms"]
        return [a for a in active if a["signal"] == "device"]

    await _until(lambda: silent("still-bed"), timeout=NO_DATA_S + 10)
    assert silent("gone-bed") == []
