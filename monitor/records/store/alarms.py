"""Alarms as stored: one row per alarm id, upserted as its lifecycle moves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.core.model import Alarm, AlarmKind, AlarmState, Direction, Priority
from monitor.records.schema import alarms
from monitor.records.store.base import AuditNote, StoreBase, audit_in


def _alarm_detail(a: Alarm) -> dict[str, object] | None:
    """The row's detail JSON: the alarm's detail with its direction (which has no column)."""
    if a.direction is None:
        return a.detail or None
    return {**a.detail, "direction": a.direction.value}


def alarm_from_row(row: Row[Any]) -> Alarm:
    m = row._mapping
    detail = dict(m["detail"] or {})
    direction = detail.pop("direction", None)
    return Alarm(
        id=m["id"],
        bed_id=m["bed_id"],
        signal=m["signal"],
        kind=AlarmKind(m["kind"]),
        priority=Priority(m["priority"]),
        condition=m["condition"],
        started_at=m["started_at"],
        state=AlarmState(m["state"]),
        ended_at=m["ended_at"],
        acknowledged_at=m["acknowledged_at"],
        acknowledged_by=m["acknowledged_by"],
        session_id=m["session_id"],
        device_id=m["device_id"],
        value=m["value"],
        escalated=bool(m["escalated"]),
        audio_paused_until=m["audio_paused_until"],
        detail=detail,
        direction=Direction(direction) if direction is not None else None,
    )


class AlarmRecords(StoreBase):
    """Alarms and the commands people give them."""

    async def upsert_alarms(self, items: Iterable[Alarm], now: float) -> None:
        async with self.engine.begin() as conn:
            await self._upsert_alarms_in(conn, items, now)

    async def alarm_command(
        self,
        items: Sequence[Alarm],
        now: float,
        *,
        audit: AuditNote,
        acknowledge: str | None = None,
    ) -> bool:
        """Store a person's alarm command (acknowledge, audio pause): the alarm changes it
        made and its audit entry, in one transaction.

        ``acknowledge``: the id of the alarm acknowledged. Its stored row is claimed first
        with ``WHERE acknowledged_at IS NULL AND ended_at IS NULL``; if no row matches (it
        was acknowledged or ended meanwhile) nothing is stored and the answer is False."""
        async with self.engine.begin() as conn:
            if acknowledge is not None:
                res = await conn.execute(
                    update(alarms)
                    .where(
                        alarms.c.id == acknowledge,
                        alarms.c.acknowledged_at.is_(None),
                        alarms.c.ended_at.is_(None),
                    )
                    .values(updated_at=now)
                )
                if not res.rowcount:
                    return False
            await self._upsert_alarms_in(conn, items, now)
            await audit_in(
                conn,
                audit.action,
                at=now,
                actor=audit.actor,
                target=audit.target,
                session_id=audit.session_id,
                detail=audit.detail,
            )
        return True

    async def _upsert_alarms_in(
        self, conn: AsyncConnection, items: Iterable[Alarm], now: float
    ) -> None:
        rows = [
            {
                "id": a.id,
                "bed_id": a.bed_id,
                "session_id": a.session_id,
                "device_id": a.device_id,
                "signal": a.signal,
                # The enums' values, not the members: a driver may adapt an enum its own way.
                "kind": a.kind.value,
                "priority": a.priority.value,
                "condition": a.condition,
                "state": a.state.value,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "acknowledged_at": a.acknowledged_at,
                "acknowledged_by": a.acknowledged_by,
                "escalated": a.escalated,
                "audio_paused_until": a.audio_paused_until,
                "value": a.value,
                "detail": _alarm_detail(a),
                "updated_at": now,
            }
            for a in items
        ]
        if not rows:
            return
        stmt = self._insert(alarms)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={c: stmt.excluded[c] for c in rows[0] if c not in ("id", "started_at")},
        )
        await conn.execute(stmt, rows)

    async def alarms(
        self,
        *,
        bed_id: str | None = None,
        since: float | None = None,
        active: bool | None = None,
        session_id: int | None = None,
        limit: int = 1000,
    ) -> list[Alarm]:
        conds = []
        if bed_id is not None:
            conds.append(alarms.c.bed_id == bed_id)
        if since is not None:
            conds.append((alarms.c.ended_at.is_(None)) | (alarms.c.ended_at >= since))
        if active is True:
            conds.append(alarms.c.ended_at.is_(None))
        elif active is False:
            conds.append(alarms.c.ended_at.is_not(None))
        if session_id is not None:
            conds.append(alarms.c.session_id == session_id)
        stmt = (
            select(alarms)
            .where(and_(true(), *conds))
            .order_by(alarms.c.started_at, alarms.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [alarm_from_row(r) for r in (await conn.execute(stmt)).all()]

    async def alarm(self, alarm_id: str) -> Alarm | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(alarms).where(alarms.c.id == alarm_id))).first()
        return alarm_from_row(row) if row is not None else None
