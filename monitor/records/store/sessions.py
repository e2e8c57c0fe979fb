"""Sessions and their events, every change behind the optimistic version guard
(docs/api.md, "Repeats and races")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.records.schema import beds, session_events, sessions
from monitor.records.store.base import Conflict, NotFound, StoreBase, audit_in
from monitor.records.store.rows import (
    SessionEventRow,
    SessionRow,
    as_session_event_row,
    as_session_row,
)


class _Stale(Exception):
    """A guarded write found the row changed: raised inside the transaction to roll it back."""


class SessionRecords(StoreBase):
    """Sessions, their events and limit overrides."""

    async def create_session(
        self,
        *,
        bed_id: str,
        patient_label: str,
        age: int | None,
        baseline: dict[str, float] | None,
        planned_s: int,
        now: float,
        by: str | None,
        protocol: str | None = None,
        opened_at: float | None = None,
        patient_id: str | None = None,
    ) -> int:
        async with self.engine.begin() as conn:
            exists = (await conn.execute(select(beds.c.id).where(beds.c.id == bed_id))).first()
            if exists is None:
                raise NotFound(f"no bed {bed_id!r}")
            try:
                res = await conn.execute(
                    sessions.insert().values(
                        bed_id=bed_id,
                        patient_label=patient_label,
                        patient_id=patient_id,
                        age=age,
                        phase="baseline",
                        infusion_planned_s=planned_s,
                        baseline=baseline,
                        protocol=protocol,
                        opened_at=now if opened_at is None else opened_at,
                        open_bed=bed_id,
                    )
                )
            except IntegrityError:
                raise Conflict(f"bed {bed_id} already has an open session") from None
            sid = int(res.inserted_primary_key[0])  # type: ignore[index]
            await audit_in(
                conn,
                "session_open",
                at=now,
                actor=by,
                target=bed_id,
                session_id=sid,
                detail={
                    "patient_label": patient_label,
                    "patient_id": patient_id,
                    "protocol": protocol,
                },
            )
        return sid

    async def session_row(self, session_id: int) -> SessionRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
        return as_session_row(row) if row is not None else None

    async def session_rows(
        self,
        *,
        bed_id: str | None = None,
        open_only: bool | None = None,
        patient_label: str | None = None,
        patient_id: str | None = None,
        limit: int = 200,
    ) -> list[SessionRow]:
        conds = []
        if patient_id is not None:
            conds.append(sessions.c.patient_id == patient_id)
        if bed_id is not None:
            conds.append(sessions.c.bed_id == bed_id)
        if open_only is True:
            conds.append(sessions.c.ended_at.is_(None))
        elif open_only is False:
            conds.append(sessions.c.ended_at.is_not(None))
        if patient_label is not None:
            conds.append(sessions.c.patient_label == patient_label)
        stmt = (
            select(sessions)
            .where(and_(true(), *conds))
            .order_by(sessions.c.opened_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [as_session_row(r) for r in (await conn.execute(stmt)).all()]

    async def session_events(self, session_id: int) -> list[SessionEventRow]:
        stmt = (
            select(session_events)
            .where(session_events.c.session_id == session_id)
            .order_by(session_events.c.id)
        )
        async with self.engine.connect() as conn:
            return [as_session_event_row(r) for r in (await conn.execute(stmt)).all()]

    async def add_session_event(
        self,
        session_id: int,
        *,
        expected_version: int,
        event_type: str,
        at: float,
        now: float,
        by: str | None,
        data: dict[str, Any] | None,
        new_phase: str,
        baseline: dict[str, float] | None = None,
        audit: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> int | None:
        """Store one session event if the session is still at ``expected_version`` (the
        version its checks read), bumping the version; ``audit`` adds entries (action,
        detail) in the same transaction, such as a protocol override and its reason.

        The id of the stored event, or None (nothing stored) when another change got in
        since that read: the caller judges again from a fresh read."""
        values: dict[str, Any] = {"phase": new_phase, "version": sessions.c.version + 1}
        if new_phase == "ended":
            values["ended_at"] = at
            values["open_bed"] = None
        if baseline is not None:
            values["baseline"] = baseline
        try:
            async with self.engine.begin() as conn:
                # The guard first: it takes the session row's write lock (the database's on
                # SQLite), so a concurrent writer waits for this one and then matches nothing.
                await self._bump(conn, session_id, expected_version, values)
                res = await conn.execute(
                    session_events.insert().values(
                        session_id=session_id,
                        type=event_type,
                        at=at,
                        recorded_at=now,
                        by=by,
                        data=data,
                    )
                )
                event_id = int(res.inserted_primary_key[0])  # type: ignore[index]
                await audit_in(
                    conn,
                    f"session_{event_type}",
                    at=now,
                    actor=by,
                    target=str(session_id),
                    session_id=session_id,
                    detail=data,
                )
                for action, detail in audit:
                    await audit_in(
                        conn,
                        action,
                        at=now,
                        actor=by,
                        target=str(session_id),
                        session_id=session_id,
                        detail=detail,
                    )
        except _Stale:
            return None
        return event_id

    async def set_limit_overrides(
        self,
        session_id: int,
        overrides: dict[str, Any],
        *,
        expected_version: int,
        now: float,
        by: str | None,
        reason: str | None = None,
    ) -> bool:
        """Set the session's limit overrides if it is still at ``expected_version``, audited;
        False (nothing changed) when another change got in since the caller's read."""
        values = {"limit_overrides": overrides, "version": sessions.c.version + 1}
        try:
            async with self.engine.begin() as conn:
                await self._bump(conn, session_id, expected_version, values)
                await audit_in(
                    conn,
                    "limits_change",
                    at=now,
                    actor=by,
                    target=str(session_id),
                    session_id=session_id,
                    detail={"overrides": overrides, "reason": reason},
                )
        except _Stale:
            return False
        return True

    async def _bump(
        self,
        conn: AsyncConnection,
        session_id: int,
        expected_version: int,
        values: dict[str, Any],
    ) -> None:
        """The optimistic guard in SQL: update the session only at the version read, else
        raise _Stale so that the transaction rolls back."""
        res = await conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.version == expected_version)
            .values(**values)
        )
        if res.rowcount != 1:
            raise _Stale
