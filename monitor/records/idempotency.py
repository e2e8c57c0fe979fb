"""The stored ``Idempotency-Key`` claims (docs/api.md, "Idempotency-Key"): one row per (user,
key), claimed before the request runs and given its answer once it is known.

The claim is an insert guarded by the primary key, so of two requests with one key only one
runs, on either engine; the other finds the claim and waits for its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.records.schema import idempotency_keys

# A claim whose request has not answered yet.
PENDING = 0
# Old keys are swept on one claim in this many: they cost a little space, not a query each.
SWEEP_EVERY = 200


@dataclass(frozen=True, slots=True)
class Claim:
    """A stored claim: the request it was made for, and its answer once known."""

    request: str
    status: int  # PENDING until the first request answered
    body: Any
    created_at: float


class IdempotencyKeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        dialect = pg_dialect if engine.dialect.name == "postgresql" else sqlite_dialect
        self._insert = dialect.insert
        self._claims = 0

    async def claim(
        self, user: str, key: str, request: str, now: float, *, keep_s: float
    ) -> Claim | None:
        """Claim ``key`` for ``request``: None when this call claimed it (run the request),
        else the claim already stored (a repeat, or a request racing this one). Keys older
        than ``keep_s`` are forgotten now and then."""
        self._claims += 1
        if self._claims % SWEEP_EVERY == 0:
            await self.sweep(now - keep_s)
        stmt = (
            self._insert(idempotency_keys)
            .values(user_name=user, key=key, request=request, status=PENDING, created_at=now)
            .on_conflict_do_nothing(index_elements=["user_name", "key"])
            # RETURNING, not rowcount: the row comes back only when this insert made it.
            .returning(idempotency_keys.c.key)
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(stmt)).first() is not None:
                return None
        found = await self.get(user, key)
        # Released between our insert and our read (its request failed): claim it again.
        return (
            found if found is not None else await self.claim(user, key, request, now, keep_s=keep_s)
        )

    async def get(self, user: str, key: str) -> Claim | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        idempotency_keys.c.request,
                        idempotency_keys.c.status,
                        idempotency_keys.c.body,
                        idempotency_keys.c.created_at,
                    ).where(idempotency_keys.c.user_name == user, idempotency_keys.c.key == key)
                )
            ).first()
        return Claim(row.request, row.status, row.body, row.created_at) if row else None

    async def answer(self, user: str, key: str, status: int, body: Any, target: str | None) -> None:
        """Store the first answer, which every repeat with the key gets from now on."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.user_name == user, idempotency_keys.c.key == key)
                .values(status=status, body=body, target=target)
            )

    async def release(self, user: str, key: str) -> None:
        """Drop a claim whose request failed before it changed anything (a 5xx): the key may
        be sent again and is judged anew."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.user_name == user, idempotency_keys.c.key == key
                )
            )

    async def sweep(self, before: float) -> int:
        """Forget keys claimed before ``before``; how many."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
            )
        return int(res.rowcount or 0)
