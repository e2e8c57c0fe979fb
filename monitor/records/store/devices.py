"""Beds, devices and which bed each device was bound to when (docs/reliability.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.core.bindings import Binding
from monitor.core.security import new_token, token_hash
from monitor.records.schema import beds, device_bindings, devices
from monitor.records.store.base import StoreBase
from monitor.records.store.rows import BedRow


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    bed_id: str
    revoked: bool


class DeviceRecords(StoreBase):
    """Beds and devices: registration, tokens, the binding history."""

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

    async def list_beds(self) -> list[BedRow]:
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
        return [BedRow(id=b.id, label=b.label, devices=by_bed.get(b.id, [])) for b in bed_rows]
