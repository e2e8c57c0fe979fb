"""A patient's course of sessions and the REMS sign-off (docs/course.md)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from monitor.records.schema import rems_records, sessions
from monitor.records.store.base import Conflict, StoreBase, audit_in
from monitor.records.store.rows import RemsRow, SessionRow, as_rems_row, as_session_row


class CourseRecords(StoreBase):
    """A patient's sessions in order, merging patients, REMS sign-off."""

    async def course_rows(self, patient_id: str, limit: int = 1000) -> list[SessionRow]:
        """A patient's sessions, oldest first (docs/course.md): the order that numbers them."""
        stmt = (
            select(sessions)
            .where(sessions.c.patient_id == patient_id)
            .order_by(sessions.c.opened_at, sessions.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [as_session_row(r) for r in (await conn.execute(stmt)).all()]

    async def course_number(self, patient_id: str, opened_at: float, session_id: int) -> int:
        """The session's number in its patient's course (1-based, by admission time)."""
        earlier = (sessions.c.opened_at < opened_at) | (
            (sessions.c.opened_at == opened_at) & (sessions.c.id <= session_id)
        )
        stmt = select(func.count()).where(sessions.c.patient_id == patient_id, earlier)
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def merge_patient(self, source: str, target: str, *, now: float, by: str | None) -> int:
        """Move every session of patient ``source`` to ``target`` (a provisional patient into
        the clinic's identifier, docs/course.md), audited; the number of sessions moved.

        One conditional UPDATE is the guard: of two merges at once the second finds no session
        of ``source`` left (PostgreSQL re-checks the WHERE on the rows the first changed) and
        moves none, so it writes no audit entry, as a repeat does."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(sessions)
                .where(sessions.c.patient_id == source)
                .values(patient_id=target, version=sessions.c.version + 1)
            )
            moved = int(res.rowcount or 0)
            if moved:
                await audit_in(
                    conn,
                    "patient_merge",
                    at=now,
                    actor=by,
                    target=target,
                    detail={"from": source, "into": target, "sessions": moved},
                )
        return moved

    async def session_patient(self, session_id: int) -> tuple[str | None, int] | None:
        """A session's patient and version (the optimistic guard of a change), or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.patient_id, sessions.c.version).where(
                        sessions.c.id == session_id
                    )
                )
            ).first()
        return (row.patient_id, int(row.version)) if row is not None else None

    async def set_session_patient(
        self,
        session_id: int,
        patient_id: str,
        *,
        expected_version: int,
        old: str | None,
        now: float,
        by: str | None,
    ) -> bool:
        """Give one session another patient (splitting a provisional patient), audited; False
        when the session is no longer at ``expected_version`` (changed meanwhile). The UPDATE
        comes first in its transaction, so SQLite takes the write lock before any read."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.version == expected_version)
                .values(patient_id=patient_id, version=sessions.c.version + 1)
            )
            if not res.rowcount:
                return False
            await audit_in(
                conn,
                "session_patient",
                at=now,
                actor=by,
                target=str(session_id),
                session_id=session_id,
                detail={"from": old, "into": patient_id},
            )
        return True

    # --- REMS sign-off (docs/course.md) --------------------------------------------------

    async def rems_sign_off(self, session_id: int) -> RemsRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(rems_records).where(rems_records.c.session_id == session_id)
                )
            ).first()
        return as_rems_row(row) if row is not None else None

    async def sign_rems(
        self,
        session_id: int,
        *,
        now: float,
        by: str | None,
        incomplete_reason: str | None,
        missing: Sequence[str],
    ) -> None:
        """Sign once (Conflict when already signed), audited with what was still missing."""
        async with self.engine.begin() as conn:
            try:
                await conn.execute(
                    rems_records.insert().values(
                        session_id=session_id,
                        signed_at=now,
                        signed_by=by,
                        signed_incomplete_reason=incomplete_reason,
                    )
                )
            except IntegrityError:
                raise Conflict("the REMS record is already signed") from None
            await audit_in(
                conn,
                "rems_sign_incomplete" if incomplete_reason else "rems_sign",
                at=now,
                actor=by,
                target=str(session_id),
                session_id=session_id,
                detail={"reason": incomplete_reason, "missing": list(missing)},
            )

    async def file_rems(self, session_id: int, *, now: float, by: str | None) -> bool:
        """Mark a signed record filed, once; False when it was not signed or already filed."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(rems_records)
                .where(
                    rems_records.c.session_id == session_id,
                    rems_records.c.signed_at.is_not(None),
                    rems_records.c.filed_at.is_(None),
                )
                .values(filed_at=now, filed_by=by)
            )
            if not res.rowcount:
                return False
            await audit_in(
                conn,
                "rems_filed",
                at=now,
                actor=by,
                target=str(session_id),
                session_id=session_id,
            )
        return True

    async def rems_pending_rows(
        self, protocols: Sequence[str], limit: int = 500
    ) -> list[SessionRow]:
        """Sessions of these protocols whose REMS record is not both signed and filed,
        oldest first (the first due first)."""
        if not protocols:
            return []
        stmt = (
            select(sessions)
            .select_from(
                sessions.outerjoin(rems_records, rems_records.c.session_id == sessions.c.id)
            )
            .where(
                sessions.c.protocol.in_(list(protocols)),
                rems_records.c.signed_at.is_(None) | rems_records.c.filed_at.is_(None),
            )
            .order_by(sessions.c.opened_at, sessions.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [as_session_row(r) for r in (await conn.execute(stmt)).all()]
