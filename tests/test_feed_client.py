"""A panel's backlog in the hub (monitor/pipeline/hub.py; docs/reliability.md, "Laggard panels
are dropped, not waited for"): its sender gets messages in order, wakes for a message, a drop
or a stop, and a full backlog drops the panel instead of growing."""

from __future__ import annotations

import asyncio

from monitor.pipeline.hub import FeedClient, Hub


def test_the_sender_wakes_for_a_message_then_for_a_drop_and_ends() -> None:
    """A waiting sender gets the message queued after it began waiting, in order; a drop
    then ends it even with messages still queued."""

    async def run() -> list[str | None]:
        loop = asyncio.get_running_loop()
        client = FeedClient(10, "panel")
        waiting = asyncio.create_task(client.next(loop))
        await asyncio.sleep(0)
        assert not waiting.done()
        client.put("a")
        client.put("b")
        got = [await waiting, await client.next(loop)]
        client.put("c")
        client.drop("too slow")
        got.append(await client.next(loop))
        return got

    assert asyncio.run(run()) == ["a", "b", None]


def test_a_stop_from_a_finished_task_ends_a_waiting_sender() -> None:
    """The panel going away (its reader task ending) wakes the sender, which returns None."""

    async def run() -> str | None:
        loop = asyncio.get_running_loop()
        client = FeedClient(10, "panel")
        reader = asyncio.create_task(asyncio.sleep(0.01))
        reader.add_done_callback(client.stop)
        return await asyncio.wait_for(client.next(loop), 5)

    assert asyncio.run(run()) is None


def test_a_full_backlog_drops_the_panel_and_the_others_still_get_the_message() -> None:
    """Past its queue's bound a panel is dropped with a reason and forgotten by the hub; the
    message still reaches the panels that keep up."""
    hub = Hub(2)
    slow, fast = hub.register("slow"), hub.register("fast")
    for m in ("1", "2"):
        hub.deliver(m)
    fast.pending.clear()
    hub.deliver("3")
    assert slow.is_dropped and "fell behind" in slow.reason
    assert slow not in hub.clients and hub.dropped_total == 1
    assert list(fast.pending) == ["3"] and not fast.is_dropped
