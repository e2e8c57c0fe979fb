"""The audit log: who did what, when (docs/security.md)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, select, true

from monitor.records.schema import audit_log
from monitor.records.store.base import StoreBase, audit_in
from monitor.records.store.rows import AuditRow, as_audit_row


class AuditRecords(StoreBase):
    """Audit entries written on their own and read back."""

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
            await audit_in(
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
    ) -> list[AuditRow]:
        conds = []
        if session_id is not None:
            conds.append(audit_log.c.session_id == session_id)
        if since is not None:
            conds.append(audit_log.c.at >= since)
        stmt = select(audit_log).where(and_(true(), *conds)).order_by(audit_log.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [as_audit_row(r) for r in (await conn.execute(stmt)).all()]
