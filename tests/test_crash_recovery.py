"""Crash recovery (docs/reliability.md; ack only once durably stored, a resent seq is stored
once, alarms survive a restart). Fifty simulated beds stream readings; the monitor is
killed with SIGKILL mid-stream and started again; the devices reconnect and resend what
was not acknowledged. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitor.wire.device import encode_reading
from tests.conftest import MonitorProcess, fresh_database

BEDS = 50
ALARM_BEDS = 5  # these send spo2 82: a sustained desaturation, alarmed before the crash
RATE_HZ = 10.0  # per device: 500 readings a second across the ward


class ResendingDevice:
    """The device side of the contract, as small as it can be: every reading stays pending
    until acknowledged; after any reconnect all pending readings are sent again in seq
    order. It records everything it sent and everything acknowledged to it."""

    def __init__(
        self, ws_url: str, device_id: str, token: str, values: dict[str, float], t0: float
    ) -> None:
        self.url = f"{ws_url}/ws/device?token={token}"
        self.device_id = device_id
        self.values = values
        self.t0 = t0
        self.next_seq = 1
        self.pending: dict[int, str] = {}
        self.sent: set[int] = set()
        self.acked: set[int] = set()
        self.errors: list[dict[str, Any]] = []
        self.producing = True
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()

    def produce(self) -> None:
        """Measure one reading; send it at once when connected, else keep it for later."""
        seq = self.next_seq
        self.next_seq += 1
        # Device time in the past, one second per seq, so it never lies in the future.
        frame = encode_reading(self.device_id, seq, self.t0 + seq, self.values)
        self.pending[seq] = frame
        self.sent.add(seq)
        if self._ws is not None:
            self._outbox.put_nowait(frame)

    async def measure(self, stop: asyncio.Event) -> None:
        """The device keeps measuring whether or not the monitor is there (store-and-forward)."""
        while not stop.is_set():
            if self.producing:
                self.produce()
            await asyncio.sleep(1 / RATE_HZ)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with connect(self.url, open_timeout=2, close_timeout=1) as ws:
                    self.connects += 1
                    await self._serve(ws, stop)
            except (OSError, ConnectionClosed, TimeoutError):
                pass
            finally:
                self._ws = None
            await asyncio.sleep(0.05)

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        self._outbox = asyncio.Queue()
        for seq in sorted(self.pending):
            self._outbox.put_nowait(self.pending[seq])
        self._ws = ws
        reader = asyncio.create_task(self._read(ws))
        try:
            while not stop.is_set() and not reader.done():
                with contextlib.suppress(TimeoutError):
                    frame = await asyncio.wait_for(self._outbox.get(), 0.1)
                    await ws.send(frame)
        finally:
            self._ws = None
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            msg = orjson.loads(raw)
            if msg["type"] == "ack":
                self.acked.add(msg["seq"])
                self.pending.pop(msg["seq"], None)
            else:
                self.errors.append(msg)


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh database per backend; requested before server_factory so it outlives it."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def _until(pred: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _all_stored(s: MonitorProcess) -> Counter[tuple[str, int]]:
    """Every stored (device, seq) with how often it is stored, read bed by bed."""
    counts: Counter[tuple[str, int]] = Counter()
    for bed in range(BEDS):
        rows = s.get("/api/readings", bed=f"crash-bed-{bed}", limit=10_000)["readings"]
        assert len(rows) < 10_000
        counts.update((r["device_id"], r["seq"]) for r in rows)
    return counts


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    crash_db: str, server_factory: Any
) -> None:
    """50 beds, SIGKILL, restart: acked readings stored once, every sent reading stored once
    after resends, alarms active before the crash active after it."""
    s: MonitorProcess = await asyncio.to_thread(server_factory, db_url=crash_db)
    t0 = time.time() - 3600
    devices = []
    for bed in range(BEDS):
        token = await asyncio.to_thread(s.add_device, f"crash-mon-{bed}", f"crash-bed-{bed}")
        values = {"spo2": 82.0, "hr": 90.0} if bed < ALARM_BEDS else {"spo2": 97.0, "hr": 70.0}
        devices.append(ResendingDevice(s.ws_url, f"crash-mon-{bed}", token, values, t0))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in devices]
    tasks += [asyncio.create_task(d.measure(stop)) for d in devices]
    try:
        # Enough device time for the desaturation alarms (judged on ts) to be raised.
        await _until(lambda: all(len(d.acked) >= 25 for d in devices), 15, "first acks")
        alarms_before = {
            a["id"]
            for a in (await asyncio.to_thread(s.get, "/api/alarms", active="true"))["alarms"]
            if a["signal"] == "spo2"
        }
        assert alarms_before, "no alarm before the crash: nothing to prove about restoring"
        # A store-and-forward burst from every bed, and the monitor dies under it.
        for d in devices:
            for _ in range(10):
                d.produce()
        await asyncio.sleep(0.02)
        s.kill()
        acked_before = {(d.device_id, q) for d in devices for q in d.acked}
        in_flight = sum(len(d.pending) for d in devices)
        await asyncio.sleep(0.3)  # devices find the monitor gone and start retrying
        await asyncio.to_thread(s.start)
        await _until(lambda: all(d.connects >= 2 for d in devices), 15, "reconnects")
        await asyncio.sleep(0.5)
        for d in devices:
            d.producing = False
        await _until(lambda: not any(d.pending for d in devices), 20, "resends to be acked")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert in_flight > 0, "the crash did not catch anything in flight; the test proved nothing"
    assert [e for d in devices for e in d.errors] == []
    stored = await asyncio.to_thread(_all_stored, s)
    sent = {(d.device_id, q) for d in devices for q in d.sent}
    # (No duplicate row can exist: (device, seq) is the table's unique key. What can fail is
    # below: every acked reading kept, every sent one stored, nothing stored that was not sent.)
    assert acked_before - stored.keys() == set(), "an acknowledged reading was lost"
    assert sent - stored.keys() == set(), "a sent reading was never stored"
    assert stored.keys() - sent == set()
    alarms_after = {
        a["id"] for a in (await asyncio.to_thread(s.get, "/api/alarms", active="true"))["alarms"]
    }
    assert alarms_before <= alarms_after
