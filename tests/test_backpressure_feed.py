"""Backpressure (docs/reliability.md): a panel that stops reading must not slow
ingest or the other panels. Each panel has a bounded queue; the laggard is dropped with a
reason instead."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import statistics
import time
from typing import Any

import orjson
import websockets

from monitor.wire.device import encode_reading
from tests.conftest import MonitorProcess

# Readings in flight, as a device catching up after an outage would send. A commit batch
# publishes up to this many feed messages at once, so the queue must hold several windows.
WINDOW = 10
PHASE_READINGS = 1500  # more than the feed queue below holds
# The close frame the laggard must get: opcode 8, a payload length, code 1013.
CLOSE_1013 = re.compile(rb"\x88.\x03\xf5", re.DOTALL)


def _stalled_panel(port: int, token: str) -> socket.socket:
    """A feed client that completes the handshake and then never reads again."""
    sock = socket.socket()
    # A small receive window, so the monitor's side fills up after little traffic.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /ws/feed?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def _ingest(ws_url: str, device: str, token: str, seqs: range) -> list[float]:
    """Send readings WINDOW at a time in flight; return each one's send-to-ack latency."""
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    ts = time.time() - 3600
    async with websockets.connect(f"{ws_url}/ws/device?token={token}") as ws:
        it = iter(seqs)
        done = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                msg = orjson.loads(raw)
                assert msg["type"] == "ack", msg
                latencies.append(time.perf_counter() - sent_at.pop(msg["seq"]))
                if len(latencies) == len(seqs):
                    done.set()
                    return
                await send_next()

        async def send_next() -> None:
            seq = next(it, None)
            if seq is not None:
                sent_at[seq] = time.perf_counter()
                await ws.send(encode_reading(device, seq, ts + seq * 0.01, {"hr": 70}))

        task = asyncio.create_task(reader())
        for _ in range(WINDOW):
            await send_next()
        await asyncio.wait_for(done.wait(), 60)
        await task
    return latencies


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


async def test_stalled_panel_is_dropped_without_slowing_ingest_or_other_panels(
    server_factory: Any,
) -> None:
    """With a panel that never reads: ack p95 stays near the unstalled p95, a live panel gets
    every reading, the stalled one is dropped (bye / 1013) and the drop is logged."""
    s: MonitorProcess = server_factory(
        env={
            "VIGIL_FEED_QUEUE_MAX": "1000",
            # This test floods on purpose: the rate limit is not its subject.
            "VIGIL_DEVICE_RATE_PER_S": "100000",
            "VIGIL_DEVICE_RATE_BURST": "100000",
        }
    )
    token = s.add_device("bp-mon", "bp-bed")
    seen: list[int] = []
    all_seen = asyncio.Event()

    async with websockets.connect(f"{s.ws_url}/ws/feed?token={s.admin_token}") as live:

        async def watch() -> None:
            async for raw in live:
                msg = orjson.loads(raw)
                if msg["type"] == "reading" and msg["device_id"] == "bp-mon":
                    seen.append(msg["seq"])
                    if len(seen) == 2 * PHASE_READINGS:
                        all_seen.set()

        watcher = asyncio.create_task(watch())
        baseline = await _ingest(s.ws_url, "bp-mon", token, range(1, PHASE_READINGS + 1))
        stalled = await asyncio.to_thread(_stalled_panel, s.port, s.admin_token)
        try:
            await asyncio.to_thread(_fill_pipes, s)
            under_stall = await _ingest(
                s.ws_url, "bp-mon", token, range(PHASE_READINGS + 1, 2 * PHASE_READINGS + 1)
            )
            await asyncio.wait_for(all_seen.wait(), 10)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            tail = await asyncio.to_thread(_read_to_end, stalled)
        finally:
            stalled.close()

    # The live panel got every reading, in order, while the other one stalled.
    assert seen == list(range(1, 2 * PHASE_READINGS + 1))
    # Ingest was not held up by the stalled panel (ratio generous: shared CI machines).
    assert _p95(under_stall) <= 4 * _p95(baseline) + 0.001, (_p95(baseline), _p95(under_stall))
    # The stalled panel was dropped with a reason, and the monitor said so.
    log = s.log_text()
    assert "vigil.hub: feed client admin@127.0.0.1 dropped" in log
    assert b'"type":"bye"' in tail and b"fell behind" in tail
    assert CLOSE_1013.search(tail), "no close frame with code 1013"


def _fill_pipes(s: MonitorProcess) -> None:
    """Large session messages (each carries all the session's events) fill the socket
    buffers between the monitor and a panel that does not read, in a fraction of a second."""
    r = s.post("/api/sessions", {"bed": "bp-bed", "patient_label": "BP"})
    assert r.status_code == 201, r.text
    for i in range(60):
        # A note is at most 2,000 characters (docs/api.md).
        event = {"type": "observation", "data": {"note": f"{i} " + "n" * 1900}}
        assert s.post(f"/api/sessions/{r.json()['id']}/events", event).status_code == 200


def _read_to_end(sock: socket.socket) -> bytes:
    """Start reading at last: what the monitor queued for the laggard, up to its close."""
    sock.settimeout(15)
    data = b""
    with contextlib.suppress(OSError):
        while not CLOSE_1013.search(data[-200_000:]) and (chunk := sock.recv(1 << 20)):
            data += chunk
    return data
