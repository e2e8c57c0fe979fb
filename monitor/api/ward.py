"""Beds, readings and alarms: what a panel reads, and the alarm commands it sends."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import BaseModel, Field

from monitor.api.deps import CurrentUser, MonitorDep, SessionFilter, StrictRoute
from monitor.model import ID_PATTERN, parse_rfc3339, to_rfc3339
from monitor.protocol.feed import alarm_json

router = APIRouter(tags=["ward"], route_class=StrictRoute)


def parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"{name} must be an RFC 3339 UTC timestamp"
        ) from None


def check_id(value: str | None, name: str) -> None:
    if value is not None and not ID_PATTERN.match(value):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{name} is not a valid id")


@router.get("/api/beds")
async def list_beds(monitor: MonitorDep, user: CurrentUser) -> list[dict[str, Any]]:
    return await monitor.beds_json()


@router.get("/api/readings")
async def list_readings(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: str | None = None,
    since: str | None = None,
    until: str | None = None,
    session: SessionFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    check_id(bed, "bed")
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


@router.get("/api/alarms")
async def list_alarms(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: str | None = None,
    since: str | None = None,
    active: bool | None = None,
    session: SessionFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    check_id(bed, "bed")
    items = await monitor.store.alarms(
        bed_id=bed, since=parse_time(since, "since"), active=active, session_id=session, limit=limit
    )
    # The engine holds the freshest state of open alarms (e.g. escalation just decided).
    live = {a.id: a for a in monitor.alarms.active(bed)}
    return {"alarms": [alarm_json(live.get(a.id, a)) for a in items]}


@router.post("/api/alarms/{alarm_id}/ack")
async def acknowledge(alarm_id: str, monitor: MonitorDep, user: CurrentUser) -> dict[str, Any]:
    if len(alarm_id) > 200:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alarm")
    alarm = await monitor.acknowledge(alarm_id, user.name)
    if alarm is None:
        stored = await monitor.store.alarm(alarm_id)
        if stored is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alarm")
        if stored.ended_at is not None or stored.acknowledged_at is not None:
            return alarm_json(stored)
        raise HTTPException(status.HTTP_409_CONFLICT, "this alarm cannot be acknowledged now")
    await monitor.store.audit(
        "alarm_ack", actor=user.name, target=alarm_id, session_id=alarm.session_id
    )
    return alarm_json(alarm)


class AudioPause(BaseModel):
    seconds: float | None = Field(default=None, gt=0, le=600)


@router.post("/api/beds/{bed_id}/audio-pause")
async def audio_pause(
    bed_id: str,
    monitor: MonitorDep,
    user: CurrentUser,
    body: Annotated[AudioPause | None, Body()] = None,
) -> dict[str, Any]:
    check_id(bed_id, "bed")
    if bed_id not in {b["id"] for b in await monitor.store.list_beds()}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such bed")
    seconds = body.seconds if body else None
    changed = await monitor.pause_audio(bed_id, seconds)
    session = monitor.caches.open_sessions.get(bed_id)
    await monitor.store.audit(
        "audio_pause",
        actor=user.name,
        target=bed_id,
        session_id=session.id if session else None,
        detail={"seconds": seconds},
    )
    until = max((a.audio_paused_until or 0 for a in changed), default=None)
    return {
        "bed": bed_id,
        "audio_paused_until": to_rfc3339(until) if until else None,
        "alarms": [alarm_json(a) for a in changed],
    }
