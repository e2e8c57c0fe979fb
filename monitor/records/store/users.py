"""Users and their access tokens (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.core.security import new_token, token_hash
from monitor.records.schema import access_tokens, users
from monitor.records.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    password_hash: str
    disabled: bool


async def _revoke_tokens_of(conn: AsyncConnection, user_id: int) -> int:
    """Delete every access token of the user (so every instance refuses them); how many."""
    res = await conn.execute(access_tokens.delete().where(access_tokens.c.user_id == user_id))
    return int(res.rowcount or 0)


class UserRecords(StoreBase):
    """Users and access tokens."""

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
