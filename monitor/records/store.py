"""The store: every read and write of the database, on SQLAlchemy Core's async engine.

The same statements run on SQLite (aiosqlite, WAL) and PostgreSQL (psycopg). Inputs are
bound parameters only; no SQL is built from strings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, event, func, select, true, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from monitor.clinical import session as session_model
from monitor.core.bindings import Binding
from monitor.core.model import Alarm, AlarmKind, AlarmState, Direction, Priority, Reading
from monitor.core.security import new_token, token_hash
from monitor.records import migrate
from monitor.records.idempotency import IdempotencyKeys
from monitor.records.schema import (
    SIGNAL_COLUMNS,
    access_tokens,
    alarms,
    audit_log,
    beds,
    device_bindings,
    devices,
    heartbeats,
    readings,
    rems_records,
    retention_marks,
    session_events,
    sessions,
    users,
)


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


class _Stale(Exception):
    """A guarded write found the row changed: raised inside the transaction to roll it back."""


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An audit entry to store with the change it records (same transaction)."""

    action: str
    actor: str | None
    target: str | None = None
    session_id: int | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    bed_id: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    password_hash: str
    disabled: bool


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


async def _audit_in(
    conn: AsyncConnection,
    action: str,
    *,
    at: float,
    actor: str | None,
    target: str | None = None,
    session_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit entry inside the caller's transaction, so it stands or falls with the
    change it records."""
    await conn.execute(
        audit_log.insert().values(
            at=at,
            actor=actor,
            action=action,
            target=target,
            session_id=session_id,
            detail=detail,
        )
    )


async def _revoke_tokens_of(conn: AsyncConnection, user_id: int) -> int:
    """Delete every access token of the user (so every instance refuses them); how many."""
    res = await conn.execute(access_tokens.delete().where(access_tokens.c.user_id == user_id))
    return int(res.rowcount or 0)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.idempotency = IdempotencyKeys(engine)

    @classmethod
    async def open(cls, url: str, *, sqlite_synchronous: str = "FULL") -> Store:
        await asyncio.to_thread(migrate.upgrade, url)
        engine = create_async_engine(
            migrate.async_url(url), pool_pre_ping=not url.startswith("sqlite")
        )
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed (and so acknowledged) reading survives power loss too.
                cur.execute(
                    f"PRAGMA synchronous={'FULL' if sqlite_synchronous == 'FULL' else 'NORMAL'}"
                )
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        return (pg_dialect if self.dialect == "postgresql" else sqlite_dialect).insert(table)

    # --- beds and devices -------------------------------------------------------------

    async def ensure_bed(self, conn: AsyncConnection, bed_id: str, now: float) -> None:
        await conn.execute(
            self._insert(beds)
            .values(id=bed_id, label=bed_id, created_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def add_device(self, device_id: str, bed_id: str, now: float) -> str:
        """Bind a device to a bed (creating the bed) and issue a fresh token; returns it once.

        The binding history changes in the same transaction (docs/reliability.md, "A reading
        belongs to the bed ..."): a device's first binding holds from the earliest time on
        (0.0), so whatever it measured before it was registered is its first bed's; binding
        it to another bed ends the binding in force at ``now`` and opens one from ``now``
        (never before the start of the binding it ends, should a concurrent rebinding have
        committed a later one); binding it to the bed it is on changes nothing.
        """
        token = new_token()
        async with self.engine.begin() as conn:
            await self.ensure_bed(conn, bed_id, now)
            # The device's row first: it holds the write lock (SQLite) or the device's row
            # (PostgreSQL) until commit, so a concurrent binding of the same device waits
            # here and then reads the bindings this one leaves, never the ones before it.
            await conn.execute(
                self._insert(devices)
                .values(id=device_id, bed_id=bed_id, token_hash=token_hash(token), created_at=now)
                .on_conflict_do_update(
                    index_elements=["id"],
                    set_={"bed_id": bed_id, "token_hash": token_hash(token), "revoked_at": None},
                )
            )
            last = (
                await conn.execute(
                    select(device_bindings.c.id, device_bindings.c.bed_id)
                    .add_columns(device_bindings.c.since, device_bindings.c.until)
                    .where(device_bindings.c.device_id == device_id)
                    .order_by(device_bindings.c.since.desc(), device_bindings.c.id.desc())
                    .limit(1)
                )
            ).first()
            if last is None:
                since: float | None = 0.0  # the first binding: all earlier time is this bed's
            elif last.until is not None:
                since = max(now, last.until)
            elif last.bed_id == bed_id:
                since = None  # bound here already
            else:
                # Never before the binding it ends: a rebinding whose clock was read before
                # a concurrent one committed still leaves the history in order.
                since = max(now, last.since)
                await conn.execute(
                    update(device_bindings)
                    .where(device_bindings.c.id == last.id)
                    .values(until=since)
                )
            if since is not None:
                await conn.execute(
                    device_bindings.insert().values(
                        device_id=device_id, bed_id=bed_id, since=since, until=None
                    )
                )
        return token

    async def bindings(self, device_id: str) -> list[Binding]:
        """The device's bindings, oldest first (monitor.core.bindings)."""
        stmt = (
            select(device_bindings.c.bed_id, device_bindings.c.since, device_bindings.c.until)
            .where(device_bindings.c.device_id == device_id)
            .order_by(device_bindings.c.since, device_bindings.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [Binding(bed_id=r.bed_id, since=r.since, until=r.until) for r in rows]

    async def revoke_device(self, device_id: str, now: float) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(devices)
                .where(devices.c.id == device_id, devices.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(res.rowcount)

    async def device_by_token(self, token: str) -> DeviceRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(devices.c.id, devices.c.bed_id, devices.c.revoked_at).where(
                        devices.c.token_hash == token_hash(token)
                    )
                )
            ).first()
        if row is None:
            return None
        return DeviceRow(id=row.id, bed_id=row.bed_id, revoked=row.revoked_at is not None)

    async def device(self, device_id: str) -> DeviceRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(devices.c.id, devices.c.bed_id, devices.c.revoked_at).where(
                        devices.c.id == device_id
                    )
                )
            ).first()
        if row is None:
            return None
        return DeviceRow(id=row.id, bed_id=row.bed_id, revoked=row.revoked_at is not None)

    async def bed_exists(self, bed_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(beds.c.id).where(beds.c.id == bed_id))).first()
        return row is not None

    async def list_beds(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            bed_rows = (await conn.execute(select(beds).order_by(beds.c.id))).all()
            dev_rows = (
                await conn.execute(
                    select(devices.c.id, devices.c.bed_id)
                    .where(devices.c.revoked_at.is_(None))
                    .order_by(devices.c.id)
                )
            ).all()
        by_bed: dict[str, list[str]] = {}
        for d in dev_rows:
            by_bed.setdefault(d.bed_id, []).append(d.id)
        return [{"id": b.id, "label": b.label, "devices": by_bed.get(b.id, [])} for b in bed_rows]

    # --- users and access tokens ------------------------------------------------------

    async def add_user(self, name: str, role: str, password_hash: str, now: float) -> int:
        async with self.engine.begin() as conn:
            existing = (await conn.execute(select(users.c.id).where(users.c.name == name))).first()
            if existing is not None:
                await conn.execute(
                    update(users)
                    .where(users.c.id == existing.id)
                    .values(role=role, password_hash=password_hash, disabled=False)
                )
                return int(existing.id)
            res = await conn.execute(
                users.insert().values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    created_at=now,
                    disabled=False,
                )
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def create_user(self, name: str, role: str, password_hash: str, now: float) -> bool:
        """A new user; False (and nothing changed) when the name is taken."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    users.insert().values(
                        name=name,
                        role=role,
                        password_hash=password_hash,
                        created_at=now,
                        disabled=False,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def reset_user(self, name: str, role: str, password_hash: str) -> int | None:
        """New password and role for an existing user, enabled again, every token of theirs
        revoked (in one transaction); None when there is no such user, else tokens revoked."""
        async with self.engine.begin() as conn:
            user_id = await conn.scalar(select(users.c.id).where(users.c.name == name))
            if user_id is None:
                return None
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(role=role, password_hash=password_hash, disabled=False)
            )
            return await _revoke_tokens_of(conn, user_id)

    async def set_user_disabled(self, name: str, disabled: bool) -> int | None:
        """Disable (revoking every token) or enable a user; None when there is no such user,
        else the number of tokens revoked."""
        async with self.engine.begin() as conn:
            user_id = await conn.scalar(select(users.c.id).where(users.c.name == name))
            if user_id is None:
                return None
            await conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
            return await _revoke_tokens_of(conn, user_id) if disabled else 0

    async def revoke_access_token(self, token: str) -> bool:
        """Logout: the token is gone from storage, so every instance refuses it from now on."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                access_tokens.delete().where(access_tokens.c.token_hash == token_hash(token))
            )
        return bool(res.rowcount)

    async def user_by_name(self, name: str) -> UserRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        if row is None:
            return None
        return UserRow(row.id, row.name, row.role, row.password_hash, bool(row.disabled))

    async def create_access_token(self, user_id: int, now: float, ttl_s: float) -> str:
        token = new_token()
        async with self.engine.begin() as conn:
            await conn.execute(
                access_tokens.insert().values(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )
            # Expired tokens are useless; sweeping them here keeps the table small.
            await conn.execute(access_tokens.delete().where(access_tokens.c.expires_at < now))
        return token

    async def user_by_access_token(self, token: str, now: float) -> UserRow | None:
        held = await self.access_token_login(token, now)
        return None if held is None else held[0]

    async def access_token_login(self, token: str, now: float) -> tuple[UserRow, float] | None:
        """The enabled user a live token belongs to, and when the token expires."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(users, access_tokens.c.expires_at)
                    .join(access_tokens, access_tokens.c.user_id == users.c.id)
                    .where(
                        access_tokens.c.token_hash == token_hash(token),
                        access_tokens.c.expires_at > now,
                    )
                )
            ).first()
        if row is None or row.disabled:
            return None
        user = UserRow(row.id, row.name, row.role, row.password_hash, bool(row.disabled))
        return user, float(row.expires_at)

    # --- readings -----------------------------------------------------------------------

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
            marks = await self._retention_marks(conn, {r.device_id for r in (*batch, *corrections)})
            out: set[tuple[str, int]] = set()
            fresh = [r for r in batch if r.seq > marks.get(r.device_id, -1)]
            if fresh:
                stmt = (
                    self._insert(readings)
                    .on_conflict_do_nothing(index_elements=["device_id", "seq"])
                    .returning(readings.c.device_id, readings.c.seq)
                )
                res = await conn.execute(stmt, [_reading_row(r) for r in fresh])
                out.update((d, q) for d, q in res.all())
            for r in corrections:
                if await self._apply_correction(conn, r, marks.get(r.device_id, -1)):
                    out.add((r.device_id, r.seq))
            return out

    async def _retention_marks(self, conn: AsyncConnection, device_ids: set[str]) -> dict[str, int]:
        if not device_ids:
            return {}
        rows = await conn.execute(
            select(retention_marks.c.device_id, retention_marks.c.swept_seq).where(
                retention_marks.c.device_id.in_(sorted(device_ids))
            )
        )
        return {d: int(q) for d, q in rows.all()}

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
        """Each device's newest receive time, to restart the no-data clock after a restart."""
        stmt = select(readings.c.device_id, func.max(readings.c.received_at)).group_by(
            readings.c.device_id
        )
        async with self.engine.connect() as conn:
            return {d: t for d, t in (await conn.execute(stmt)).all()}

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

    # --- sessions -----------------------------------------------------------------------

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
            await _audit_in(
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

    async def session_row(self, session_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
        return dict(row._mapping) if row is not None else None

    async def session_rows(
        self,
        *,
        bed_id: str | None = None,
        open_only: bool | None = None,
        patient_label: str | None = None,
        patient_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
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
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]

    async def course_rows(self, patient_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """A patient's sessions, oldest first (docs/course.md): the order that numbers them."""
        stmt = (
            select(sessions)
            .where(sessions.c.patient_id == patient_id)
            .order_by(sessions.c.opened_at, sessions.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]

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
                await _audit_in(
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
            await _audit_in(
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

    async def rems_sign_off(self, session_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(rems_records).where(rems_records.c.session_id == session_id)
                )
            ).first()
        return dict(row._mapping) if row is not None else None

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
            await _audit_in(
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
            await _audit_in(
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
    ) -> list[dict[str, Any]]:
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
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]

    async def session_events(self, session_id: int) -> list[dict[str, Any]]:
        stmt = (
            select(session_events)
            .where(session_events.c.session_id == session_id)
            .order_by(session_events.c.id)
        )
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]

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
                await _audit_in(
                    conn,
                    f"session_{event_type}",
                    at=now,
                    actor=by,
                    target=str(session_id),
                    session_id=session_id,
                    detail=data,
                )
                for action, detail in audit:
                    await _audit_in(
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
                await _audit_in(
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

    # --- alarms -------------------------------------------------------------------------

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
            await _audit_in(
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

    # --- audit --------------------------------------------------------------------------

    async def audit(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        session_id: int | None = None,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        async with self.engine.begin() as conn:
            await _audit_in(
                conn,
                action,
                at=time.time() if now is None else now,
                actor=actor,
                target=target,
                session_id=session_id,
                detail=detail,
            )

    async def audit_entries(
        self, *, session_id: int | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        conds = []
        if session_id is not None:
            conds.append(audit_log.c.session_id == session_id)
        if since is not None:
            conds.append(audit_log.c.at >= since)
        stmt = select(audit_log).where(and_(true(), *conds)).order_by(audit_log.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
