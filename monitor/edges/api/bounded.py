"""Commands whose bodies are bounded by the clinic configuration: per-session limit overrides
and the audio pause. Their routes are made per app, from the configuration the app runs
with (monitor/edges/api/bodies.py), so the bounds in /openapi.json are the engine's bounds."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from monitor import usecases
from monitor.alarms import ClinicConfig
from monitor.core.errors import ErrorCode
from monitor.core.model import to_rfc3339
from monitor.edges.api import bodies, errors
from monitor.edges.api.deps import (
    ChargeUser,
    CurrentUser,
    MonitorDep,
    SessionId,
    StrictRoute,
    actor,
    refused,
)
from monitor.edges.api.errors import ApiError
from monitor.usecases import alarms as alarm_cases
from monitor.usecases.sessions import change_limits
from monitor.wire.feed import alarm_json

BedId = Annotated[str, Path(max_length=64, pattern=bodies.ID_REGEX)]


def router_for(config: ClinicConfig) -> APIRouter:
    router = APIRouter(route_class=StrictRoute, responses=errors.responses(*errors.COMMON))
    LimitsUpdate = bodies.limits_update_model(config)
    AudioPause = bodies.audio_pause_model(config)

    @router.put(
        "/api/sessions/{session_id}/limits",
        tags=["sessions"],
        responses=errors.responses(403, 404, 409),
    )
    async def put_limits(
        session_id: SessionId,
        body: LimitsUpdate,  # type: ignore[valid-type]
        monitor: MonitorDep,
        user: ChargeUser,
    ) -> dict[str, Any]:
        raw = body.overrides.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        try:
            return await change_limits(
                monitor,
                actor(user),
                session_id,
                raw,
                body.reason,  # type: ignore[attr-defined]
            )
        except usecases.Refusal as e:
            raise refused(e) from None

    @router.post("/api/beds/{bed_id}/audio-pause", tags=["ward"], responses=errors.responses(404))
    async def audio_pause(
        bed_id: BedId,
        monitor: MonitorDep,
        user: CurrentUser,
        body: Annotated[AudioPause | None, Body()] = None,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        """Pause the bed's sound; each press re-arms the pause and is audited (docs/api.md)."""
        seconds = body.seconds if body else None  # type: ignore[attr-defined]
        try:
            changed = await alarm_cases.pause_audio(monitor, bed_id, seconds, user.name)
        except alarm_cases.NoSuchBed:
            raise ApiError(404, ErrorCode.NOT_FOUND, "no such bed") from None
        until = max((a.audio_paused_until or 0 for a in changed), default=None)
        return {
            "bed": bed_id,
            "audio_paused_until": to_rfc3339(until) if until else None,
            "alarms": [alarm_json(a) for a in changed],
        }

    return router
