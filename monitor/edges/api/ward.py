"""Beds, readings and alarms: what a panel reads, and the alarm commands it sends."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from monitor.core.errors import ErrorCode
from monitor.core.model import parse_rfc3339, to_rfc3339
from monitor.edges.api import errors
from monitor.edges.api.bodies import ID_REGEX, Timestamp
from monitor.edges.api.deps import CurrentUser, MonitorDep, SessionFilter, StrictRoute
from monitor.edges.api.errors import ApiError
from monitor.edges.api.openapi import links
from monitor.usecases import alarms as alarm_cases
from monitor.wire.feed import alarm_json

router = APIRouter(
    tags=["ward"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)


# Query parameters as they are checked: ids by monitor/core/model.py's pattern, times RFC 3339.
BedFilter = Annotated[str | None, Query(max_length=64, pattern=ID_REGEX)]
TimeFilter = Annotated[Timestamp | None, Query()]


def parse_time(value: str | None, name: str, where: str = "query") -> float | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise errors.invalid(
            [where, name], "must be an RFC 3339 timestamp with a UTC offset", "datetime_parsing"
        ) from None


@router.get("/api/beds", openapi_extra=links("list_beds"))
async def list_beds(monitor: MonitorDep, user: CurrentUser) -> list[dict[str, Any]]:
    return await monitor.beds_json()


@router.get("/api/readings")
async def list_readings(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: BedFilter = None,
    since: TimeFilter = None,
    until: TimeFilter = None,
    session: SessionFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    rows = await monitor.store.readings(
        bed_id=bed,
        session_id=session,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        limit=limit,
    )
    return {
        "readings": [
            {
                "device_id": r.device_id,
                "seq": r.seq,
                "ts": to_rfc3339(r.ts),
                "received_at": to_rfc3339(r.received_at),
                "values": r.values,
                "source": r.source,
                "bed": r.bed_id,
            }
            for r in rows
        ],
        "next_since": to_rfc3339(rows[-1].ts) if len(rows) == limit else None,
    }


@router.get("/api/alarms", openapi_extra=links("list_alarms"))
async def list_alarms(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: BedFilter = None,
    since: TimeFilter = None,
    active: bool | None = None,
    session: SessionFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    items = await monitor.store.alarms(
        bed_id=bed, since=parse_time(since, "since"), active=active, session_id=session, limit=limit
    )
    # The engine holds the freshest state of open alarms (e.g. escalation just decided).
    live = {a.id: a for a in monitor.alarms.active(bed)}
    return {"alarms": [alarm_json(live.get(a.id, a)) for a in items]}


@router.post("/api/alarms/{alarm_id}/ack", responses=errors.responses(404, 409))
async def acknowledge(alarm_id: str, monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    """Acknowledge once; a repeat answers the stored acknowledgement (docs/api.md)."""
    if len(alarm_id) > 200:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such alarm")
    result = await alarm_cases.acknowledge(monitor, alarm_id, user.name)
    if result.outcome is alarm_cases.Ack.NOT_FOUND:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such alarm")
    if result.outcome is alarm_cases.Ack.NOT_ACKNOWLEDGEABLE or result.alarm is None:
        raise ApiError(
            409, ErrorCode.ALARM_NOT_ACKNOWLEDGEABLE, "this alarm cannot be acknowledged now"
        )
    return alarm_json(result.alarm)
