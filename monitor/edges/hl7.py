"""The HL7 listener's link to ingest: PCD-01 readings go the same way as websocket ones."""

from __future__ import annotations

import asyncio

from monitor.core.errors import Unavailable
from monitor.core.model import Reading
from monitor.edges.mllp import (
    StorageError,
    StoreCallback,
    UnknownDeviceError,
    make_handler,
    serve_mllp,
)
from monitor.pipeline.health import Stage
from monitor.pipeline.service import Monitor
from monitor.wire.pcd01 import Hl7Error, Hl7ErrorCode, Pcd01Result


def _conflict_error(
    conflicts: list[tuple[Reading, dict[str, float]]], *, stored_rest: bool
) -> Hl7Error:
    reading, held = conflicts[0]
    detail = (
        f"{len(conflicts)} reading(s) of this message have the time and signals of a stored "
        f"reading with other values (first: seq {reading.seq}, stored {held}, sent "
        f"{dict(reading.values)}); send a correction (OBX-11 C) to replace a value"
    )
    if stored_rest:
        detail += "; the message's other readings were stored"
    return Hl7Error(Hl7ErrorCode.SEQ_CONFLICT, detail)


def store_callback(monitor: Monitor) -> StoreCallback:
    async def store(result: Pcd01Result) -> None:
        dev = await monitor.store.device(result.device_name)
        if dev is None or dev.revoked:
            raise UnknownDeviceError(f"device {result.device_name!r} is not registered to a bed")
        if monitor.bindings.current(dev.id) != dev.bed_id:
            # Not loaded yet, or bound elsewhere since (say by the CLI): one query, then
            # each reading goes to the bed of its own measurement time (monitor.core.bindings).
            await monitor.load_bindings(dev.id)
        await monitor.device_seen(dev.bed_id, dev.id)
        now = monitor.clock()
        readings = [
            monitor.make_reading(
                device_id=dev.id,
                bed_id=dev.bed_id,
                seq=r.seq,
                ts=r.ts,
                values=r.values,
                source=r.source,  # ingest names a cuff reading's source (Ingest.reading)
                received_at=now,
            )
            for r in result.readings
        ]
        plain = [r for r in readings if r.seq not in result.corrections]
        try:
            # The seq of an HL7 reading is derived from its time and signals, so a different
            # reading may map to a stored key: refuse it (nothing stored) rather than ack a
            # reading the store would keep out as a "resend".
            conflicts = await monitor.store.conflicting(plain)
            if conflicts:
                raise _conflict_error(conflicts, stored_rest=False)
            futures = [monitor.submit(r, correction=r.seq in result.corrections) for r in readings]
            # AA only once every reading of the message is durable.
            await asyncio.gather(*futures)
            # Another message may have taken a key between the check and the write.
            conflicts = await monitor.store.conflicting(plain)
        except Unavailable as e:
            raise StorageError(str(e)) from None
        if conflicts:
            raise _conflict_error(conflicts, stored_rest=len(conflicts) < len(readings))

    return store


async def start_hl7(monitor: Monitor, host: str, port: int) -> asyncio.Server:
    server = await serve_mllp(
        host,
        port,
        make_handler(store_callback(monitor), clock=monitor.clock),
        idle_timeout=monitor.settings.device_idle_timeout_s,
    )
    # A listener that stopped serving is a failing stage: gateways' messages go nowhere.
    monitor.health.use(
        Stage.HL7, lambda now: None if server.is_serving() else "the HL7 listener is closed"
    )
    return server
