"""The running monitor: ingest queue -> store -> alarm engine -> fan-out, plus the caches
the API answers from. It translates and delegates; clinical rules live in monitor.alarms
and monitor.session."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor import session as session_model
from monitor.alarms import AlarmEngine, LifecycleError, UnknownAlarm
from monitor.db.store import Store
from monitor.hub import Hub
from monitor.model import PRIORITY_RANK, SIGNALS, Alarm, Reading, to_rfc3339
from monitor.protocol import feed
from monitor.settings import Settings

log = logging.getLogger("vigil.monitor")


class Unavailable(RuntimeError):
    """The store could not take the reading; the device must send it again."""


class CommandRouter(Protocol):
    """Multi-instance mode (monitor.cluster): sends alarm commands to the instance that owns
    the bed's alarm state, and tells the other instances about revoked devices."""

    async def acknowledge(self, alarm_id: str, user: str) -> Alarm | None: ...

    async def pause_audio(self, bed_id: str, seconds: float | None) -> list[Alarm]: ...

    def device_revoked(self, device_id: str) -> None: ...


@dataclass(slots=True)
class OpenSession:
    id: int
    bed_id: str
    phase: str
    baseline: dict[str, float] | None
    overrides: dict[str, Any] | None


@dataclass(slots=True)
class _Pending:
    reading: Reading
    done: asyncio.Future[None]
    correction: bool = False  # replaces the stored values of its device time (HL7 status C)


@dataclass(slots=True)
class Caches:
    latest: dict[str, dict[str, Reading]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    open_sessions: dict[str, OpenSession] = field(default_factory=dict)


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


class Monitor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: AlarmEngine,
        hub: Hub,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.hub = hub
        self.clock = clock
        self.caches = Caches()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._alarm_lock = asyncio.Lock()
        self.stats = {"stored": 0, "duplicates": 0, "rejected": 0}
        self.connections: dict[str, Any] = {}
        self.router: CommandRouter | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._restore()
        _tame_gc()
        self._tasks = [
            asyncio.create_task(self._writer(), name="vigil-writer"),
            asyncio.create_task(self._ticker(), name="vigil-ticker"),
            asyncio.create_task(self._pinger(), name="vigil-pinger"),
            asyncio.create_task(self._full_gc(), name="vigil-gc"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for client in tuple(self.hub.clients):
            client.drop("the monitor is shutting down")

    async def _restore(self) -> None:
        """Rebuild caches and alarm state from storage after a (re)start."""
        now = self.clock()
        for row in await self.store.session_rows(open_only=True, limit=10_000):
            self._cache_session(row)
        for bed in await self.store.list_beds():
            latest = await self.store.latest_values(bed["id"])
            if latest:
                self.caches.latest[bed["id"]] = latest
        open_alarms = await self.store.alarms(active=True, limit=100_000)
        self.engine.restore(open_alarms)
        changed: list[Alarm] = []
        last_seen = await self.store.last_seen()
        for dev_id, at in last_seen.items():
            dev = await self.store.device(dev_id)
            if dev is not None and not dev.revoked:
                # The silence clock restarts now: a restart is not evidence the device is quiet,
                # and a device still silent raises its alarm again after the timeout.
                self.caches.last_seen[dev_id] = at
                changed.extend(self.engine.device_seen(dev.bed_id, dev_id, now))
        if changed:
            await self._persist_and_publish(changed)

    def _cache_session(self, row: dict[str, Any]) -> list[Alarm]:
        bed_id = row["bed_id"]
        now = self.clock()
        if row["ended_at"] is not None:
            self.caches.open_sessions.pop(bed_id, None)
            return self.engine.set_session(bed_id, None, None, None, None, now=now)
        s = OpenSession(
            id=row["id"],
            bed_id=bed_id,
            phase=row["phase"],
            baseline=row["baseline"],
            overrides=row["limit_overrides"],
        )
        self.caches.open_sessions[bed_id] = s
        return self.engine.set_session(bed_id, s.id, s.phase, s.baseline, s.overrides, now=now)

    # --- ingest -------------------------------------------------------------------------

    def make_reading(
        self,
        *,
        device_id: str,
        bed_id: str,
        seq: int,
        ts: float,
        values: dict[str, float],
        source: str | None,
        received_at: float,
    ) -> Reading:
        session = self.caches.open_sessions.get(bed_id)
        return Reading(
            device_id=device_id,
            seq=seq,
            ts=ts,
            received_at=received_at,
            values=values,
            source=source,
            bed_id=bed_id,
            session_id=session.id if session else None,
        )

    def submit(self, reading: Reading, *, correction: bool = False) -> asyncio.Future[None]:
        """Queue a reading; the future completes once it is durably stored (then ack it).

        A ``correction`` replaces what is stored for its device and device time, signal by
        signal, and is judged and published like a new reading when it changed anything."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(reading, fut, correction))
        return fut

    async def _writer(self) -> None:
        limit = self.settings.commit_batch_max
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < limit and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                inserted = await self.store.insert_readings(
                    [p.reading for p in batch if not p.correction],
                    [p.reading for p in batch if p.correction],
                )
            except asyncio.CancelledError:
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(Unavailable("the monitor is shutting down"))
                raise
            except Exception:
                log.exception("storing a batch of %d readings failed", len(batch))
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(Unavailable("storage is unavailable"))
                continue
            changed: list[Alarm] = []
            for p in batch:
                key = (p.reading.device_id, p.reading.seq)
                if key in inserted:
                    inserted.discard(key)
                    self.stats["stored"] += 1
                    changed.extend(self._after_store(p.reading))
                else:
                    self.stats["duplicates"] += 1
                if not p.done.done():
                    p.done.set_result(None)
            if changed:
                await self._persist_and_publish(changed)

    def _after_store(self, reading: Reading) -> list[Alarm]:
        bed_id = reading.bed_id
        assert bed_id is not None
        latest = self.caches.latest.setdefault(bed_id, {})
        for sig in reading.values:
            prev = latest.get(sig)
            if prev is None or reading.ts >= prev.ts:
                latest[sig] = reading
        self.caches.last_seen[reading.device_id] = reading.received_at
        self.hub.publish(feed.reading_message(reading))
        return self.engine.on_reading(reading)

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

    async def revoke_device(self, device_id: str) -> None:
        if self.router is not None:
            self.router.device_revoked(device_id)
        await self.drop_device(device_id)

    async def drop_device(self, device_id: str) -> None:
        """A revoked device: close its socket here and end its technical alarms, so a device
        taken out of service does not go on raising "no data"."""
        ws = self.connections.pop(device_id, None)
        if ws is not None:
            await _close_quietly(ws, 1008, "device token revoked")
        dev = await self.store.device(device_id)
        if dev is not None:
            changed = self.engine.remove_device(dev.bed_id, device_id, self.clock())
            if changed:
                await self._persist_and_publish(changed)

    async def device_seen(self, bed_id: str, device_id: str) -> None:
        now = self.clock()
        self.caches.last_seen[device_id] = now
        changed = self.engine.device_seen(bed_id, device_id, now)
        if changed:
            await self._persist_and_publish(changed)

    async def rejected(self, bed_id: str, device_id: str, code: str) -> None:
        self.stats["rejected"] += 1
        changed = self.engine.on_artefact(bed_id, device_id, code, self.clock())
        if changed:
            await self._persist_and_publish(changed)

    async def _persist_and_publish(self, changed: list[Alarm]) -> None:
        # The last change of an alarm wins; the order of first appearance is kept.
        by_id: dict[str, Alarm] = {}
        for a in changed:
            by_id[a.id] = a
        items = list(by_id.values())
        async with self._alarm_lock:
            try:
                await self.store.upsert_alarms(items, self.clock())
            except Exception:
                log.exception("storing %d alarm changes failed", len(items))
        for a in items:
            self.hub.publish(feed.alarm_message(a))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            try:
                changed = self.engine.tick(self.clock())
                if changed:
                    await self._persist_and_publish(changed)
            except Exception:
                log.exception("alarm tick failed")

    async def _full_gc(self) -> None:
        # Cyclic garbage is still collected, on a schedule rather than in the middle of a burst.
        while True:
            await asyncio.sleep(FULL_GC_EVERY_S)
            gc.collect()

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.settings.feed_ping_s)
            self.hub.deliver(feed.ping_message(self.clock()))

    # --- commands -----------------------------------------------------------------------

    async def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        if self.router is not None:
            return await self.router.acknowledge(alarm_id, user)
        return await self.acknowledge_here(alarm_id, user)

    async def acknowledge_here(self, alarm_id: str, user: str) -> Alarm | None:
        """Acknowledge in this instance's engine (the bed's owner in multi-instance mode)."""
        try:
            changed = self.engine.acknowledge(alarm_id, user, self.clock())
        except (UnknownAlarm, LifecycleError):
            return None
        if changed:
            await self._persist_and_publish(changed)
        for a in changed:
            if a.id == alarm_id:
                return a
        return None

    async def pause_audio(self, bed_id: str, seconds: float | None) -> list[Alarm]:
        if self.router is not None:
            return await self.router.pause_audio(bed_id, seconds)
        return await self.pause_audio_here(bed_id, seconds)

    async def pause_audio_here(self, bed_id: str, seconds: float | None) -> list[Alarm]:
        changed = self.engine.pause_audio(bed_id, self.clock(), seconds)
        if changed:
            await self._persist_and_publish(changed)
        return changed

    async def session_changed(self, session_id: int) -> dict[str, Any]:
        """Refresh caches and the engine after a session change; publish it; return its JSON."""
        row = await self.store.session_row(session_id)
        assert row is not None
        changed = self._cache_session(row)
        if changed:
            await self._persist_and_publish(changed)
        body = await self.session_json(row)
        self.hub.publish(feed.session_message(body))
        return body

    async def baseline_from_readings(
        self, session_id: int, until: float
    ) -> dict[str, float] | None:
        rows = await self.store.readings(session_id=session_id, until=until, limit=20_000)
        out: dict[str, float] = {}
        for sig in SIGNALS:
            vals = [r.values[sig] for r in rows if sig in r.values]
            if vals:
                out[sig] = round(statistics.median(vals), 1)
        return out or None

    def validate_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Per-session limit overrides, checked against the clinic's bounds (ValueError if not)."""
        return self.engine.config.check_overrides(overrides)

    def limits_json(self, row: dict[str, Any]) -> dict[str, Any]:
        config = self.engine.config
        phase = row["phase"] if row["phase"] != "ended" else None
        in_force = config.limits_for(phase, row["limit_overrides"])
        return {
            "session_id": row["id"],
            "phase": row["phase"],
            "limits": {sig: sl.model_dump(exclude_none=True) for sig, sl in in_force.items()},
            "overrides": row["limit_overrides"] or {},
            "override_bounds": {k: list(v) for k, v in config.override_bounds.items()},
            "delays": config.delays,
            "hysteresis": config.hysteresis,
            "baseline": row["baseline"],
        }

    # --- views --------------------------------------------------------------------------

    async def session_json(self, row: dict[str, Any]) -> dict[str, Any]:
        events = await self.store.session_events(row["id"])
        state = session_model.replay(
            (e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
        )
        now = self.clock()
        return {
            "id": row["id"],
            "bed": row["bed_id"],
            "patient_label": row["patient_label"],
            "age": row["age"],
            "phase": row["phase"],
            "opened_at": to_rfc3339(row["opened_at"]),
            "ended_at": to_rfc3339(row["ended_at"]),
            "infusion_elapsed_s": round(session_model.infusion_elapsed(state, now), 1),
            "infusion_planned_s": row["infusion_planned_s"],
            "infusion_running": state.running,
            "infusion_started_at": to_rfc3339(state.infusion_started_at),
            "infusion_stopped_at": to_rfc3339(state.infusion_stopped_at),
            "baseline": row["baseline"],
            "limit_overrides": row["limit_overrides"],
            "events": [
                {
                    "id": e["id"],
                    "type": e["type"],
                    "at": to_rfc3339(e["at"]),
                    "recorded_at": to_rfc3339(e["recorded_at"]),
                    "by": e["by"],
                    "data": e["data"],
                }
                for e in events
            ],
        }

    async def beds_json(self) -> list[dict[str, Any]]:
        now = self.clock()
        beds = await self.store.list_beds()
        active = self.engine.active()
        by_bed: dict[str, list[Alarm]] = {}
        for a in active:
            by_bed.setdefault(a.bed_id, []).append(a)
        out = []
        for bed in beds:
            bed_id = bed["id"]
            session = self.caches.open_sessions.get(bed_id)
            session_body = None
            if session is not None:
                row = await self.store.session_row(session.id)
                if row is not None:
                    session_body = await self.session_json(row)
            latest = {
                sig: {
                    "value": r.values[sig],
                    "ts": to_rfc3339(r.ts),
                    "age_s": round(now - r.ts, 1),
                    "device_id": r.device_id,
                    "source": r.source,
                }
                for sig, r in self.caches.latest.get(bed_id, {}).items()
            }
            alarms = sorted(
                by_bed.get(bed_id, []),
                key=lambda a: (-PRIORITY_RANK.get(a.priority, 0), a.started_at),
            )
            out.append(
                {
                    "id": bed_id,
                    "label": bed["label"],
                    "devices": bed["devices"],
                    "session": session_body,
                    "latest": latest,
                    "alarms": [feed.alarm_json(a) for a in alarms],
                    "devices_status": {
                        d: {
                            "last_seen": to_rfc3339(self.caches.last_seen.get(d)),
                            "age_s": (
                                round(now - self.caches.last_seen[d], 1)
                                if d in self.caches.last_seen
                                else None
                            ),
                        }
                        for d in bed["devices"]
                    },
                }
            )
        return out


async def _close_quietly(ws: Any, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason)
