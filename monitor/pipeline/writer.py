"""Store stage: the ingest queue and the one task that commits readings in batches.

Rules
-----
1. A reading's future completes only after its batch is committed and what follows from it
   (caches, panels, alarm changes) has been handed on and the alarm changes stored or, if
   that failed, counted; only then is the device acknowledged. A reading whose batch could not
   be committed fails with ``Unavailable``: the device keeps it and sends it again.
2. The task is supervised: an unexpected error is logged (no patient data), counted on
   /health, the batch in hand is answered ``Unavailable`` and the loop goes on. The task never
   ends silently; /health says when it has ended or has stopped making progress.
3. When no reading has been committed for a while, a probe write tells whether the database
   still takes writes, so /health is truthful on a quiet ward too.
4. Group commit: a batch that is not full waits ``linger_s`` (a few milliseconds) for more
   readings before it commits, so a ward at 1 Hz pays for one transaction per few readings
   rather than one per reading; a full queue commits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from monitor.core.errors import Unavailable
from monitor.core.faults import Faults, Point
from monitor.core.model import Reading
from monitor.pipeline.health import Health, Stage
from monitor.records.store import Store

log = logging.getLogger("vigil.writer")

# Work waiting and no commit for this long: the writer is reported stalled.
STALL_S: Final = 10.0
PROBE_EVERY_S: Final = 2.0


@dataclass(slots=True)
class _Pending:
    reading: Reading
    done: asyncio.Future[None]
    correction: bool = False  # replaces the stored values of its device time (HL7 status C)


class Writer:
    def __init__(
        self,
        *,
        store: Store,
        on_stored: Callable[[Sequence[Reading]], Awaitable[None]],
        health: Health,
        faults: Faults,
        clock: Callable[[], float],
        batch_max: int,
        instance_id: str,
        linger_s: float = 0.0,
    ) -> None:
        self.store = store
        self.on_stored = on_stored
        self.health = health
        self.faults = faults
        self.clock = clock
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.instance_id = instance_id
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.stats = {"stored": 0, "duplicates": 0, "rejected": 0, "failed": 0}
        self.last_commit: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probe: asyncio.Task[None] | None = None
        health.use(Stage.WRITER, self._alive)
        health.use(Stage.DATABASE)

    def start(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call on Python 3.11, and
        # submit runs once a reading.
        self._loop = asyncio.get_running_loop()
        self.last_commit = self.clock()
        self._task = asyncio.create_task(self._run(), name="vigil-writer")
        self._probe = asyncio.create_task(self._prober(), name="vigil-db-probe")

    async def stop(self) -> None:
        for t in (self._task, self._probe):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        while not self.queue.empty():
            p = self.queue.get_nowait()
            if not p.done.done():
                p.done.set_exception(Unavailable("the monitor is shutting down"))

    def submit(self, reading: Reading, *, correction: bool = False) -> asyncio.Future[None]:
        """Queue a reading; the future completes once it is durably stored (then ack it).

        A ``correction`` replaces what is stored for its device and device time, signal by
        signal, and is judged and published like a new reading when it changed anything."""
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.queue.put_nowait(_Pending(reading, fut, correction))
        return fut

    def _alive(self, now: float) -> str | None:
        if self._task is None:
            return None
        if self._task.done():
            return "the writer task has ended"
        if not self.queue.empty() and self.last_commit is not None:
            idle = now - self.last_commit
            if idle > STALL_S:
                return f"{self.queue.qsize()} readings waiting, no commit for {idle:.0f} s"
        return None

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            if self.linger_s and self.queue.qsize() < self.batch_max:
                await asyncio.sleep(self.linger_s)  # group commit (rule 4)
            batch = [first]
            while len(batch) < self.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail(batch, "the monitor is shutting down")
                raise
            except Exception as e:
                # Rule 2: counted, answered, and the loop goes on.
                log.exception("the writer failed on a batch of %d readings", len(batch))
                self.health.failed(Stage.WRITER, self.clock(), type(e).__name__)
            finally:
                _fail(batch, "the monitor could not store the reading")

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            inserted = await self.store.insert_readings(
                [p.reading for p in batch if not p.correction],
                [p.reading for p in batch if p.correction],
            )
        except Exception as e:
            log.error("storing a batch of %d readings failed: %s", len(batch), type(e).__name__)
            self.stats["failed"] += len(batch)
            self.health.failed(Stage.DATABASE, self.clock(), type(e).__name__)
            _fail(batch, "storage is unavailable")
            return
        now = self.clock()
        self.last_commit = now
        self.health.ok(Stage.DATABASE, now)
        self.faults.hit(Point.AFTER_READINGS_COMMIT)
        stored: list[Reading] = []
        for p in batch:
            key = (p.reading.device_id, p.reading.seq)
            if key in inserted:
                inserted.discard(key)
                stored.append(p.reading)
        self.stats["stored"] += len(stored)
        self.stats["duplicates"] += len(batch) - len(stored)
        if stored:
            await self.on_stored(stored)
        if not self.health.stages[Stage.WRITER].ok:
            self.health.ok(Stage.WRITER, now)
        for p in batch:
            if not p.done.done():
                p.done.set_result(None)

    async def _prober(self) -> None:
        """Rule 3: a write now and then while no reading is committed."""
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            now = self.clock()
            if self.last_commit is not None and now - self.last_commit < PROBE_EVERY_S:
                continue
            try:
                await self.store.probe_write(self.instance_id, now)
            except Exception as e:
                self.health.failed(Stage.DATABASE, self.clock(), type(e).__name__)
            else:
                self.health.ok(Stage.DATABASE, self.clock())


def _fail(batch: list[_Pending], why: str) -> None:
    for p in batch:
        if not p.done.done():
            p.done.set_exception(Unavailable(why))
