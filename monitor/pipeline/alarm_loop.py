"""Alarm stage: feeds the pure engine what was stored, stores what it decides, and rebuilds it
from the stored record whenever its memory cannot be trusted.

Rules
-----
1. The alarm state of a bed is a function of the stored record: its readings (device time),
   its sessions' events, the stored alarms and the nurses' acknowledgements and pauses. The
   engine's memory is a cache of that function.
2. The engine sees a reading only after the reading is committed; an alarm change reaches
   panels only after it is committed. A failing alarm write is counted on /health and marks
   the bed for a rebuild, which replays the record once the store answers again; once every
   such bed is rebuilt the stage is healthy again, without waiting for the next alarm change.
3. Rebuild (at start, on a multi-instance takeover, and after any failure of the engine or
   the alarm store on a bed): drop the bed's engine state; put in force the regimes (session,
   phase, limits) of the horizon by their event times; restore the stored open alarms (with
   their acknowledgement and pause); replay the stored readings of the horizon in device time,
   skipping per signal what a stored alarm already accounts for; restore the technical alarms;
   restart the devices' silence clocks (the replay itself is pure: monitor.alarms.replay).
   Alarm ids are deterministic, so a replay meets stored alarms instead of raising them
   twice, and raises those a crash kept from being stored. A start reads the record of every
   bed at once, in statements that do not grow with the beds (monitor.records.store.replay);
   a bed with nothing in its horizon and no device ever heard is skipped, costing nothing;
   its alarms are stored in one write and the start logs one line (per bed: DEBUG).
4. The horizon is what can still affect the present: ``REPLAY_WINDOW_S`` back (longer than
   any delay, latch or escalation window of the clinic config), or back to when the bed's
   state went bad, at most ``REPLAY_MAX_S``.
5. Commands (acknowledge, audio pause) answer only once stored, with their audit entry in the
   same transaction; if the store fails they raise ``Unavailable`` and the bed is rebuilt
   from the record, which forgets what was not stored. They are decided under the store lock,
   after every change decided before them has committed; an ack is also guarded in SQL, so
   it is stored once (monitor/usecases/alarms.py).
6. Which instance judges a bed is the gate's decision (``Gate.route``): here, held while this
   instance rebuilds it, or away (another instance owns it). Single-instance mode's gate says
   "here" for every bed. The gate is given at construction and asked only through ``Gate``;
   another instance mode hands beds in and out with ``adopt_bed`` and ``release_bed``
   (the gate types: monitor.pipeline.gate).
7. Checkpoints: an open session whose protocol has checkpoints is watched (its events and
   cuff readings, loaded when the session changes or the bed is rebuilt, and kept current
   with each stored cuff reading); every tick judges them on the server clock with the pure
   protocol model, which raises and ends the ``checkpoint`` alarms (docs/protocols.md;
   monitor.pipeline.checkpoints). They are held here, beside the engine, and restored from
   the store on a rebuild. A bed's audio pause pauses them too, and its expiry resumes them
   on the tick.
8. An impossible stored history (an event that does not fit the one before it) never stops a
   rebuild, nor the start: the bed is judged under the phases of its events up to the
   offending one (``session.fold_spans``), the record is named on /health as needing
   attention, and the start logs one line naming every such bed (docs/reliability.md, "An
   impossible session record is isolated").

Over 500 lines, one unit: every method below shares the stage's lock, its dirty beds and
its engine, so splitting it would only pass those around; the pure replay, the gate types
and the checkpoints already live in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from monitor.alarms import AlarmEngine, LifecycleError, UnknownAlarm
from monitor.alarms.lifecycle import UNACKNOWLEDGED_STATES, Event, State, snapshot
from monitor.alarms.lifecycle import apply as lifecycle_apply
from monitor.alarms.replay import Record, SessionRegime, replay
from monitor.clinical import session as session_model
from monitor.core.bindings import Bindings
from monitor.core.errors import Unavailable
from monitor.core.faults import Faults, Point
from monitor.core.model import PRIORITY_RANK, Alarm, Phase, Reading
from monitor.pipeline.caches import Caches, OpenSession
from monitor.pipeline.checkpoints import Checkpoints
from monitor.pipeline.fanout import FanOut
from monitor.pipeline.gate import (
    Gate,
    Held,
    HeldArtefact,
    HeldReading,
    HeldSeen,
    HeldSession,
    LocalGate,
    Route,
)
from monitor.pipeline.health import Health, Stage, record_notice
from monitor.records.store import AuditNote, BedRow, SessionEventRow, SessionRow, Store

log = logging.getLogger("vigil.alarms")

REPLAY_WINDOW_S: Final = 300.0
REPLAY_MAX_S: Final = 6 * 3600.0
# A ticker that has not ticked for this many intervals is reported dead on /health.
TICKER_STALL_INTERVALS: Final = 5


class AlarmLoop:
    def __init__(
        self,
        *,
        store: Store,
        engine: AlarmEngine,
        fanout: FanOut,
        caches: Caches,
        health: Health,
        faults: Faults,
        clock: Callable[[], float],
        tick_interval_s: float,
        gate: Gate | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.fanout = fanout
        self.caches = caches
        self.health = health
        self.faults = faults
        self.clock = clock
        self.tick_interval_s = tick_interval_s
        # Fixed at construction (rule 6): the composition root picks it (monitor.app).
        self.gate: Final[Gate] = gate if gate is not None else LocalGate()
        # The devices' bed bindings, shared with ingest (monitor.pipeline.service.Monitor).
        self.bindings = Bindings()
        self._lock = asyncio.Lock()
        self._dirty: dict[str, float] = {}  # bed -> server time its engine state went bad
        # bed -> the last rebuild failure logged for it (logged again only when it changes)
        self._rebuild_errors: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_tick: float | None = None
        self.checkpoints = Checkpoints(store, engine)  # rule 7
        self.rebuilds = 0
        health.use(Stage.ENGINE)
        health.use(Stage.ALARM_STORE)
        health.use(Stage.TICKER, self._ticker_alive)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, beds: Iterable[BedRow], last_seen: Mapping[str, float]) -> None:
        """Rebuild every bed from the record (rule 3), reading all of their records at once,
        then start the ticker. ``last_seen``: each device's last sign of life in the record
        (``Store.last_seen``, which the caller has read for its caches too)."""
        started = time.monotonic()
        every = list(beds)
        here = [b for b in every if self.gate.route(b["id"]) is Route.HERE]
        now = self.clock()
        records: dict[str, Record] | None
        try:
            records = await self.store.records_to_replay(
                now - REPLAY_WINDOW_S,
                bed_ids=None if len(here) == len(every) else [b["id"] for b in here],
                watched_protocols=self.checkpoints.watched_protocols(),
            )
        except Exception:
            # One unreadable row fails the read of every bed: read bed by bed instead, so
            # that only the bed holding it is left to the retry.
            log.warning(
                "reading every bed's record at once failed; reading bed by bed", exc_info=True
            )
            records = None
        failed: dict[str, str] = {}
        changed: list[Alarm] = []
        rebuilt = restored = 0
        for bed in here:
            bed_id = bed["id"]
            # Only devices still in service restart their silence clock.
            seen = {d: last_seen.get(d, 0.0) for d in bed["devices"]}
            record = records.get(bed_id) if records is not None else None
            if records is not None and record is None and not any(seen.values()):
                continue  # nothing stored that could affect it now: it costs nothing
            try:
                if records is None:  # the ward's read failed: this bed's own
                    record = await self.load_record(bed_id, self.horizon(bed_id, now))
                elif record is None:  # a device heard once, nothing else in the horizon
                    record = Record(sessions=[], open_alarms=[], recent_alarms=[], readings=[])
                these = await self._rebuilt(bed_id, record, last_seen=seen, seen_now=True)
                self._log_rebuilt(logging.DEBUG, bed_id, record, these)
                changed += these
                rebuilt += 1
                restored += len(record.open_alarms)
            except Exception as e:
                # One bed's unreadable record must not keep the ward from starting: the bed
                # is marked (its readings are stored and replayed by the retry), the engine
                # stage fails on /health until it is rebuilt, and the rest goes on.
                self._mark_dirty(bed_id)
                self.health.failed(Stage.ENGINE, self.clock(), type(e).__name__)
                failed[bed_id] = f"{type(e).__name__}: {e}"
                log.debug("rebuilding bed %s at start failed", bed_id, exc_info=True)
        # One write for the whole ward; if it fails, its beds are rebuilt by the ticker.
        await self.persist_quietly(changed)
        log.info(
            "rebuilt %d of %d bed(s) from the record in %.2f s: %d open alarm(s) restored, "
            "%d change(s) stored",
            rebuilt,
            len(here),
            time.monotonic() - started,
            restored,
            len(changed),
        )
        if failed:
            log.error(
                "could not rebuild %d bed(s) from the record; retrying every tick: %s",
                len(failed),
                "; ".join(f"bed {b}: {why}" for b, why in sorted(failed.items())),
            )
        self._rebuild_errors.update(failed)
        # Rule 8: one line for the whole start, naming the beds, however many there are.
        unfit = sorted(self.health.records.values(), key=lambda n: (n.bed, n.session))
        if unfit:
            log.warning(
                "could not rebuild %d bed(s) fully from the record, whose session history "
                "needs attention (judged under the phases up to the offending event): %s",
                len({n.bed for n in unfit}),
                "; ".join(
                    f"bed {n.bed} session {n.session} event {n.event_id}: {n.message}"
                    for n in unfit
                ),
            )
        self._last_tick = self.clock()
        self._task = asyncio.create_task(self._ticker(), name="vigil-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _ticker_alive(self, now: float) -> str | None:
        if self._task is None:
            return None
        if self._task.done():
            return "the ticker task has ended"
        if self._last_tick is not None:
            late = now - self._last_tick
            if late > TICKER_STALL_INTERVALS * self.tick_interval_s + 2.0:
                return f"no tick for {late:.0f} s"
        return None

    # --- the engine, guarded --------------------------------------------------------------

    def dirty_beds(self) -> set[str]:
        """The beds whose state is not trusted, waiting for a rebuild from the record."""
        return set(self._dirty)

    def _mark_dirty(self, bed_id: str) -> None:
        self._dirty.setdefault(bed_id, self.clock())

    def _engine_failed(self, bed_id: str, e: Exception) -> None:
        log.exception("the alarm engine failed on bed %s; rebuilding it from the record", bed_id)
        self._mark_dirty(bed_id)
        self.health.failed(Stage.ENGINE, self.clock(), type(e).__name__)

    def _guard(self, bed_id: str, call: Callable[[], list[Alarm]]) -> list[Alarm]:
        if bed_id in self._dirty:
            # Its state is not trusted: the rebuild replays what is stored meanwhile.
            return []
        try:
            self.faults.hit(Point.ENGINE)
            return call()
        except Exception as e:
            self._engine_failed(bed_id, e)
            return []

    def judge(self, readings: Sequence[Reading]) -> list[Alarm]:
        """Stored readings, in the order stored (rule 2)."""
        changes: list[Alarm] = []
        gate, engine, faults, dirty = self.gate, self.engine, self.faults, self._dirty
        for r in readings:
            bed_id = r.bed_id
            assert bed_id is not None
            route = gate.route(bed_id)
            self.checkpoints.note_reading(r)
            if route is Route.HERE:
                if bed_id in dirty:
                    continue  # the rebuild replays it
                try:
                    faults.hit(Point.ENGINE)
                    changes += engine.on_reading(r)
                    bound = self.bindings.current(r.device_id)
                    if bound is not None and bound != bed_id:
                        # A late reading of a device since bound elsewhere is judged on its
                        # bed of then, but the device is not watched there for "no data".
                        changes += engine.remove_device(bed_id, r.device_id, r.received_at)
                except Exception as e:
                    self._engine_failed(bed_id, e)
            elif route is Route.HOLD:
                gate.hold(bed_id, HeldReading(r))
        return changes

    async def persist(self, changes: list[Alarm]) -> None:
        """Store alarm changes, then publish them; raises Unavailable if they could not be
        stored (counted, and the beds concerned are rebuilt from the record)."""
        if not changes:
            return
        by_id: dict[str, Alarm] = {}
        for a in changes:  # the last change of an alarm wins; first appearance keeps order
            by_id[a.id] = a
        items = list(by_id.values())
        async with self._lock:
            await self._store_locked(items)
        self._published(items)

    async def _store_locked(
        self,
        items: list[Alarm],
        *,
        audit: AuditNote | None = None,
        acknowledge: str | None = None,
        beds: Iterable[str] = (),
    ) -> bool:
        """Store alarm changes (with a command's audit entry, and its acknowledgement guard:
        Store.alarm_command), the caller holding ``self._lock``. False if the guard found the
        alarm acknowledged or ended in the store. Raises Unavailable if nothing could be
        stored; the beds concerned (and ``beds``) are then rebuilt from the record."""
        try:
            self.faults.hit(Point.ALARM_STORE)
            if audit is None:
                await self.store.upsert_alarms(items, self.clock())
                stored = True
            else:
                stored = await self.store.alarm_command(
                    items, self.clock(), audit=audit, acknowledge=acknowledge
                )
        except Exception as e:
            log.exception("storing %d alarm changes failed", len(items))
            self.health.failed(Stage.ALARM_STORE, self.clock(), type(e).__name__)
            for bed_id in {a.bed_id for a in items} | set(beds):
                self._mark_dirty(bed_id)
            raise Unavailable("alarm changes could not be stored") from e
        self.health.ok(Stage.ALARM_STORE, self.clock())
        return stored

    def _published(self, items: list[Alarm]) -> None:
        self.faults.hit(Point.AFTER_ALARM_COMMIT)
        for a in items:
            self.fanout.alarm(a)

    async def persist_quietly(self, changes: list[Alarm]) -> None:
        """For changes no caller waits on: a failure is counted and repaired by a rebuild."""
        with contextlib.suppress(Unavailable):
            await self.persist(changes)

    # --- what devices do ------------------------------------------------------------------

    async def device_seen(
        self, bed_id: str, device_id: str, at: float, *, relay: bool = True
    ) -> None:
        """A device's sign of life (server time); ``relay`` False for one heard from another
        instance, which must not be sent round again."""
        self.caches.seen(device_id, at)
        route = self.gate.route(bed_id)
        if relay:
            self.gate.seen(bed_id, device_id, at, here=route is Route.HERE)
        if route is Route.HERE:
            changes = self._guard(bed_id, lambda: self.engine.device_seen(bed_id, device_id, at))
            await self.persist_quietly(changes)
        elif route is Route.HOLD:
            self.gate.hold(bed_id, HeldSeen(device_id, at))

    async def rejected(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        route = self.gate.route(bed_id)
        if route is Route.HERE:
            changes = self._guard(
                bed_id, lambda: self.engine.on_artefact(bed_id, device_id, code, at)
            )
            await self.persist_quietly(changes)
        elif route is Route.HOLD:
            self.gate.hold(bed_id, HeldArtefact(device_id, code, at))
        else:
            self.gate.artefact(bed_id, device_id, code, at)

    async def remove_device(self, bed_id: str, device_id: str) -> None:
        if self.gate.route(bed_id) is Route.HERE:
            changes = self._guard(
                bed_id, lambda: self.engine.remove_device(bed_id, device_id, self.clock())
            )
            await self.persist_quietly(changes)

    # --- sessions -----------------------------------------------------------------------

    async def session_changed(self, row: SessionRow) -> None:
        """A session row as now stored: the bed's regime from the event's own time."""
        bed_id = row["bed_id"]
        current = self.caches.note_session(row)
        route = self.gate.route(bed_id)
        if route is Route.HOLD:
            self.gate.hold(bed_id, HeldSession(row["id"]))
            return
        if route is not Route.HERE:
            return
        events = await self.checkpoints.watch_session(bed_id, row)
        await self.persist_quietly(await self._apply_session(bed_id, current, row, events))

    async def resync_sessions(self) -> None:
        """Re-read every open session from the store and apply those this instance knows
        differently (changed, or ended), for when session changes may have been missed (a
        broken multi-instance bus)."""
        rows = await self.store.session_rows(open_only=True, limit=10_000)
        known = self.caches.open_sessions
        open_beds = {r["bed_id"] for r in rows}
        for row in rows:
            c = known.get(row["bed_id"])
            if c is None or (c.id, c.phase, c.baseline, c.overrides) != (
                row["id"],
                row["phase"],
                row["baseline"],
                row["limit_overrides"],
            ):
                await self.session_changed(row)
        for bed_id in [b for b in known if b not in open_beds]:
            ended = await self.store.session_row(known[bed_id].id)
            if ended is not None:
                await self.session_changed(ended)

    # --- checkpoints (rule 7) ---------------------------------------------------------------

    async def _apply_session(
        self,
        bed_id: str,
        current: OpenSession | None,
        row: SessionRow,
        events: list[SessionEventRow] | None = None,
    ) -> list[Alarm]:
        """``events``: the session's stored events if the caller has just loaded them."""
        now = self.clock()
        if current is None:
            since = row["ended_at"] if row["ended_at"] is not None else now
            return self._guard(
                bed_id,
                lambda: self.engine.set_session(
                    bed_id, None, None, None, None, now=now, since=since
                ),
            )
        if current.id != row["id"]:
            return []  # an older session of the bed: the open one stays in force
        if events is None:
            events = await self.store.session_events(row["id"])
        spans, problem = session_model.fold_spans(
            row["opened_at"], [(e["id"], e["type"], e["at"]) for e in events]
        )
        self.health.record(row["id"], record_notice(bed_id, row["id"], problem))
        since, folded = spans[-1]
        # The stored phase, unless the history is impossible: then, as on a rebuild, the
        # phase of the events up to the offending one (rule 8).
        phase = current.phase if problem is None else folded.value
        if phase == Phase.ENDED.value:
            return self._guard(
                bed_id,
                lambda: self.engine.set_session(
                    bed_id, None, None, None, None, now=now, since=since
                ),
            )
        return self._guard(
            bed_id,
            lambda: self.engine.set_session(
                bed_id,
                current.id,
                phase,
                current.baseline,
                self.engine.config.session_overrides(row.get("protocol"), phase, current.overrides),
                now=now,
                since=since,
                stale_cuff_s=self.engine.config.stale_cuff_s(row.get("protocol"), phase),
            ),
        )

    async def adopt_bed(
        self,
        bed_id: str,
        *,
        last_seen: Mapping[str, float],
        release: Callable[[], Sequence[Held]],
    ) -> list[Alarm]:
        """Start judging a bed another instance judged until now (rule 6; a multi-instance
        takeover): rebuilt from the record (rule 3), the devices' silence clocks continued
        from ``last_seen`` rather than restarted, then whatever ``release`` hands over (held
        for the bed meanwhile) judged too. Raises if the record cannot be read; the caller
        then releases the bed again."""
        return await self.rebuild(bed_id, last_seen=last_seen, seen_now=False, release=release)

    def release_bed(self, bed_id: str) -> list[Alarm]:
        """Forget a bed judged elsewhere from now on (rule 6; a multi-instance handover):
        its engine state, its checkpoint alarms and its watched session, without ending any
        alarm. Returns its live alarms as they were, for the caller to show as the other
        instance's until it hears of them. Nothing of the bed stays to take a command here."""
        live = self.engine.active(bed_id)
        live += self.checkpoints.release(bed_id)
        self.engine.discard_bed(bed_id)
        self._dirty.pop(bed_id, None)
        return live

    # --- rebuild from the record (rule 3) ---------------------------------------------------

    async def load_record(self, bed_id: str, since: float) -> Record:
        store = self.store
        rows = await store.session_rows(bed_id=bed_id, limit=50)
        wanted = [r for r in rows if r["ended_at"] is None or r["ended_at"] >= since]
        sessions: list[tuple[SessionRegime, list[session_model.StoredEvent]]] = []
        for row in wanted:
            events = await store.session_events(row["id"])
            sessions.append((row, [(e["id"], e["type"], e["at"]) for e in events]))
        return Record(
            sessions=sessions,
            open_alarms=await store.alarms(bed_id=bed_id, active=True, limit=10_000),
            recent_alarms=await store.alarms(bed_id=bed_id, since=since, limit=10_000),
            readings=await store.readings_to_replay(bed_id, since),
        )

    def horizon(self, bed_id: str, now: float) -> float:
        start = now - REPLAY_WINDOW_S
        bad = self._dirty.get(bed_id)
        if bad is not None:
            start = min(start, bad - REPLAY_WINDOW_S)
        return max(start, now - REPLAY_MAX_S)

    async def rebuild(
        self,
        bed_id: str,
        *,
        last_seen: Mapping[str, float] | None = None,
        seen_now: bool = False,
        release: Callable[[], Sequence[Held]] | None = None,
    ) -> list[Alarm]:
        """Rebuild one bed's alarm state from the stored record and store what changed.
        Raises if the record cannot be read; the bed then stays marked for another try.

        ``release`` (a takeover) is called right after the replay, with no await between: it
        hands over what was held for the bed meanwhile, which is then judged too."""
        record = await self.load_record(bed_id, self.horizon(bed_id, self.clock()))
        if last_seen is None:
            beds = await self.store.list_beds()
            in_service: list[str] = next((b["devices"] for b in beds if b["id"] == bed_id), [])
            last_seen = {d: self.caches.last_seen.get(d, 0.0) for d in in_service}
        changed = await self._rebuilt(
            bed_id, record, last_seen=last_seen, seen_now=seen_now, release=release
        )
        # A takeover or a repair, one bed at a time: worth a line each (a start logs one).
        self._log_rebuilt(logging.INFO, bed_id, record, changed)
        await self.persist(changed)
        return changed

    async def _rebuilt(
        self,
        bed_id: str,
        record: Record,
        *,
        last_seen: Mapping[str, float],
        seen_now: bool,
        release: Callable[[], Sequence[Held]] | None = None,
    ) -> list[Alarm]:
        """Replay ``record`` into the bed's engine state and checkpoints; returns what
        changed, for the caller to store."""
        changed, replayed = replay(
            self.engine, bed_id, record, now=self.clock(), last_seen=last_seen, seen_now=seen_now
        )
        for row, events in record.sessions:
            _, problem = session_model.fold_spans(row["opened_at"], events)
            self.health.record(row["id"], record_notice(bed_id, row["id"], problem))
        await self.checkpoints.rewatch(bed_id, record)
        self._dirty.pop(bed_id, None)
        held = release() if release is not None else ()
        for item in held:
            if isinstance(item, HeldReading):
                r = item.reading
                if (r.device_id, r.seq) not in replayed:
                    changed += self.engine.on_reading(r)
            elif isinstance(item, HeldSeen):
                changed += self.engine.device_seen(bed_id, item.device_id, item.at)
            elif isinstance(item, HeldArtefact):
                changed += self.engine.on_artefact(bed_id, item.device_id, item.code, item.at)
        if any(isinstance(item, HeldSession) for item in held):
            # A session changed while we rebuilt: apply the bed's latest state now.
            rows = await self.store.session_rows(bed_id=bed_id, open_only=True, limit=1)
            current = self.caches.note_session(rows[0]) if rows else None
            if current is not None and rows:
                changed += await self._apply_session(bed_id, current, rows[0])
        self.rebuilds += 1
        return changed

    def _log_rebuilt(self, level: int, bed_id: str, record: Record, changed: list[Alarm]) -> None:
        log.log(
            level,
            "rebuilt bed %s from the record: %d open alarms, %d readings replayed, %d changes",
            bed_id,
            len(record.open_alarms),
            len(record.readings),
            len(changed),
        )

    async def _rebuild_dirty(self) -> None:
        for bed_id in list(self._dirty):
            if self.gate.route(bed_id) is not Route.HERE:
                self._dirty.pop(bed_id, None)  # another instance rebuilds it on takeover
                continue
            try:
                await self.rebuild(bed_id)
                self._rebuild_errors.pop(bed_id, None)
            except Exception as e:
                self._mark_dirty(bed_id)
                why = f"{type(e).__name__}: {e}"
                # Once per distinct failure, not once a tick: a record that stays unreadable
                # would otherwise fill the log.
                if self._rebuild_errors.get(bed_id) != why:
                    self._rebuild_errors[bed_id] = why
                    log.warning("rebuilding bed %s failed (%s); trying again", bed_id, why)
        if not self._dirty:
            # Every bed a failure touched is judged from the record again: nothing the engine
            # or the alarm store failed on is still owed (rule 2), however quiet the ward.
            for stage in (Stage.ENGINE, Stage.ALARM_STORE):
                if not self.health.stages[stage].ok:
                    self.health.ok(stage, self.clock())

    # --- the server clock ---------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            now = self.clock()
            try:
                stages = self.health.stages
                if self._dirty or not (stages[Stage.ENGINE].ok and stages[Stage.ALARM_STORE].ok):
                    await self._rebuild_dirty()
                try:
                    changes = self.engine.tick(now)
                    changes += self.checkpoints.judge(
                        now, here=lambda b: self.gate.route(b) is Route.HERE, dirty=self._dirty
                    )
                except Exception as e:
                    log.exception("alarm tick failed")
                    self.health.failed(Stage.ENGINE, now, type(e).__name__)
                    changes = []
                await self.persist_quietly(changes)
                self._last_tick = now
                self.health.ok(Stage.TICKER, now)
            except Exception as e:  # never let the ticker end: technical alarms depend on it
                log.exception("alarm ticker round failed")
                self.health.failed(Stage.TICKER, now, type(e).__name__)

    # --- people's commands (rule 5) --------------------------------------------------------

    async def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        if self.engine.get(alarm_id) is not None or alarm_id in self.checkpoints.live:
            return await self.acknowledge_here(alarm_id, user)
        # Not held here: the gate runs it where the alarm's bed is judged (rule 6).
        return await self.gate.acknowledge(
            alarm_id, user, here=lambda: self.acknowledge_here(alarm_id, user)
        )

    async def acknowledge_here(self, alarm_id: str, user: str) -> Alarm | None:
        """Acknowledge a live alarm of this instance: the alarm as this call acknowledged it,
        stored with its ``alarm_ack`` audit entry in one transaction; None when no live alarm
        here can be acknowledged now (unknown here, acknowledged already, ended).

        Decided and stored under the store lock, so of simultaneous acks one acknowledges and
        the others, deciding after its commit, find it acknowledged and answer None: their
        callers then read the stored acknowledgement (docs/api.md, "Repeats and races")."""
        async with self._lock:
            now = self.clock()
            checkpoint = self.checkpoints.live.get(alarm_id)
            if checkpoint is not None:
                if checkpoint.state not in UNACKNOWLEDGED_STATES:
                    return None
                changed = [lifecycle_apply(snapshot(checkpoint), Event.ACK, now, user=user)]
            else:
                try:
                    changed = self.engine.acknowledge(alarm_id, user, now)
                except (UnknownAlarm, LifecycleError):
                    return None
            acked = next((a for a in changed if a.id == alarm_id), None)
            if acked is None:
                return None  # acknowledged already
            if checkpoint is not None:
                # In memory before the await, as the engine's own: a tick meanwhile judges the
                # acknowledged alarm, and a failed write rebuilds the bed from the record.
                if acked.state == State.ENDED:
                    self.checkpoints.live.pop(alarm_id, None)
                else:
                    self.checkpoints.live[alarm_id] = acked
            audit = AuditNote("alarm_ack", actor=user, target=alarm_id, session_id=acked.session_id)
            if not await self._store_locked(changed, audit=audit, acknowledge=alarm_id):
                # The record says acknowledged or ended, this instance's memory did not: the
                # record wins (rule 1), so the bed is rebuilt from it.
                self._mark_dirty(acked.bed_id)
                return None
        self._published(changed)
        return snapshot(acked)

    async def pause_audio(self, bed_id: str, seconds: float | None, user: str) -> list[Alarm]:
        if self.gate.route(bed_id) is Route.HERE:
            return await self.pause_audio_here(bed_id, seconds, user)
        return await self.gate.pause_audio(
            bed_id, seconds, user, here=lambda: self.pause_audio_here(bed_id, seconds, user)
        )

    async def pause_audio_here(self, bed_id: str, seconds: float | None, user: str) -> list[Alarm]:
        """Pause the bed's sound: a press re-arms the pause from now and is stored with its
        ``audio_pause`` audit entry in one transaction; a press that would only repeat the
        pause in force (the engine's ``pause_repeats``) stores nothing and answers the bed's
        paused alarms as they stand (docs/api.md, "Repeats and races")."""
        async with self._lock:
            now = self.clock()
            if self.engine.pause_repeats(bed_id, now, seconds):
                return [a for a in self.active(bed_id) if a.audio_paused_until is not None]
            changed = self.engine.pause_audio(bed_id, now, seconds)
            # The bed's pause silences its checkpoint alarms too: they sound like any other,
            # and a nurse pausing the bed expects quiet from all of it (docs/protocols.md).
            until = self.engine.audio_paused_until(bed_id)
            paused = [
                lifecycle_apply(snapshot(a), Event.PAUSE_AUDIO, now, until=until)
                for a in self.checkpoints.live.values()
                if a.bed_id == bed_id and a.state in UNACKNOWLEDGED_STATES
            ]
            session = self.caches.open_sessions.get(bed_id)
            audit = AuditNote(
                "audio_pause",
                actor=user,
                target=bed_id,
                session_id=session.id if session else None,
                detail={"seconds": seconds, "until": until},
            )
            for a in paused:  # in memory before the await, as the engine's own
                self.checkpoints.live[a.id] = a
            await self._store_locked(changed + paused, audit=audit, beds=[bed_id])
        self._published(changed + paused)
        return changed + paused

    # --- queries ------------------------------------------------------------------------

    def active(self, bed_id: str | None = None) -> list[Alarm]:
        """Live alarms of the ward (or one bed): this instance's and, in multi-instance mode,
        the other instances' as last heard."""
        alarms = self.engine.active(bed_id)
        alarms += [
            snapshot(a)
            for a in self.checkpoints.live.values()
            if (bed_id is None or a.bed_id == bed_id) and self.gate.route(a.bed_id) is Route.HERE
        ]
        remote = self.gate.remote_alarms()
        if remote:
            alarms += [a for a in remote if bed_id is None or a.bed_id == bed_id]
        alarms.sort(key=lambda a: (-PRIORITY_RANK.get(a.priority, 0), a.started_at, a.id))
        return alarms
