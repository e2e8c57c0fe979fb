"""Pulse rate ``pr`` through the real server: accepted, stored in its own column, judged apart
from the ECG heart rate (docs/protocol.md, docs/alarms.md "Heart rate and pulse rate")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from monitor.records.migrate import sync_url, upgrade
from tests.conftest import MonitorProcess, fresh_database
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.polling import poll
from tests.wsclient import Device


async def test_a_poor_probe_gives_a_technical_alarm_and_the_readings_keep_both_rates(
    server: MonitorProcess,
) -> None:
    """hr 78 beside pr 40 for 40 s: pr stored and shown apart, no physiological alarm, one
    low technical alarm "HR and pulse disagree" on the bed."""
    token = server.add_device("p-bed-1-mon", "p-bed-1")
    t0 = time.time() - 100
    async with Device(server.ws_url, "p-bed-1-mon", token) as dev:
        for i in range(40):
            ack = await dev.reading(i + 1, {"hr": 78, "pr": 40, "spo2": 97}, ts=t0 + i)
            assert ack["type"] == "ack", ack
    readings = server.get("/api/readings", bed="p-bed-1")["readings"]
    assert len(readings) == 40
    assert all(r["values"] == {"hr": 78, "pr": 40, "spo2": 97} for r in readings)

    def alarms() -> list[dict[str, object]]:
        return [
            a for a in server.get("/api/alarms", bed="p-bed-1")["alarms"] if a["signal"] == "rate"
        ]

    (alarm,) = poll(alarms)
    assert (alarm["kind"], alarm["priority"]) == ("technical", "low")
    assert alarm["condition"] == "HR and pulse disagree: check leads and probe"
    stored = server.get("/api/alarms", bed="p-bed-1")["alarms"]
    assert [a for a in stored if a["kind"] == "physiological"] == []
    (bed,) = [b for b in server.get("/api/beds") if b["id"] == "p-bed-1"]
    assert bed["latest"]["pr"]["value"] == 40


async def test_pr_out_of_range_is_rejected_like_hr(server: MonitorProcess) -> None:
    """pr 0-350 /min like hr (contract); outside is invalid_value, nothing stored."""
    token = server.add_device("p-bed-2-mon", "p-bed-2")
    async with Device(server.ws_url, "p-bed-2-mon", token) as dev:
        err = await dev.reading(1, {"pr": 351}, ts=time.time() - 5)
        assert (err["type"], err["code"]) == ("error", "invalid_value")
    assert server.get("/api/readings", bed="p-bed-2")["readings"] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_adds_the_pr_column_and_keeps_older_readings(
    backend: str, tmp_path: Path
) -> None:
    """0005_pulse: a database at the first revision gains readings.pr (NULL for old rows)."""
    with fresh_database(backend, tmp_path) as url:
        upgrade(url, "0001_initial")
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO readings (device_id, seq, ts, received_at, hr) "
                        "VALUES ('d', 1, 1.0, 1.0, 70.0)"
                    )
                )
            upgrade(url)
            columns = {c["name"] for c in inspect(engine).get_columns("readings")}
            assert "pr" in columns
            with engine.connect() as conn:
                row = conn.execute(text("SELECT hr, pr FROM readings")).one()
            assert tuple(row) == (70.0, None)
        finally:
            engine.dispose()
