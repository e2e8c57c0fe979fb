"""The HL7 listener's link to ingest: PCD-01 readings go the same way as websocket ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from monitor.errors import Unavailable
from monitor.hl7.mllp import (
    StorageError,
    StoreCallback,
    UnknownDeviceError,
    make_handler,
    serve_mllp,
)
from monitor.protocol.device import ReadingMsg, is_cuff
from monitor.service import Monitor


def store_callback(monitor: Monitor) -> StoreCallback:
    async def store(device_name: str, readings: Sequence[ReadingMsg]) -> None:
        dev = await monitor.store.device(device_name)
        if dev is None or dev.revoked:
            raise UnknownDeviceError(f"device {device_name!r} is not registered to a bed")
        await monitor.device_seen(dev.bed_id, dev.id)
        now = monitor.clock()
        futures = [
            monitor.submit(
                monitor.make_reading(
                    device_id=dev.id,
                    bed_id=dev.bed_id,
                    seq=r.seq,
                    ts=r.ts,
                    values=r.values,
                    source=r.source or ("nibp" if is_cuff(r.values) else None),
                    received_at=now,
                )
            )
            for r in readings
        ]
        try:
            # AA only once every reading of the message is durable.
            await asyncio.gather(*futures)
        except Unavailable as e:
            raise StorageError(str(e)) from None

    return store


async def start_hl7(monitor: Monitor, host: str, port: int) -> asyncio.Server:
    return await serve_mllp(
        host,
        port,
        make_handler(store_callback(monitor), clock=monitor.clock),
        idle_timeout=monitor.settings.device_idle_timeout_s,
    )
