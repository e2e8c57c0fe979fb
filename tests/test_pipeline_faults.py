"""The stored record is the truth and nothing fails silently (docs/reliability.md): a kill at
any fault point loses no alarm of an acknowledged reading; a database that stops taking
writes turns /health to 503 naming the stage, refuses commands with 503, and heals by itself;
an exception in the engine or the fan-out is counted and repaired by a rebuild from the
record. On SQLite and PostgreSQL: the kills on real monitor processes; the failures the
monitor lives through (a database refusing writes, an engine or fan-out raising) on the app
in this process (tests/conftest.py, InProcessMonitor), armed through the same settings."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import http_client
from tests.conftest import PG_ADMIN_DSN, MonitorProcess, fresh_database
from tests.polling import poll
from tests.wsclient import Device

CUFF_HIGH = {"sbp": 215.0, "dbp": 100.0, "map": 138.0}


@pytest.fixture
def fresh_db(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


def health(m: MonitorProcess) -> tuple[int, dict[str, Any]]:
    r = http_client.get(f"{m.base_url}/health", timeout=15)
    return r.status_code, r.json()


def alarms_of(m: MonitorProcess, bed: str, signal: str) -> list[dict[str, Any]]:
    return [a for a in m.get("/api/alarms", bed=bed)["alarms"] if a["signal"] == signal]


async def send_until_answered(dev: Device, seq: int, values: dict[str, float], ts: float) -> Any:
    """Send a reading; the answer, or None if the monitor went away first."""
    try:
        return await dev.reading(seq, values, ts=ts, source="nibp")
    except Exception:
        return None


@pytest.mark.parametrize("point", ["after_readings_commit", "after_alarm_commit", "after_ack"])
def test_an_alarm_of_an_acked_reading_survives_a_kill_at_each_fault_point(
    point: str, fresh_db: str, server_factory: Any
) -> None:
    """A cuff reading of 215 systolic, the monitor killed (SIGKILL) at a fault point of its
    handling, restarted without faults: the high alarm is there, once."""
    m = server_factory(db_url=fresh_db, env={"VIGIL_FAULTS": f"{point}=kill"})
    token = m.add_device("k-mon", "k-bed")
    ts = time.time() - 5

    async def measure() -> Any:
        async with Device(m.ws_url, "k-mon", token) as dev:
            return await send_until_answered(dev, 1, CUFF_HIGH, ts)

    answer = asyncio.run(measure())
    assert m.proc is not None
    assert m.proc.wait(15) == -9, "the armed fault point must kill the process"
    if point == "after_ack":
        assert answer == {"type": "ack", "seq": 1}
    m2 = server_factory(db_url=fresh_db)

    async def resend() -> Any:
        # What a device does with an unacked reading: send it again (stored once).
        async with Device(m2.ws_url, "k-mon", token) as dev:
            return await dev.reading(1, CUFF_HIGH, ts=ts, source="nibp")

    assert asyncio.run(resend()) == {"type": "ack", "seq": 1}
    found = poll(lambda: alarms_of(m2, "k-bed", "sbp"), timeout=20)
    assert len(found) == 1 and found[0]["priority"] == "high" and found[0]["ended_at"] is None
    assert len(m2.get("/api/readings", bed="k-bed")["readings"]) == 1


def test_an_acknowledged_alarm_is_still_acknowledged_after_a_kill(
    fresh_db: str, server_factory: Any
) -> None:
    """A nurse's acknowledgement answered 200 is stored: a kill and restart keep it."""
    m = server_factory(db_url=fresh_db)
    token = m.add_device("a-mon", "a-bed")

    async def measure() -> Any:
        async with Device(m.ws_url, "a-mon", token) as dev:
            return await dev.reading(1, CUFF_HIGH, source="nibp")

    assert asyncio.run(measure())["type"] == "ack"
    (alarm,) = poll(lambda: alarms_of(m, "a-bed", "sbp"), timeout=20)
    r = m.post(f"/api/alarms/{alarm['id']}/ack")
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "admin"
    m.kill()
    m2 = server_factory(db_url=fresh_db)
    (after,) = alarms_of(m2, "a-bed", "sbp")
    assert after["id"] == alarm["id"] and after["acknowledged_by"] == "admin"
    assert after["ended_at"] is None


@contextlib.contextmanager
def writes_refused(backend: str, db_url: str) -> Iterator[None]:
    """The database stops taking writes for the block: PostgreSQL turned read-only (new
    sessions read-only, the monitor's connections ended); SQLite locked by another writer."""
    if backend == "postgresql":
        name = db_url.rsplit("/", 1)[1]

        def set_read_only(on: bool) -> None:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(
                    f'ALTER DATABASE "{name}" SET default_transaction_read_only = '  # test db name
                    + ("on" if on else "off")
                )
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

        set_read_only(True)
        try:
            yield
        finally:
            set_read_only(False)
    else:
        path = db_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def test_a_database_that_refuses_writes_turns_health_to_503_and_recovers(
    backend: str, fresh_db: str, app_factory: Any
) -> None:
    """While writes fail: readings get `unavailable` (never acked), /health answers 503 naming
    `database`, an acknowledge and an admission answer 503 `unavailable` and nothing of them is
    stored or audited. Afterwards /health is 200 again by itself and the resent reading is
    stored once."""
    # A 2 s busy timeout: the refusals below each wait it out, and SQLite's 10 s default
    # would make this the suite's slowest test; PostgreSQL refuses at once.
    m = app_factory(db_url=fresh_db, sqlite_busy_timeout_s=2.0)
    token = m.add_device("r-mon", "r-bed")

    async def first() -> Any:
        async with Device(m.ws_url, "r-mon", token) as dev:
            return await dev.reading(1, CUFF_HIGH, source="nibp")

    assert asyncio.run(first())["type"] == "ack"
    (alarm,) = poll(lambda: alarms_of(m, "r-bed", "sbp"), timeout=20)
    assert health(m)[0] == 200
    with writes_refused(backend, fresh_db):

        async def during_reading() -> Any:
            async with Device(m.ws_url, "r-mon", token) as dev:
                await dev.send(2, {"hr": 80.0}, ts=time.time() - 1)
                return await dev.recv(timeout=30)

        answer = asyncio.run(during_reading())
        assert answer["type"] == "error" and answer["code"] == "unavailable"
        status, body = poll(lambda: (s := health(m))[0] == 503 and s, timeout=20)
        assert "database" in body["failing"] and body["status"] != "ok"
        assert body["stages"]["database"]["failures"] >= 1
        # Both at once: each waits out the store's own timeout (SQLite's busy timeout) once.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            ack_f = pool.submit(
                http_client.post,
                f"{m.base_url}/api/alarms/{alarm['id']}/ack",
                headers=m.headers,
                timeout=30,
            )
            admit_f = pool.submit(
                http_client.post,
                f"{m.base_url}/api/sessions",
                json={"bed": "r-bed", "patient_label": "RO"},
                headers=m.headers,
                timeout=30,
            )
            ack, admit = ack_f.result(), admit_f.result()
        assert ack.status_code == 503 and ack.json()["detail"]["code"] == "unavailable"
        assert admit.status_code == 503 and admit.json()["detail"]["code"] == "unavailable"
    poll(lambda: health(m)[0] == 200, timeout=30)
    # Healthy again by itself on a quiet bed: before any later alarm change was stored (the
    # silent device's no-data alarm comes only after the clinic's no-data timeout).
    assert alarms_of(m, "r-bed", "device") == []

    async def resend() -> Any:
        async with Device(m.ws_url, "r-mon", token) as dev:
            return await dev.reading(2, {"hr": 80.0}, ts=time.time() - 1)

    assert asyncio.run(resend()) == {"type": "ack", "seq": 2}
    assert [r["seq"] for r in m.get("/api/readings", bed="r-bed")["readings"]] == [1, 2]
    (after,) = poll(lambda: alarms_of(m, "r-bed", "sbp"), timeout=20)
    assert after["acknowledged_at"] is None, "a refused acknowledge must not be stored"
    assert m.get("/api/sessions", bed="r-bed")["sessions"] == []
    actions = [e["action"] for e in m.get("/api/audit")["entries"]]
    assert "alarm_ack" not in actions


def test_an_exception_in_the_engine_is_counted_and_the_bed_rebuilt_from_the_record(
    fresh_db: str, app_factory: Any
) -> None:
    """The engine raising on a bed: /health says `engine` with the count while it lasts,
    readings are still acked, and the bed's rebuild from the record raises the alarm the
    failed judgement missed."""
    m = app_factory(db_url=fresh_db, faults="engine=raise:30")
    token = m.add_device("e-mon", "e-bed")
    seen: list[dict[str, Any]] = []

    async def run() -> list[Any]:
        answers = []
        async with Device(m.ws_url, "e-mon", token) as dev:
            answers.append(await dev.reading(1, CUFF_HIGH, source="nibp"))
            # Heartbeats keep the fault firing (each is judged by the engine's device rule).
            for _ in range(40):
                await dev.ws.send(
                    '{"type": "heartbeat", "v": 1, "device_id": "e-mon", "ts": "'
                    + time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
                    + '"}'
                )
                status, body = await asyncio.to_thread(health, m)
                if status == 503:
                    seen.append(body)
                await asyncio.sleep(0.1)
            answers.append(await dev.reading(2, {"hr": 70.0}))
        return answers

    answers = asyncio.run(run())
    assert [a["type"] for a in answers] == ["ack", "ack"]
    assert seen and all("engine" in b["failing"] for b in seen)
    found = poll(lambda: alarms_of(m, "e-bed", "sbp"), timeout=20)
    assert len(found) == 1 and found[0]["priority"] == "high"
    status, body = poll(lambda: (s := health(m))[0] == 200 and s, timeout=20)
    # While a bed awaits its rebuild nothing is judged on it, so the fault fires again only
    # after each rebuild: every failure counted, every one repaired.
    assert body["stages"]["engine"]["failures"] >= 2
    assert body["counts"]["rebuilds"] >= body["stages"]["engine"]["failures"]


def test_a_failing_fan_out_is_counted_and_never_stops_ingest(
    fresh_db: str, app_factory: Any
) -> None:
    """Delivery to panels raising: every reading is still stored and acked, and /health
    counts the failures of `fanout`."""
    m = app_factory(db_url=fresh_db, faults="fanout=raise:5")
    token = m.add_device("f-mon", "f-bed")

    async def run() -> list[Any]:
        async with Device(m.ws_url, "f-mon", token) as dev:
            return [await dev.reading(i, {"hr": 70.0 + i}) for i in range(1, 9)]

    assert [a["type"] for a in asyncio.run(run())] == ["ack"] * 8
    assert len(m.get("/api/readings", bed="f-bed")["readings"]) == 8
    status, body = poll(lambda: (s := health(m))[0] == 200 and s, timeout=20)
    assert body["stages"]["fanout"]["failures"] == 5
