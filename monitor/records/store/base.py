"""What every part of the store shares: its engine, the dialect's INSERT, its errors and the
audit entry written inside another change's transaction.

The same statements run on SQLite (aiosqlite, WAL) and PostgreSQL (psycopg). Inputs are
bound parameters only; no SQL is built from strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from monitor.records import migrate
from monitor.records.idempotency import IdempotencyKeys
from monitor.records.schema import audit_log
from monitor.settings import Settings


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An audit entry to store with the change it records (same transaction)."""

    action: str
    actor: str | None
    target: str | None = None
    session_id: int | None = None
    detail: dict[str, Any] | None = None


async def audit_in(
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


class StoreBase:
    """The engine and its dialect; each part of the store (monitor.records.store) builds on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.idempotency = IdempotencyKeys(engine)

    @classmethod
    async def from_settings(cls, settings: Settings) -> Self:
        """The store ``settings`` name, with their SQLite options: how the monitor and its
        commands open it."""
        return await cls.open(
            settings.db,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
        )

    @classmethod
    async def open(
        cls, url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_timeout_s: float = 10.0
    ) -> Self:
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
                cur.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_s * 1000)}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        return (pg_dialect if self.dialect == "postgresql" else sqlite_dialect).insert(table)
