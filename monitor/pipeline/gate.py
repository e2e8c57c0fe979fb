"""Which instance judges a bed (``Gate``), and what is held for a bed while this instance
rebuilds it (``Held``): the alarm stage's only view of the other instances (rule 6 of
monitor.pipeline.alarm_loop). Single-instance mode's ``LocalGate`` judges every bed here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from monitor.core.model import Alarm, Reading


class Route(StrEnum):
    HERE = "here"  # this instance judges the bed
    HOLD = "hold"  # this instance is rebuilding the bed: keep what arrives for afterwards
    AWAY = "away"  # another instance judges the bed


@dataclass(frozen=True, slots=True)
class HeldReading:
    reading: Reading


@dataclass(frozen=True, slots=True)
class HeldSeen:
    device_id: str
    at: float


@dataclass(frozen=True, slots=True)
class HeldArtefact:
    device_id: str
    code: str
    at: float


@dataclass(frozen=True, slots=True)
class HeldSession:
    session_id: int


Held = HeldReading | HeldSeen | HeldArtefact | HeldSession


class Gate(Protocol):
    """Which instance judges a bed, and how the others hear of what reached this one.

    The alarm stage asks only this: it never needs to know which gate it was given (a single
    instance's ``LocalGate``, or the multi-instance one the composition root builds)."""

    def route(self, bed_id: str) -> Route: ...

    def hold(self, bed_id: str, item: Held) -> None: ...

    def seen(self, bed_id: str, device_id: str, at: float, *, here: bool) -> None: ...

    def artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None: ...

    def remote_alarms(self) -> list[Alarm]: ...

    async def acknowledge(
        self, alarm_id: str, user: str, here: Callable[[], Awaitable[Alarm | None]]
    ) -> Alarm | None:
        """Acknowledge an alarm this instance does not hold, where its bed is judged;
        ``here`` acknowledges it on this instance (should the bed be judged here after all)."""
        ...

    async def pause_audio(
        self,
        bed_id: str,
        seconds: float | None,
        user: str,
        here: Callable[[], Awaitable[list[Alarm]]],
    ) -> list[Alarm]:
        """Pause a bed's audio where the bed is judged; ``here`` pauses it on this instance."""
        ...

    def device_revoked(self, device_id: str) -> None: ...

    def device_rebound(self, device_id: str, old_bed: str | None) -> None: ...


class LocalGate:
    """Single-instance mode: every bed is judged here, and every command runs here."""

    def route(self, bed_id: str) -> Route:
        return Route.HERE

    def hold(self, bed_id: str, item: Held) -> None:  # pragma: no cover - never held
        raise AssertionError("a local gate never holds a bed")

    def seen(self, bed_id: str, device_id: str, at: float, *, here: bool) -> None:
        return None

    def artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        return None

    def remote_alarms(self) -> list[Alarm]:
        return []

    async def acknowledge(
        self, alarm_id: str, user: str, here: Callable[[], Awaitable[Alarm | None]]
    ) -> Alarm | None:
        return await here()

    async def pause_audio(
        self,
        bed_id: str,
        seconds: float | None,
        user: str,
        here: Callable[[], Awaitable[list[Alarm]]],
    ) -> list[Alarm]:
        return await here()

    def device_revoked(self, device_id: str) -> None:
        return None

    def device_rebound(self, device_id: str, old_bed: str | None) -> None:
        return None
