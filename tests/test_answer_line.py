"""A device connection's answers (monitor/edges/api/ws.py, AnswerLine; docs/protocol.md):
in the order the frames came whatever order commits finish in, an error after the answers
before it, and no more than MAX_IN_FLIGHT unanswered before the socket stops being read."""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.core.errors import Unavailable
from monitor.core.faults import Faults
from monitor.edges.api.ws import MAX_IN_FLIGHT, AnswerLine


class Sent:
    """Where the answers go: the frames a device would read, in order."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def send_text(self, text: str) -> None:
        self.frames.append(text)


class Monitor:
    faults = Faults(None)


async def _until(cond: Any) -> None:
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_acks_go_in_arrival_order_whatever_order_their_commits_finish_in() -> None:
    """A later reading committed first is answered only after the one before it; an error
    frame waits its turn; a reading that could not be stored gets `unavailable`."""
    loop = asyncio.get_running_loop()
    line, ws = AnswerLine(loop), Sent()
    sender = asyncio.create_task(line.send_all(ws, Monitor()))  # type: ignore[arg-type]
    first, second, third = (loop.create_future() for _ in range(3))
    await line.put((1, first))
    await line.put((2, second))
    await line.put('{"type":"error","code":"not_json"}')
    await line.put((3, third))
    second.set_result(None)
    third.set_exception(Unavailable("storage is unavailable"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert ws.frames == [], "an answer went out before the first reading's commit"
    first.set_result(None)
    await line.put(None)
    await asyncio.wait_for(sender, 5)
    assert ws.frames[:3] == [
        '{"type":"ack","seq":1}',
        '{"type":"ack","seq":2}',
        '{"type":"error","code":"not_json"}',
    ]
    assert '"unavailable"' in ws.frames[3] and '"seq":3' in ws.frames[3]
    assert len(ws.frames) == 4


async def test_past_max_in_flight_unanswered_a_put_waits_until_one_is_answered() -> None:
    """The device loop stops reading (its put waits) at MAX_IN_FLIGHT unanswered readings."""
    loop = asyncio.get_running_loop()
    line, ws = AnswerLine(loop), Sent()
    sender = asyncio.create_task(line.send_all(ws, Monitor()))  # type: ignore[arg-type]
    futs = [loop.create_future() for _ in range(MAX_IN_FLIGHT + 1)]
    for seq, fut in enumerate(futs[:MAX_IN_FLIGHT]):
        await line.put((seq, fut))
    blocked = asyncio.create_task(line.put((MAX_IN_FLIGHT, futs[-1])))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done(), "a put past MAX_IN_FLIGHT did not wait"
    futs[0].set_result(None)
    await asyncio.wait_for(blocked, 5)
    await _until(lambda: ws.frames == ['{"type":"ack","seq":0}'])
    sender.cancel()
