"""The record a rebuild replays, for many beds in a handful of statements (rule 3 of
monitor.pipeline.alarm_loop): the sessions open or ended within the horizon with their
events, the alarms open or ended within it, the readings measured or received within it, and
each watched open session's cuff readings.

The statements do not grow with the number of beds: each is one range read, grouped by bed in
Python. A bed with nothing in its horizon gets no ``Record`` at all, so 8,000 quiet beds cost
a start nothing (docs/performance.md, "Startup").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final

from sqlalchemy import select, true, union
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from monitor.alarms.replay import Record, SessionRegime
from monitor.clinical import rules as pm
from monitor.clinical import session as session_model
from monitor.core.model import Alarm, Reading
from monitor.records.schema import SIGNAL_COLUMNS, alarms, beds, readings, session_events, sessions
from monitor.records.store.alarms import alarm_from_row
from monitor.records.store.base import StoreBase
from monitor.records.store.readings import reading_from_row
from monitor.records.store.rows import SessionRow, as_session_row
from monitor.wire.device import MAX_FUTURE_SKEW_S

# Bound parameters per IN list: far below SQLite's and PostgreSQL's limits.
_CHUNK: Final = 900


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class ReplayRecords(StoreBase):
    """The rebuild's reads, for every bed at once."""

    async def records_to_replay(
        self,
        since: float,
        *,
        bed_ids: Collection[str] | None = None,
        watched_protocols: Collection[str] = (),
    ) -> dict[str, Record]:
        """Each bed's ``Record`` over the horizon from ``since`` (only ``bed_ids``, when
        given), as ``load_record`` reads it for one bed; a bed with nothing in it is absent.
        An open session whose protocol is in ``watched_protocols`` also gets its events and
        cuff readings (``Record.watched_events``, ``Record.cuff``), which its checkpoints are
        judged from."""
        wanted = sorted(bed_ids) if bed_ids is not None else None

        def of_beds(col: ColumnElement[Any], chunk: Sequence[str] | None) -> ColumnElement[bool]:
            return col.in_(chunk) if chunk is not None else true()

        chunks: list[Sequence[str] | None] = list(_chunks(wanted)) if wanted is not None else [None]
        rows: list[SessionRow] = []
        found: list[Alarm] = []
        got: list[Reading] = []
        async with self.engine.connect() as conn:
            for chunk in chunks:
                rows += [
                    as_session_row(r)
                    for r in await conn.execute(
                        select(sessions).where(
                            of_beds(sessions.c.bed_id, chunk),
                            sessions.c.ended_at.is_(None) | (sessions.c.ended_at >= since),
                        )
                    )
                ]
                found += [
                    alarm_from_row(r)
                    for r in await conn.execute(
                        select(alarms)
                        .where(
                            of_beds(alarms.c.bed_id, chunk),
                            alarms.c.ended_at.is_(None) | (alarms.c.ended_at >= since),
                        )
                        .order_by(alarms.c.started_at, alarms.c.id)
                    )
                ]
            # Device time is at most MAX_FUTURE_SKEW_S ahead of the receive time (later ones
            # are refused), so one range on the indexed receive time finds both the readings
            # measured since the horizon and a late backlog received since it.
            for r in await conn.execute(
                select(readings)
                .where(
                    readings.c.received_at >= since - MAX_FUTURE_SKEW_S,
                    readings.c.bed_id.is_not(None),
                )
                .order_by(readings.c.ts, readings.c.id)
            ):
                if r.ts >= since or r.received_at >= since:
                    got.append(reading_from_row(r))
            events: dict[int, list[pm.SessionEvent]] = {}
            for ids in _chunks([row["id"] for row in rows]):
                for e in await conn.execute(
                    select(session_events)
                    .where(session_events.c.session_id.in_(ids))
                    .order_by(session_events.c.session_id, session_events.c.id)
                ):
                    events.setdefault(e.session_id, []).append(
                        pm.SessionEvent(e.type, e.at, e.data, e.id)
                    )
            watched = [
                row
                for row in rows
                if row["ended_at"] is None and row["protocol"] in watched_protocols
            ]
            cuff = await self._cuff_of(conn, watched, rows)
        watched_ids = {row["id"] for row in watched}
        if wanted is not None:
            keep = set(wanted)
            got = [r for r in got if r.bed_id in keep]
        by_bed: dict[str, dict[str, Any]] = {}

        def bed(bed_id: str) -> dict[str, Any]:
            return by_bed.setdefault(
                bed_id, {"sessions": [], "open_alarms": [], "recent_alarms": [], "readings": []}
            )

        for row in sorted(rows, key=lambda r: r["opened_at"], reverse=True):
            regime: SessionRegime = row  # a session row has every key a regime reads
            its = events.get(row["id"], [])
            b = bed(row["bed_id"])
            b["sessions"].append((regime, [(e.id, e.type, e.at) for e in its]))
            if row["id"] in watched_ids and "cuff" not in b:  # the newest open one
                b["watched_events"] = its
                b["cuff"] = cuff[row["bed_id"]]
        for a in found:
            b = bed(a.bed_id)
            b["recent_alarms"].append(a)
            if a.ended_at is None:
                b["open_alarms"].append(a)
        for reading in got:
            assert reading.bed_id is not None  # selected so
            bed(reading.bed_id)["readings"].append(reading)
        return {bed_id: Record(**parts) for bed_id, parts in by_bed.items()}

    async def _cuff_of(
        self, conn: AsyncConnection, watched: Sequence[SessionRow], rows: Sequence[SessionRow]
    ) -> dict[str, list[Reading]]:
        """The cuff readings of each watched open session, by bed: those of its bed whose
        device time its membership span holds (the rule of ``ReadingRecords.readings``)."""
        if not watched:
            return {}
        spans: dict[str, session_model.Span] = {}
        for row in watched:
            later = [
                r["opened_at"]
                for r in rows
                if r["bed_id"] == row["bed_id"]
                and (r["opened_at"], r["id"]) > (row["opened_at"], row["id"])
            ]
            spans[row["bed_id"]] = session_model.membership_span(
                row["bed_id"], row["opened_at"], row["ended_at"], min(later, default=None)
            )
        out: dict[str, list[Reading]] = {b: [] for b in spans}
        for chunk in _chunks(sorted(spans)):
            first = min(spans[b].start for b in chunk)
            for r in await conn.execute(
                select(readings)
                .where(
                    readings.c.bed_id.in_(chunk),
                    readings.c.ts >= first,
                    readings.c.source == "nibp",
                )
                .order_by(readings.c.ts, readings.c.id)
            ):
                if spans[r.bed_id].holds(r.ts):
                    out[r.bed_id].append(reading_from_row(r))
        return out

    async def latest_values_of_beds(self) -> dict[str, dict[str, Reading]]:
        """Every bed's newest stored reading (by device time) carrying each signal, in one
        statement: per bed and signal one step down ix_readings_bed_ts."""
        newest = [
            select(
                select(readings.c.id)
                .where(readings.c.bed_id == beds.c.id, readings.c[sig].is_not(None))
                .order_by(readings.c.ts.desc())
                .limit(1)
                .scalar_subquery()
            ).select_from(beds)
            for sig in SIGNAL_COLUMNS
        ]
        stmt = select(readings).where(readings.c.id.in_(union(*newest)))
        out: dict[str, dict[str, Reading]] = {}
        async with self.engine.connect() as conn:
            for row in await conn.execute(stmt):
                r = reading_from_row(row)
                assert r.bed_id is not None  # a bed's, by the subqueries
                latest = out.setdefault(r.bed_id, {})
                for sig in r.values:
                    prev = latest.get(sig)
                    if prev is None or r.ts > prev.ts:
                        latest[sig] = r
        return out
