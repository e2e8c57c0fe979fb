"""Readings: stored once per (device, seq), corrected, swept by retention, and the one
rule for which readings belong to a session."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from monitor.clinical import session as session_model
from monitor.core.model import Reading
from monitor.records.schema import (
    SIGNAL_COLUMNS,
    devices,
    heartbeats,
    readings,
    retention_marks,
    sessions,
)
from monitor.records.store.base import StoreBase

# Built once: SQLAlchemy memoizes a statement's cache key on the statement object, so one
# built per batch paid for its key (and its construction) on every batch.
_MARKS_VERSION = select(func.count(), func.sum(retention_marks.c.swept_seq))


def reading_from_row(row: Row[Any]) -> Reading:
    m = row._mapping
    values = {k: m[k] for k in SIGNAL_COLUMNS if m[k] is not None}
    return Reading(
        device_id=m["device_id"],
        seq=m["seq"],
        ts=m["ts"],
        received_at=m["received_at"],
        values=values,
        source=m["source"],
        bed_id=m["bed_id"],
    )


def _reading_row(r: Reading) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device_id": r.device_id,
        "seq": r.seq,
        "bed_id": r.bed_id,
        "ts": r.ts,
        "received_at": r.received_at,
        "source": r.source,
    }
    for k in SIGNAL_COLUMNS:
        row[k] = r.values.get(k)
    return row


class ReadingRecords(StoreBase):
    """Readings and their retention marks."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        # The retention marks as last read, and the version they were read at: marks only
        # rise and are only added, so (how many, their sum) changes whenever any mark does,
        # whichever instance swept (see _retention_marks).
        self._marks: dict[str, int] = {}
        self._marks_version: tuple[Any, ...] | None = None
        # The batch insert, built once: its construction and cache key were a tenth of a
        # loaded monitor's CPU, per batch.
        self._insert_batch: Any = None

    async def insert_readings(
        self, batch: Sequence[Reading], corrections: Sequence[Reading] = ()
    ) -> set[tuple[str, int]]:
        """Store a batch in one transaction; returns the (device, seq) pairs that were new
        (or, for ``corrections``, that changed what is stored).

        A (device, seq) already stored is left as it was: a resend is stored once. So is a
        seq at or below its device's retention mark (swept by retention: stored before).
        A correction replaces, signal by signal, the value stored for the same device and
        device time; signals with nothing to replace are stored as a new reading.
        """
        if not batch and not corrections:
            return set()
        async with self.engine.begin() as conn:
            marks = await self._retention_marks(conn)
            out: set[tuple[str, int]] = set()
            fresh = [r for r in batch if r.seq > marks.get(r.device_id, -1)]
            if fresh:
                if self._insert_batch is None:
                    self._insert_batch = (
                        self._insert(readings)
                        .on_conflict_do_nothing(index_elements=["device_id", "seq"])
                        .returning(readings.c.device_id, readings.c.seq)
                    )
                res = await conn.execute(self._insert_batch, [_reading_row(r) for r in fresh])
                out.update((d, q) for d, q in res.all())
            for r in corrections:
                if await self._apply_correction(conn, r, marks.get(r.device_id, -1)):
                    out.add((r.device_id, r.seq))
            return out

    async def _retention_marks(self, conn: AsyncConnection) -> dict[str, int]:
        """Every device's retention mark, read in the caller's transaction: one small
        aggregate a batch, and the marks themselves again only after a sweep changed them.
        (Reading the batch's devices' marks by name cost a tenth of a loaded monitor's CPU:
        an IN list of a thousand names compiled per batch.)"""
        version = tuple((await conn.execute(_MARKS_VERSION)).one())
        if version != self._marks_version:
            rows = await conn.execute(
                select(retention_marks.c.device_id, retention_marks.c.swept_seq)
            )
            self._marks = {d: int(q) for d, q in rows.all()}
            self._marks_version = version
        return self._marks

    async def _apply_correction(self, conn: AsyncConnection, r: Reading, mark: int) -> bool:
        changed = False
        unmatched: dict[str, float] = {}
        for sig, value in r.values.items():
            if sig not in SIGNAL_COLUMNS:
                continue
            col = readings.c[sig]
            where = and_(readings.c.device_id == r.device_id, readings.c.ts == r.ts)
            held = (
                await conn.execute(select(readings.c.id, col).where(where, col.is_not(None)))
            ).all()
            if not held:
                unmatched[sig] = value
                continue
            stale = [row.id for row in held if row[1] != value]
            if stale:
                await conn.execute(
                    update(readings).where(readings.c.id.in_(stale)).values({sig: value})
                )
                changed = True
        if unmatched and r.seq > mark:
            row = _reading_row(r)
            for k in SIGNAL_COLUMNS:
                row[k] = unmatched.get(k)
            res = await conn.execute(
                self._insert(readings)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["device_id", "seq"])
                .returning(readings.c.id)
            )
            changed = changed or res.first() is not None
        return changed

    async def conflicting(self, batch: Sequence[Reading]) -> list[tuple[Reading, dict[str, float]]]:
        """The readings of ``batch`` whose (device, seq) is stored with other values, each with
        the values stored: two different readings that map to one key (HL7's derived seq)."""
        by_device: dict[str, list[Reading]] = {}
        for r in batch:
            by_device.setdefault(r.device_id, []).append(r)
        out: list[tuple[Reading, dict[str, float]]] = []
        async with self.engine.connect() as conn:
            for device_id, items in by_device.items():
                rows = await conn.execute(
                    select(readings).where(
                        readings.c.device_id == device_id,
                        readings.c.seq.in_([r.seq for r in items]),
                    )
                )
                stored = {row.seq: reading_from_row(row).values for row in rows.all()}
                for r in items:
                    held = stored.get(r.seq)
                    mine = {k: v for k, v in r.values.items() if k in SIGNAL_COLUMNS}
                    if held is not None and dict(held) != mine:
                        out.append((r, dict(held)))
        return out

    async def readings(
        self,
        *,
        bed_id: str | None = None,
        session_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        source: str | None = None,
    ) -> list[Reading]:
        """Stored readings, oldest first by device time, ``since <= ts < until``, only those
        of ``source`` (such as ``nibp``) when given.

        With ``session_id``: the session's readings, and this is the one place that decides
        which those are (reports, CSV, FHIR, the baseline and ``GET /api/readings?session=``
        all come here). A reading belongs to the session of its bed whose span holds its
        device ``ts`` (``monitor.clinical.session.membership_span``), whenever it arrived; nothing
        about the reading's arrival is stored or trusted. An unknown session has none.
        """
        conds = []
        if bed_id is not None:
            conds.append(readings.c.bed_id == bed_id)
        if since is not None:
            conds.append(readings.c.ts >= since)
        if until is not None:
            conds.append(readings.c.ts < until)
        if source is not None:
            conds.append(readings.c.source == source)
        async with self.engine.connect() as conn:
            if session_id is not None:
                held = await self._session_readings(conn, session_id)
                if held is None:
                    return []
                conds += held
            stmt = (
                select(readings)
                .where(and_(true(), *conds))
                .order_by(readings.c.ts, readings.c.id)
                .limit(limit)
            )
            return [reading_from_row(r) for r in (await conn.execute(stmt)).all()]

    async def session_extremes(self, session_id: int) -> dict[str, float | None]:
        """The session's highest sbp, dbp and hr and its lowest spo2 (docs/course.md), over
        the readings that belong to it (the same span as ``readings(session_id=...)``)."""
        async with self.engine.connect() as conn:
            conds = await self._session_readings(conn, session_id)
            if conds is None:
                return {}
            stmt = select(
                func.max(readings.c.sbp),
                func.max(readings.c.dbp),
                func.max(readings.c.hr),
                func.min(readings.c.spo2),
            ).where(*conds)
            row = (await conn.execute(stmt)).one()
        return {"sbp": row[0], "dbp": row[1], "hr": row[2], "spo2": row[3]}

    async def readings_to_replay(self, bed_id: str, since: float) -> list[Reading]:
        """A bed's readings measured, or received, since ``since``, oldest measured first: a
        backlog that arrived late is replayed with the recent record (monitor.pipeline.alarm_loop)."""
        stmt = (
            select(readings)
            .where(
                readings.c.bed_id == bed_id,
                (readings.c.ts >= since) | (readings.c.received_at >= since),
            )
            .order_by(readings.c.ts, readings.c.id)
            .limit(100_000)
        )
        async with self.engine.connect() as conn:
            return [reading_from_row(r) for r in (await conn.execute(stmt)).all()]

    async def _session_readings(
        self, conn: AsyncConnection, session_id: int
    ) -> list[ColumnElement[bool]] | None:
        """The conditions that select a session's readings (the one rule, see ``readings``);
        None for an unknown session."""
        span = await self._membership_span(conn, session_id)
        if span is None:
            return None
        # Served by ix_readings_bed_ts: one bed, one range of device time.
        conds = [readings.c.bed_id == span.bed_id, readings.c.ts >= span.start]
        if span.end is not None:
            conds.append(readings.c.ts < span.end)
        return conds

    async def _membership_span(
        self, conn: AsyncConnection, session_id: int
    ) -> session_model.Span | None:
        row = (
            await conn.execute(
                select(sessions.c.bed_id, sessions.c.opened_at, sessions.c.ended_at).where(
                    sessions.c.id == session_id
                )
            )
        ).first()
        if row is None:
            return None
        later = sessions.alias("later")
        next_opened = (
            await conn.execute(
                select(func.min(later.c.opened_at)).where(
                    later.c.bed_id == row.bed_id,
                    (later.c.opened_at > row.opened_at)
                    | ((later.c.opened_at == row.opened_at) & (later.c.id > session_id)),
                )
            )
        ).scalar_one()
        return session_model.membership_span(row.bed_id, row.opened_at, row.ended_at, next_opened)

    async def latest_values(
        self, bed_id: str, signals: Sequence[str] = SIGNAL_COLUMNS
    ) -> dict[str, Reading]:
        """The newest stored reading (by device time) carrying each of ``signals`` (one query
        each), for one bed."""
        out: dict[str, Reading] = {}
        async with self.engine.connect() as conn:
            for sig in signals:
                col = readings.c[sig]
                row = (
                    await conn.execute(
                        select(readings)
                        .where(readings.c.bed_id == bed_id, col.is_not(None))
                        .order_by(readings.c.ts.desc())
                        .limit(1)
                    )
                ).first()
                if row is not None:
                    out[sig] = reading_from_row(row)
        return out

    async def count_readings(self, device_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(readings)
        if device_id is not None:
            stmt = stmt.where(readings.c.device_id == device_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def last_seen(self) -> dict[str, float]:
        """Each registered device's last sign of life in the record: the receive time of its
        newest reading (highest seq), for the no-data clock and the panel after a restart.

        A device numbers its readings in the order it sends them, so its highest seq is its
        latest send; reading it is one step down uq_readings_device_seq per device, where the
        largest receive time would scan every stored reading (seconds, with hours of them)."""
        newest = (
            select(readings.c.received_at)
            .where(readings.c.device_id == devices.c.id)
            .order_by(readings.c.seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        stmt = select(devices.c.id, newest)
        async with self.engine.connect() as conn:
            return {d: t for d, t in (await conn.execute(stmt)).all() if t is not None}

    async def delete_readings_before(self, cutoff: float, now: float | None = None) -> int:
        """Retention: drop readings measured (device time) before ``cutoff``.

        First, in the same transaction, each device's retention mark is raised to the highest
        seq about to go, so a resend of a swept reading is still a duplicate (idempotency of
        (device, seq) outlives the rows). Only rows at or below the mark are deleted, so a
        reading stored while the sweep runs waits for the next one rather than escaping it.
        """
        at = time.time() if now is None else now
        async with self.engine.begin() as conn:
            swept = (
                await conn.execute(
                    select(readings.c.device_id, func.max(readings.c.seq))
                    .where(readings.c.ts < cutoff)
                    .group_by(readings.c.device_id)
                )
            ).all()
            if not swept:
                return 0
            stmt = self._insert(retention_marks)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["device_id"],
                    set_={
                        "swept_seq": func.max(retention_marks.c.swept_seq, stmt.excluded.swept_seq)
                        if self.dialect == "sqlite"
                        else func.greatest(retention_marks.c.swept_seq, stmt.excluded.swept_seq),
                        "swept_at": stmt.excluded.swept_at,
                    },
                ),
                [{"device_id": d, "swept_seq": int(q), "swept_at": at} for d, q in swept],
            )
            mark = (
                select(retention_marks.c.swept_seq)
                .where(retention_marks.c.device_id == readings.c.device_id)
                .scalar_subquery()
            )
            res = await conn.execute(
                readings.delete().where(readings.c.ts < cutoff, readings.c.seq <= mark)
            )
        return int(res.rowcount or 0)

    async def probe_write(self, instance_id: str, now: float) -> None:
        """A write that touches no patient data: fails when the database takes no writes."""
        stmt = self._insert(heartbeats).values(instance_id=instance_id, at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["instance_id"], set_={"at": now})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def retention_mark(self, device_id: str) -> int | None:
        """The highest seq of ``device_id`` that retention has swept, if any."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                select(retention_marks.c.swept_seq).where(retention_marks.c.device_id == device_id)
            )
