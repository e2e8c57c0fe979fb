"""What storing, judging and rebuilding cost, as SQL statements rather than seconds
(docs/performance.md, "Costs guarded by counts"): a batch of readings and a start's rebuild
take a number of statements that does not grow with the beds provisioned, their session
history, or the beds in the batch. Counts hold on any machine, where timings do not.

The pipeline is built in this process on a fake clock (no process boundary is under test),
on SQLite and on PostgreSQL, and every statement its store's engine sends is counted through
SQLAlchemy's ``before_cursor_execute`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from monitor.alarms import AlarmEngine
from monitor.alarms.config import load_config
from monitor.core.model import Direction, Reading
from monitor.pipeline.hub import Hub
from monitor.pipeline.service import Monitor
from monitor.records.store import Store
from monitor.settings import Settings
from tests.conftest import fresh_database
from tests.factories import make_alarm, make_reading

NOW = 1_790_000_000.0
HISTORY_S = 1800  # each bed's stored history, at one reading every 10 s
PROTOCOL = "iv-ketamine"  # the shipped protocol with timed checkpoints


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counter:
    """Counts the statements an engine sends while ``counting`` is set."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self.counting = False
        self.sync = store.engine.sync_engine
        event.listen(self.sync, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.counting:
            self.count += 1

    def close(self) -> None:
        event.remove(self.sync, "before_cursor_execute", self._seen)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def urls(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of one engine: a small ward and a large one."""
    with fresh_database(backend, tmp_path) as small, fresh_database(backend, tmp_path) as large:
        yield small, large


async def _ward(url: str, beds: int, *, history: bool) -> Store:
    """``beds`` beds with a device each, an open protocol session and (``history``) half an
    hour of readings, a cuff reading every 5 minutes and an open alarm."""
    store = await Store.open(url)
    rows: list[Reading] = []
    for i in range(beds):
        bed, dev = f"bed-{i:03d}", f"dev-{i:03d}"
        await store.add_device(dev, bed, NOW - HISTORY_S - 60)
        await store.create_session(
            bed_id=bed,
            patient_label=f"P{i}",
            age=40,
            baseline=None,
            planned_s=2400,
            now=NOW - HISTORY_S,
            by="nurse",
            protocol=PROTOCOL,
        )
        if not history:
            continue
        for k, t in enumerate(range(HISTORY_S, 0, -10)):
            ts = NOW - t
            # SpO2 low throughout, so the stored open alarm is still due after the replay.
            values = (
                {"sbp": 120.0, "dbp": 80.0, "map": 93.0}
                if k % 30 == 0
                else {"hr": 72.0, "spo2": 86.0, "rr": 14.0}
            )
            rows.append(make_reading(values, ts=ts, seq=k + 1, device_id=dev, bed_id=bed))
        alarm = make_alarm(alarm_id=f"alarm-{bed}", bed_id=bed, started_at=NOW - 100)
        alarm.direction = Direction.LOW
        await store.upsert_alarms([alarm], NOW - 100)
    for start in range(0, len(rows), 2000):
        await store.insert_readings(rows[start : start + 2000])
    return store


def _monitor(store: Store, linger_ms: float = 0.0) -> Monitor:
    config = load_config(None)
    # No tick during a count: the ticker's own reads are not the subject.
    settings = Settings(tick_interval_s=3600.0, commit_linger_ms=linger_ms)
    return Monitor(settings, store, AlarmEngine(config), Hub(100), FakeClock(NOW))


async def _start_count(url: str, beds: int) -> int:
    store = await _ward(url, beds, history=True)
    counter = Counter(store)
    monitor = _monitor(store)
    try:
        counter.counting = True
        await monitor.start()
        counter.counting = False
        # The rebuild did its work: every bed rebuilt, and its open alarm back.
        assert monitor.alarms.rebuilds == beds
        assert {a.id for a in monitor.alarms.active()} >= {
            f"alarm-bed-{i:03d}" for i in range(beds)
        }
        return counter.count
    finally:
        await monitor.stop()
        counter.close()
        await store.close()


async def _batch_count(url: str, provisioned: int, in_batch: int, *, history: bool) -> int:
    store = await _ward(url, provisioned, history=history)
    monitor = _monitor(store)
    counter = Counter(store)
    try:
        await monitor.start()

        def batch(k: int) -> list[Reading]:
            return [
                make_reading(
                    {"hr": 72.0, "spo2": 86.0, "rr": 14.0},
                    ts=NOW + k,
                    seq=10_000 + k,
                    device_id=f"dev-{i:03d}",
                    bed_id=f"bed-{i:03d}",
                )
                for i in range(in_batch)
            ]

        # The first batch after a start reads what the store keeps between batches (the
        # retention marks); the second is the steady state that is counted.
        await asyncio.gather(*[monitor.ingest.submit(r) for r in batch(0)])
        counter.counting = True
        # Queued with no await between, the writer takes them as one batch.
        await asyncio.gather(*[monitor.ingest.submit(r) for r in batch(1)])
        counter.counting = False
        assert monitor.writer.stats["stored"] == 2 * in_batch
        return counter.count
    finally:
        await monitor.stop()
        counter.close()
        await store.close()


def test_a_start_rebuilds_every_bed_in_statements_that_do_not_grow_with_the_beds(
    urls: tuple[str, str],
) -> None:
    """docs/performance.md: a start reads the whole ward's record in a handful of statements;
    three beds and twenty-four, each with an open session, history and an open alarm, cost
    the same."""
    small, large = urls
    few = asyncio.run(_start_count(small, 3))
    many = asyncio.run(_start_count(large, 24))
    assert many == few, f"3 beds: {few} statements, 24 beds: {many}"
    assert few <= 15, few


def test_storing_and_judging_a_batch_costs_statements_that_do_not_grow_with_beds_or_history(
    urls: tuple[str, str],
) -> None:
    """docs/performance.md: a batch of readings is stored and judged in statements per batch,
    not per reading, per bed provisioned or per stored history."""
    small, large = urls
    quiet = asyncio.run(_batch_count(small, 4, 2, history=False))
    busy = asyncio.run(_batch_count(large, 24, 20, history=True))
    assert busy == quiet, f"2 readings on a quiet ward: {quiet}, 20 on a busy one: {busy}"


async def _spread_count(url: str, linger_ms: float) -> tuple[int, int]:
    """Statements for five readings that arrive one loop turn apart (devices at 1 Hz rarely
    arrive together), and for the same five queued at once."""
    store = await _ward(url, 5, history=False)
    monitor = _monitor(store, linger_ms)
    counter = Counter(store)
    try:
        await monitor.start()

        def reading(i: int, k: int) -> Reading:
            return make_reading(
                {"hr": 72.0}, ts=NOW + k, seq=k, device_id=f"dev-{i:03d}", bed_id=f"bed-{i:03d}"
            )

        await asyncio.gather(*[monitor.ingest.submit(reading(i, 1)) for i in range(5)])
        counter.counting = True
        await asyncio.gather(*[monitor.ingest.submit(reading(i, 2)) for i in range(5)])
        together, counter.count = counter.count, 0
        tasks = []
        for i in range(5):
            tasks.append(asyncio.ensure_future(monitor.ingest.submit(reading(i, 3))))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        counter.counting = False
        assert monitor.writer.stats["stored"] == 15
        return together, counter.count
    finally:
        await monitor.stop()
        counter.close()
        await store.close()


def test_readings_arriving_a_moment_apart_share_one_transaction(tmp_path: Path) -> None:
    """docs/reliability.md "Ack after commit": a batch that is not full waits the commit
    linger for more, so readings arriving moments apart are committed together, not one
    transaction each as they are with the linger off."""
    with fresh_database("sqlite", tmp_path) as url:
        together, spread = asyncio.run(_spread_count(url, 50.0))
    assert spread == together, f"at once: {together} statements, a turn apart: {spread}"
    with fresh_database("sqlite", tmp_path) as url:
        together, spread = asyncio.run(_spread_count(url, 0.0))
    assert spread > together, f"no linger, at once: {together}, a turn apart: {spread}"
