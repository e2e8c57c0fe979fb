"""Ingest stage, shared by the websocket and HL7 edges: a validated device message becomes a
``Reading`` stamped with its receive time and bed, queued for the writer. The bed is the one
the device was bound to at the reading's device time (monitor.core.bindings, an in-memory lookup),
whenever it arrives. Which session a reading belongs to is not decided here: it follows from
its device time and the sessions' spans in the store (docs/reliability.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from monitor.core.bindings import Bindings
from monitor.core.model import Reading
from monitor.pipeline.alarm_loop import AlarmLoop
from monitor.pipeline.writer import Writer
from monitor.wire.device import is_cuff


class Ingest:
    def __init__(
        self,
        writer: Writer,
        alarms: AlarmLoop,
        clock: Callable[[], float],
        bindings: Bindings | None = None,
    ) -> None:
        self.writer = writer
        self.alarms = alarms
        self.clock = clock
        self.bindings = bindings if bindings is not None else Bindings()

    def reading(
        self,
        *,
        device_id: str,
        bed_id: str,
        seq: int,
        ts: float,
        values: Mapping[str, float],
        source: str | None,
        received_at: float,
    ) -> Reading:
        """``bed_id`` is the device's bed now (the edge's); the reading goes to the bed of its
        binding at ``ts``, that one only where no binding of the device is known for it."""
        return Reading(
            device_id=device_id,
            seq=seq,
            ts=ts,
            received_at=received_at,
            values=values,
            source=source or ("nibp" if is_cuff(values) else None),
            bed_id=self.bindings.bed_at(device_id, ts) or bed_id,
        )

    def submit(self, reading: Reading, *, correction: bool = False) -> asyncio.Future[None]:
        """Queue a reading; the future completes once it is durably stored (then ack it)."""
        return self.writer.submit(reading, correction=correction)

    async def seen(self, bed_id: str, device_id: str) -> None:
        """Any frame or heartbeat: the device is alive (server time)."""
        await self.alarms.device_seen(bed_id, device_id, self.clock())

    async def rejected(self, bed_id: str, device_id: str, code: str) -> None:
        """A frame refused at validation counts toward the device's artefact alarm."""
        self.writer.stats["rejected"] += 1
        await self.alarms.rejected(bed_id, device_id, code, self.clock())
