"""The running monitor: wires the pipeline's stages, each in its own module, and gives the
edges (API routes, websocket and HL7 handlers) one object to call.

    device -> ingest (monitor.pipeline.ingest) -> store (monitor.pipeline.writer) -> alarm engine
    (monitor.pipeline.alarm_loop, the pure monitor.alarms inside) -> fan-out (monitor.pipeline.fanout) -> panel

Caches the API answers from live in monitor.pipeline.caches, JSON views in monitor.pipeline.views, health in
monitor.pipeline.health. No clinical rule is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from monitor.alarms import AlarmEngine
from monitor.clinical import session as session_model
from monitor.core.errors import Unavailable
from monitor.core.faults import Faults
from monitor.core.model import Alarm, Reading
from monitor.pipeline.alarm_loop import AlarmLoop
from monitor.pipeline.caches import Caches
from monitor.pipeline.fanout import FanOut, Relay
from monitor.pipeline.gate import Gate, Held, LocalGate
from monitor.pipeline.health import Health, Stage
from monitor.pipeline.hub import Hub
from monitor.pipeline.ingest import Ingest
from monitor.pipeline.views import Views
from monitor.pipeline.writer import Writer
from monitor.records.store import SessionRow, Store
from monitor.settings import Settings
from monitor.wire import feed

log = logging.getLogger("vigil.monitor")

__all__ = ["Monitor", "Unavailable", "instance_name"]

# The cyclic GC's automatic full collections traverse every live object (about 400 per
# connected device) and stalled the event loop 130-430 ms at 1,000 beds, which set p99 ack
# latency (docs/performance.md). Start-up objects are frozen out of collection, the youngest
# generation is collected less often (fewer in-flight objects promoted), and full collections
# run every few minutes instead of whenever the heap has grown by a quarter.
GC_THRESHOLDS = (20_000, 20, 1_000_000_000)
FULL_GC_EVERY_S = 300.0


def _tame_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def instance_name(settings: Settings) -> str:
    """This process's name among the instances: the configured one, else a fresh one."""
    return settings.instance_id or f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"


class Monitor:
    """The pipeline of one instance. ``gate`` and ``relay`` are fixed here, by the composition
    root (monitor.app): a ``LocalGate`` and no relay for a single instance, another instance
    mode's own otherwise; the pipeline only ever talks to them through their protocols."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: AlarmEngine,
        hub: Hub,
        clock: Callable[[], float] = time.time,
        *,
        instance_id: str | None = None,
        gate: Gate | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.hub = hub
        self.clock = clock
        self.instance_id = instance_id or instance_name(settings)
        self.health = Health(on_change=self._health_changed)
        self.faults = Faults(settings.faults)
        self.caches = Caches()
        self.fanout = FanOut(hub, self.health, self.faults, clock, relay)
        self.gate: Gate = gate if gate is not None else LocalGate()
        self.alarms = AlarmLoop(
            store=store,
            engine=engine,
            fanout=self.fanout,
            caches=self.caches,
            health=self.health,
            faults=self.faults,
            clock=clock,
            tick_interval_s=settings.tick_interval_s,
            gate=self.gate,
        )
        self.writer = Writer(
            store=store,
            on_stored=self._stored,
            health=self.health,
            faults=self.faults,
            clock=clock,
            batch_max=settings.commit_batch_max,
            instance_id=self.instance_id,
            linger_s=settings.commit_linger_ms / 1000.0,
        )
        self.bindings = self.alarms.bindings
        self.ingest = Ingest(self.writer, self.alarms, clock, self.bindings)
        self.views = Views(
            store, self.caches, engine.config, self.alarms.active, clock, self.health
        )
        self.connections: dict[str, Any] = {}
        # Per session: its lock and how many refreshes hold or wait for it.
        self._session_locks: dict[int, list[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stats(self) -> dict[str, int]:
        return self.writer.stats

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Caches and alarm state from the stored record, then the stages' tasks."""
        for row in await self.store.session_rows(open_only=True, limit=10_000):
            self.caches.note_session(row)
        beds = await self.store.list_beds()
        # A handful of statements for the whole ward, however many beds it has.
        self.caches.latest.update(await self.store.latest_values_of_beds())
        last_seen = await self.store.last_seen()
        for dev_id, at in last_seen.items():
            self.caches.seen(dev_id, at)
        await self.alarms.start(beds, last_seen)
        _tame_gc()
        self.writer.start()
        self._tasks = [
            asyncio.create_task(self._pinger(), name="vigil-pinger"),
            asyncio.create_task(self._full_gc(), name="vigil-gc"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.writer.stop()
        await self.alarms.stop()
        self.fanout.drop_all("the monitor is shutting down")

    async def _stored(self, readings: Sequence[Reading]) -> None:
        """After a commit (the writer's rule 1): caches, panels, then the alarm stage."""
        for r in readings:
            self.caches.note_reading(r)
            self.fanout.reading(r)
        await self.alarms.persist_quietly(self.alarms.judge(readings))

    def _health_changed(self, failing: list[str]) -> None:
        if failing:
            log.error("monitor degraded: %s", ", ".join(failing))
        else:
            log.info("monitor healthy again")
        self.fanout.local(feed.health_message(failing))

    async def _full_gc(self) -> None:
        # Cyclic garbage is still collected, on a schedule rather than in the middle of a burst.
        while True:
            await asyncio.sleep(FULL_GC_EVERY_S)
            gc.collect()

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.settings.feed_ping_s)
            now = self.clock()
            self.fanout.local(feed.ping_message(now))
            # Liveness (a dead task, a stalled writer) is noticed without anyone asking.
            self.health.check(now)

    # --- device connections (edges) -----------------------------------------------------

    def attach_device(self, device_id: str, ws: Any) -> None:
        old = self.connections.get(device_id)
        self.connections[device_id] = ws
        if old is not None and old is not ws:
            # A device that reconnects leaves a half-dead socket behind; the newer one wins.
            asyncio.get_running_loop().create_task(
                _close_quietly(old, 1001, "replaced by a newer connection of this device")
            )

    def detach_device(self, device_id: str, ws: Any) -> None:
        if self.connections.get(device_id) is ws:
            del self.connections[device_id]

    async def load_bindings(self, device_id: str) -> None:
        """Refresh the device's bed bindings from the store (one query): when it connects,
        when the HL7 edge sees its bed changed, and after a rebinding."""
        self.bindings.set(device_id, await self.store.bindings(device_id))

    async def device_rebound(
        self, device_id: str, old_bed: str | None, *, relay: bool = True
    ) -> None:
        """A device was bound to another bed (stored): readings are placed by the new
        history from now on, here and (``relay``) on the other instances, and the old bed no
        longer watches the device for "no data"."""
        await self.load_bindings(device_id)
        if relay:
            self.gate.device_rebound(device_id, old_bed)
        if old_bed is not None and old_bed != self.bindings.current(device_id):
            await self.alarms.remove_device(old_bed, device_id)

    async def revoke_device(self, device_id: str) -> None:
        self.gate.device_revoked(device_id)
        await self.drop_device(device_id)

    async def drop_device(self, device_id: str) -> None:
        """A revoked device: close its socket here and end its technical alarms, so a device
        taken out of service does not go on raising "no data"."""
        ws = self.connections.pop(device_id, None)
        if ws is not None:
            await _close_quietly(ws, 1008, "device token revoked")
        dev = await self.store.device(device_id)
        if dev is not None:
            await self.alarms.remove_device(dev.bed_id, device_id)

    # --- what the edges call ------------------------------------------------------------

    def make_reading(self, **kw: Any) -> Reading:
        return self.ingest.reading(**kw)

    def submit(self, reading: Reading, *, correction: bool = False) -> asyncio.Future[None]:
        return self.ingest.submit(reading, correction=correction)

    async def device_seen(self, bed_id: str, device_id: str) -> None:
        await self.ingest.seen(bed_id, device_id)

    async def rejected(self, bed_id: str, device_id: str, code: str) -> None:
        await self.ingest.rejected(bed_id, device_id, code)

    async def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        return await self.alarms.acknowledge(alarm_id, user)

    async def pause_audio(self, bed_id: str, seconds: float | None, user: str) -> list[Alarm]:
        return await self.alarms.pause_audio(bed_id, seconds, user)

    async def session_changed(self, session_id: int) -> dict[str, Any]:
        """Refresh caches and the engine after a stored session change; publish it; return
        its JSON.

        One session's refreshes run one at a time: two changes stored together would
        otherwise each read the row, and the older read, applied last, would leave the bed's
        regime and the panel on a state the session has already left (docs/api.md, "Repeats
        and races"). Run in turn, the last one reads after every change before it."""
        held = self._session_locks.setdefault(session_id, [asyncio.Lock(), 0])
        held[1] += 1
        try:
            async with held[0]:
                row = await self.store.session_row(session_id)
                assert row is not None
                await self.alarms.session_changed(row)
                body = await self.views.session_json(row)
                self.fanout.session(body)
                return body
        finally:
            # Forget the lock once no one holds or waits for it: one per busy session only.
            held[1] -= 1
            if not held[1]:
                del self._session_locks[session_id]

    async def baseline_from_readings(
        self, session_id: int, until: float
    ) -> dict[str, float] | None:
        rows = await self.store.readings(session_id=session_id, until=until, limit=20_000)
        return session_model.baseline(r.values for r in rows)

    def validate_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Per-session limit overrides, checked against the clinic's bounds (ValueError if not)."""
        return self.engine.config.check_overrides(overrides)

    # --- what another instance mode's gate calls (it is handed this object at its start) ---

    async def adopt_bed(
        self,
        bed_id: str,
        *,
        last_seen: Mapping[str, float],
        release: Callable[[], Sequence[Held]],
    ) -> list[Alarm]:
        """Judge a bed here from now on, rebuilt from the record (AlarmLoop.adopt_bed)."""
        return await self.alarms.adopt_bed(bed_id, last_seen=last_seen, release=release)

    def release_bed(self, bed_id: str) -> list[Alarm]:
        """Judge a bed here no more, ending none of its alarms (AlarmLoop.release_bed)."""
        return self.alarms.release_bed(bed_id)

    async def acknowledge_here(self, alarm_id: str, user: str) -> Alarm | None:
        """An ack another instance passed to this one, the bed's judge."""
        return await self.alarms.acknowledge_here(alarm_id, user)

    async def pause_audio_here(self, bed_id: str, seconds: float | None, user: str) -> list[Alarm]:
        """An audio pause another instance passed to this one, the bed's judge."""
        return await self.alarms.pause_audio_here(bed_id, seconds, user)

    async def heard_reading(self, reading: Reading) -> None:
        """A reading another instance stored: this instance's panels and caches, and the
        alarm stage (which judges it only where the gate routes its bed here)."""
        self.fanout.local(feed.reading_message(reading))
        self.caches.note_reading(reading)
        await self.alarms.persist_quietly(self.alarms.judge([reading]))

    def heard_alarm(self, alarm: Alarm) -> None:
        """An alarm change another instance stored: this instance's panels."""
        self.fanout.local(feed.alarm_message(alarm))

    async def heard_session(self, session_id: int, message: str) -> None:
        """A session change another instance stored: its feed message for this instance's
        panels, and the session as stored now for the caches and the alarm stage."""
        self.fanout.local(message)
        row = await self.store.session_row(session_id)
        if row is not None:
            await self.alarms.session_changed(row)

    async def heard_seen(self, bed_id: str, device_id: str, at: float) -> None:
        """A device's sign of life another instance received (not to be relayed again)."""
        await self.alarms.device_seen(bed_id, device_id, at, relay=False)

    async def heard_artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        """A frame another instance rejected, for the bed's artefact alarm."""
        await self.alarms.rejected(bed_id, device_id, code, at)

    async def resync_sessions(self) -> None:
        """Session changes may have been missed: re-read the open sessions from the store."""
        await self.alarms.resync_sessions()

    def drop_panels(self, reason: str) -> None:
        """Close every panel's feed: they reconnect and load a fresh snapshot."""
        self.fanout.drop_all(reason)

    def connected_devices(self) -> Collection[str]:
        """The devices whose socket is connected to this instance."""
        return self.connections.keys()

    def track_redis(self) -> None:
        """Redis is in use: /health reports its stage from now on."""
        self.health.use(Stage.REDIS)

    def redis_ok(self) -> None:
        if not self.health.stages[Stage.REDIS].ok:
            self.health.ok(Stage.REDIS, self.clock())

    def redis_failed(self, reason: str) -> None:
        self.health.failed(Stage.REDIS, self.clock(), reason)

    # --- views --------------------------------------------------------------------------

    async def session_json(self, row: SessionRow) -> dict[str, Any]:
        return await self.views.session_json(row)

    def limits_json(self, row: SessionRow) -> dict[str, Any]:
        return self.views.limits_json(row)

    async def beds_json(self) -> list[dict[str, Any]]:
        return await self.views.beds_json()

    def health_json(self) -> dict[str, Any]:
        return self.health.report(
            self.clock(),
            {
                "instance": self.instance_id,
                "queue_depth": self.writer.queue.qsize(),
                "last_commit_age_s": (
                    None
                    if self.writer.last_commit is None
                    else round(self.clock() - self.writer.last_commit, 1)
                ),
                "counts": dict(self.writer.stats, rebuilds=self.alarms.rebuilds),
            },
        )


async def _close_quietly(ws: Any, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason)
