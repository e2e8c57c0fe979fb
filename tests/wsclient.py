"""A small real websocket device/panel client for tests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websockets

from monitor.wire.device import encode_reading


class Device:
    def __init__(self, ws_url: str, device_id: str, token: str) -> None:
        self.url = f"{ws_url}/ws/device"
        self.device_id = device_id
        self.token = token
        self.ws: Any = None

    async def __aenter__(self) -> Device:
        self.ws = await websockets.connect(
            self.url, additional_headers={"Authorization": f"Bearer {self.token}"}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def send(
        self, seq: int, values: dict[str, float], ts: float | None = None, source: str | None = None
    ) -> None:
        await self.ws.send(
            encode_reading(self.device_id, seq, time.time() if ts is None else ts, values, source)
        )

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))

    async def reading(
        self, seq: int, values: dict[str, float], ts: float | None = None, source: str | None = None
    ) -> dict[str, Any]:
        await self.send(seq, values, ts, source)
        return await self.recv()


async def feed_until(ws: Any, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Read feed messages until one satisfies ``pred``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("feed message did not arrive in time")
        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        if pred(msg):
            return dict(msg)


def measure_after(boundary: float) -> float:
    """The real clock once it is past ``boundary`` by more than the wire's millisecond: a
    device time that stays after a monitor time (shown to the millisecond) once encoded."""
    while (now := time.time()) <= boundary + 0.002:
        pass
    return now


def send_frames(
    ws_url: str,
    device_id: str,
    token: str,
    frames: list[tuple[int, dict[str, float], float, str | None]],
) -> None:
    """Send (seq, values, ts, source) frames from a real device, each acked, then close."""

    async def run() -> None:
        async with Device(ws_url, device_id, token) as dev:
            for seq, values, ts, source in frames:
                ack = await dev.reading(seq, values, ts, source)
                assert ack.get("type") == "ack", ack

    asyncio.run(run())
