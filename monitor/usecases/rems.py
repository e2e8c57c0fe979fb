"""Sign and file an esketamine session's REMS monitoring record (docs/course.md; docs/api.md,
"Repeats and races: alarms, REMS and patients"). The routes translate; monitor.clinical.rems (pure)
judges; the store holds the guards.

- Sign is once: the sign-off row's primary key (``rems_records.session_id``) is the guard. Of
  simultaneous signatures one is inserted with its audit entry; the others' INSERT fails on
  the key (on PostgreSQL it waits for the winner's commit first) and they are refused
  ``rems_signed``, as a signature arriving second is. The completeness the signature records
  (``missing``, for the audit) is the one read just before the INSERT.
- File is once: ``UPDATE ... WHERE signed_at IS NOT NULL AND filed_at IS NULL``. A loser
  matches no row and is refused ``rems_filed``; a record not signed is ``rems_not_signed``.
"""

from __future__ import annotations

from typing import Any

from monitor.clinical import rems
from monitor.clinical.rules import ProtocolStatus
from monitor.pipeline.service import Monitor
from monitor.pipeline.views import ProtocolInputs
from monitor.records.store import Conflict, SessionRow


class NoSuchSession(LookupError):
    pass


class Refused(Exception):
    """The record cannot be signed or filed now: ``code`` says why (a 409)."""

    def __init__(self, code: rems.SignRefusal, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.record = record


async def record(monitor: Monitor, row: SessionRow) -> dict[str, Any]:
    """The session's REMS record from the store, built by monitor.clinical.rems (pure)."""
    views = monitor.views
    inputs = await views.protocol_inputs(row, await monitor.store.session_events(row["id"]))
    now = monitor.clock()
    return await record_from(monitor, row, inputs, views.protocol_status(inputs, now), now)


async def record_from(
    monitor: Monitor,
    row: SessionRow,
    inputs: ProtocolInputs,
    status: ProtocolStatus | None,
    now: float,
) -> dict[str, Any]:
    """The record from inputs the caller has loaded already."""
    off = await monitor.store.rems_sign_off(row["id"])
    sign_off = (
        rems.SignOff()
        if off is None
        else rems.SignOff(
            signed_at=off["signed_at"],
            signed_by=off["signed_by"],
            signed_incomplete_reason=off["signed_incomplete_reason"],
            filed_at=off["filed_at"],
            filed_by=off["filed_by"],
        )
    )
    return rems.record(inputs.protocol, row, inputs.events, inputs.readings, status, sign_off, now)


async def _row(monitor: Monitor, session_id: int) -> SessionRow:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise NoSuchSession(session_id)
    return row


def _sign_refused(code: rems.SignRefusal, rec: dict[str, Any]) -> Refused:
    return Refused(code, f"the REMS record cannot be signed ({code.value})", rec)


async def sign(
    monitor: Monitor, session_id: int, *, user: str, role: str, reason: str | None
) -> dict[str, Any]:
    """Sign the record once: the record as signed. Raises NoSuchSession, Refused, and
    rems.SignForbidden (a nurse signing incomplete)."""
    rec = await record(monitor, await _row(monitor, session_id))
    refusal, incomplete = rems.sign_refusal(rec, role, reason)
    if refusal is not None:
        raise _sign_refused(refusal, rec)
    try:
        await monitor.store.sign_rems(
            session_id,
            now=monitor.clock(),
            by=user,
            incomplete_reason=reason if incomplete else None,
            missing=rec["missing"],
        )
    except Conflict:
        # Signed by a simultaneous request: refused as a signature arriving second is.
        raise _sign_refused(rems.SignRefusal.ALREADY_SIGNED, rec) from None
    return await record(monitor, await _row(monitor, session_id))


async def mark_filed(monitor: Monitor, session_id: int, *, user: str) -> dict[str, Any]:
    """Record once that ``user`` filed the signed record: the record as filed. Raises
    NoSuchSession and Refused."""
    rec = await record(monitor, await _row(monitor, session_id))
    refusal = rems.file_refusal(rec)
    if refusal is None and not await monitor.store.file_rems(
        session_id, now=monitor.clock(), by=user
    ):
        refusal = rems.SignRefusal.ALREADY_FILED  # filed by a simultaneous request
    if refusal is not None:
        raise Refused(refusal, f"the REMS record cannot be marked filed ({refusal.value})", rec)
    return await record(monitor, await _row(monitor, session_id))
