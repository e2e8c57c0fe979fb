"""The feed's opt-in ``batch`` frames (docs/protocol.md, "Panel feed"): what waits for a
panel's sender goes out as one frame, in publication order; a panel that did not ask gets
every message on its own, as before. The app in this process (the feed's semantics, not the
process); the panel relay's side is pinned by the browser tests, whose pages unpack them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websockets

from dashboard.relay import batched
from monitor.wire import feed
from tests.wsclient import Device, feed_until

READINGS = 40


def unpacked(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a frame carries: a batch's, or the frame itself."""
    return list(frame["messages"]) if frame["type"] == "batch" else [frame]


async def _frames_until_seq(ws: Any, device: str, last: int) -> list[dict[str, Any]]:
    """Every frame until the reading ``last`` of ``device`` has come, in or out of a batch."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while last not in _readings(frames, device):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic())))
    return frames


def _readings(frames: list[dict[str, Any]], device: str) -> list[int]:
    inner = [m for f in frames for m in unpacked(f)]
    return [m["seq"] for m in inner if m["type"] == "reading" and m["device_id"] == device]


async def test_a_batching_panel_gets_a_burst_in_few_frames_in_order_and_a_plain_one_each_alone(
    app_factory: Any,
) -> None:
    """A burst of readings reaches a ``?batch=1`` feed whole and in order in fewer frames than
    readings, each frame a ``batch`` of at most BATCH_MAX; a plain feed gets one frame each."""
    srv = app_factory()
    token = srv.add_device("fb-mon", "fb-bed")
    base = f"{srv.ws_url}/ws/feed?token={srv.admin_token}"
    async with (
        websockets.connect(f"{base}&batch=1") as batching,
        websockets.connect(base) as plain,
    ):
        for ws in (batching, plain):
            await feed_until(ws, lambda m: m["type"] == "hello")
        async with Device(srv.ws_url, "fb-mon", token) as dev:
            start = time.time() - READINGS
            # Sent without waiting for acks, so they are committed and published together.
            for seq in range(1, READINGS + 1):
                await dev.send(seq, {"hr": 70 + seq % 5}, ts=start + seq)
            acks = [await dev.recv() for _ in range(READINGS)]
        assert [a["seq"] for a in acks] == list(range(1, READINGS + 1))
        got_batched = await _frames_until_seq(batching, "fb-mon", READINGS)
        got_plain = await _frames_until_seq(plain, "fb-mon", READINGS)
    assert _readings(got_batched, "fb-mon") == list(range(1, READINGS + 1))
    assert _readings(got_plain, "fb-mon") == list(range(1, READINGS + 1))
    batches = [f for f in got_batched if f["type"] == "batch"]
    assert batches, "the burst came one frame a reading"
    assert len(got_batched) < READINGS
    assert all(0 < len(b["messages"]) <= feed.BATCH_MAX and b["v"] == 1 for b in batches)
    assert all(m["type"] != "batch" for b in batches for m in b["messages"])
    assert all(f["type"] != "batch" for f in got_plain)


def test_a_batch_frame_is_its_messages_joined_as_they_were_serialised() -> None:
    """batch_message keeps each message's text: one serialisation per event, for every panel."""
    one, two = feed.ping_message(0.0), feed.bye_message("too slow")
    framed = feed.batch_message([one, two])
    assert json.loads(framed) == {
        "type": "batch",
        "v": 1,
        "messages": [json.loads(one), json.loads(two)],
    }
    assert one in framed and two in framed


def test_the_panel_relay_asks_for_batches_and_keeps_the_feed_urls_own_query() -> None:
    """The relay's upstream URL gains batch=1 once, whatever the configured feed URL holds."""
    assert batched("ws://m:8000/ws/feed") == "ws://m:8000/ws/feed?batch=1"
    assert batched("wss://m/ws/feed?x=1&batch=0") == "wss://m/ws/feed?x=1&batch=1"
