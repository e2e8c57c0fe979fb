"""What the cluster may ask of this instance's pipeline: ``Pipeline``, the only way in
(monitor.pipeline.service.Monitor provides it), and ``Port``, through which the cluster's parts reach
it once the cluster has started, and report the Redis stage's health."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from monitor.core.model import Alarm, Reading
from monitor.pipeline.gate import Held


class Pipeline(Protocol):
    """This instance's pipeline, as the cluster sees it; each method named for what it means."""

    async def adopt_bed(
        self,
        bed_id: str,
        *,
        last_seen: Mapping[str, float],
        release: Callable[[], Sequence[Held]],
    ) -> list[Alarm]:
        """Judge the bed here from now on, rebuilt from the record (a takeover)."""
        ...

    def release_bed(self, bed_id: str) -> list[Alarm]:
        """Judge the bed here no more, ending none of its alarms; returns its live ones."""
        ...

    async def acknowledge_here(self, alarm_id: str, user: str) -> Alarm | None: ...

    async def pause_audio_here(
        self, bed_id: str, seconds: float | None, user: str
    ) -> list[Alarm]: ...

    async def heard_reading(self, reading: Reading) -> None: ...

    def heard_alarm(self, alarm: Alarm) -> None: ...

    async def heard_session(self, session_id: int, message: str) -> None: ...

    async def heard_seen(self, bed_id: str, device_id: str, at: float) -> None: ...

    async def heard_artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None: ...

    async def drop_device(self, device_id: str) -> None: ...

    async def device_rebound(
        self, device_id: str, old_bed: str | None, *, relay: bool = True
    ) -> None: ...

    async def resync_sessions(self) -> None: ...

    def drop_panels(self, reason: str) -> None: ...

    def connected_devices(self) -> Collection[str]: ...

    def track_redis(self) -> None: ...

    def redis_ok(self) -> None: ...

    def redis_failed(self, reason: str) -> None: ...


class Port:
    """The pipeline, once the cluster has been started with it."""

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None

    def attach(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        pipeline.track_redis()

    @property
    def attached(self) -> bool:
        return self._pipeline is not None

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "the cluster has not been started"
        return self._pipeline

    def redis_ok(self) -> None:
        if self._pipeline is not None:
            self._pipeline.redis_ok()

    def redis_failed(self, e: BaseException) -> None:
        if self._pipeline is not None:
            self._pipeline.redis_failed(type(e).__name__)
