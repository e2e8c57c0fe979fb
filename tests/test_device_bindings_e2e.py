"""Bed placement by measurement time, through the real server on SQLite and PostgreSQL
(docs/reliability.md, "A reading belongs to the bed its device was bound to at its
measurement time").

Every time below is the real clock: a device "measures" by reading it and may send the
reading after it was bound to another bed (store-and-forward).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import sqlalchemy as sa

from monitor.records import migrate
from monitor.records.schema import device_bindings
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.test_session_membership_e2e import HR, admit, bed_seqs, csv_seqs, session_seqs
from tests.wsclient import Device, measure_after


def rebind(server: MonitorProcess, device_id: str, bed: str) -> tuple[str, float, float]:
    """Bind the device to ``bed`` through the API: its new token, and clock readings just
    before and just after the rebinding was stored."""
    before = time.time()
    token = server.add_device(device_id, bed)
    return token, before, time.time()


async def test_a_reading_measured_before_a_rebinding_stays_on_the_old_bed(
    server: MonitorProcess,
) -> None:
    """Bound to A, then to B: a reading measured before the rebinding and sent after it is
    A's (its readings, its session, its CSV); one measured after is B's (docs/reliability.md)."""
    dev_id, bed_a, bed_b = "bind-mon-1", "bind-bed-1a", "bind-bed-1b"
    server.add_device(dev_id, bed_a)
    a, a_opened = admit(server, bed_a, "Patient A")
    measured_on_a = measure_after(a_opened)
    token, rebound_from, rebound_by = rebind(server, dev_id, bed_b)
    assert measured_on_a < rebound_from
    async with Device(server.ws_url, dev_id, token) as dev:
        assert (await dev.reading(1, HR, ts=measured_on_a))["type"] == "ack"
        assert (await dev.reading(2, HR, ts=measure_after(rebound_by)))["type"] == "ack"

    assert bed_seqs(server, bed_a) == [1]
    assert bed_seqs(server, bed_b) == [2]
    assert session_seqs(server, a) == [1]
    assert csv_seqs(server, a) == [1]


async def test_a_connection_open_across_a_rebinding_places_each_reading_by_its_time(
    server: MonitorProcess,
) -> None:
    """A device streaming while an admin binds it elsewhere: readings measured after the
    rebinding go to the new bed at once, its backlog from before stays on the old one
    (docs/reliability.md)."""
    dev_id, bed_a, bed_b = "bind-mon-2", "bind-bed-2a", "bind-bed-2b"
    token = server.add_device(dev_id, bed_a)
    a, a_opened = admit(server, bed_a, "Patient A")
    async with Device(server.ws_url, dev_id, token) as dev:
        assert (await dev.reading(1, HR, ts=measure_after(a_opened)))["type"] == "ack"
        buffered = measure_after(a_opened)
        _, _, rebound_by = rebind(server, dev_id, bed_b)
        b, _ = admit(server, bed_b, "Patient B")
        assert (await dev.reading(3, HR, ts=measure_after(rebound_by)))["type"] == "ack"
        assert (await dev.reading(2, HR, ts=buffered))["type"] == "ack"

    assert bed_seqs(server, bed_a) == [1, 2]
    assert bed_seqs(server, bed_b) == [3]
    assert session_seqs(server, a) == [1, 2] and csv_seqs(server, a) == [1, 2]
    assert session_seqs(server, b) == [3]


async def test_a_rebinding_by_the_cli_is_honoured_when_the_device_reconnects(
    server: MonitorProcess,
) -> None:
    """``add-device DEV --bed OTHER`` from the command line while the monitor runs: the
    device's backlog measured before it stays on the old bed (docs/reliability.md)."""
    dev_id, bed_a, bed_b = "bind-mon-3", "bind-bed-3a", "bind-bed-3b"
    server.add_device(dev_id, bed_a)
    measured_on_a = time.time()
    r = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "monitor",
            "add-device",
            dev_id,
            "--bed",
            bed_b,
            "--db",
            server.db_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    rebound_by = time.time()
    async with Device(server.ws_url, dev_id, r.stdout.strip()) as dev:
        assert (await dev.reading(1, HR, ts=measured_on_a))["type"] == "ack"
        assert (await dev.reading(2, HR, ts=measure_after(rebound_by)))["type"] == "ack"
    assert bed_seqs(server, bed_a) == [1]
    assert bed_seqs(server, bed_b) == [2]


async def test_binding_to_the_same_bed_again_and_readings_from_before_registration_stay_put(
    server: MonitorProcess,
) -> None:
    """A device's first binding holds for all earlier time, and binding it again to the bed
    it is on changes nothing: both readings are the one bed's (docs/reliability.md)."""
    dev_id, bed = "bind-mon-4", "bind-bed-4"
    before_registration = time.time() - 30
    server.add_device(dev_id, bed)
    token, _, again_by = rebind(server, dev_id, bed)
    async with Device(server.ws_url, dev_id, token) as dev:
        assert (await dev.reading(1, HR, ts=before_registration))["type"] == "ack"
        assert (await dev.reading(2, HR, ts=measure_after(again_by)))["type"] == "ack"
    assert bed_seqs(server, bed) == [1, 2]


def stored_bindings(db_url: str, device_id: str) -> list[tuple[str, float, float | None]]:
    """The device's stored bindings, oldest first, read from the monitor's database."""
    engine = sa.create_engine(migrate.sync_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    device_bindings.c.bed_id, device_bindings.c.since, device_bindings.c.until
                )
                .where(device_bindings.c.device_id == device_id)
                .order_by(device_bindings.c.since, device_bindings.c.id)
            ).all()
    finally:
        engine.dispose()
    return [(r.bed_id, r.since, r.until) for r in rows]


async def test_twenty_rebindings_at_once_leave_one_unbroken_history(
    server: MonitorProcess,
) -> None:
    """20 concurrent ``POST /api/devices`` of one device to alternating beds: every one is
    stored, and the history has no gap, no overlap and one binding in force, to the bed the
    device is on (docs/reliability.md)."""
    dev_id = "bind-mon-5"
    server.add_device(dev_id, "bind-bed-5-0")
    async with http_client.AsyncClient(base_url=server.base_url, headers=server.headers) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    "/api/devices",
                    json={"device_id": dev_id, "bed": f"bind-bed-5-{n % 2 + 1}"},
                    timeout=30,
                )
                for n in range(20)
            )
        )
    assert [a.status_code for a in answers] == [201] * 20
    history = stored_bindings(server.db_url, dev_id)
    assert history[0][1] == 0.0
    for (bed, _, until), (next_bed, since, _) in zip(history, history[1:], strict=False):
        assert until == since and bed != next_bed
    assert [h[2] for h in history].count(None) == 1 and history[-1][2] is None
    (bed_now,) = {b["id"] for b in server.get("/api/beds") if dev_id in b.get("devices", [])}
    assert history[-1][0] == bed_now
