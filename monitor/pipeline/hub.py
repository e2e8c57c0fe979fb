"""Fan-out to panels. Each panel has a bounded queue; a panel that falls behind is dropped
with a reason instead of slowing ingest or the other panels. Messages arrive serialised
once; every client gets the same string."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("vigil.hub")


class FeedClient:
    __slots__ = ("queue", "dropped", "reason", "name")

    def __init__(self, maxsize: int, name: str) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=maxsize)
        self.dropped = asyncio.Event()
        self.reason = ""
        self.name = name

    def drop(self, reason: str) -> None:
        if not self.dropped.is_set():
            self.reason = reason
            self.dropped.set()


class Hub:
    """Delivery to this instance's panels (monitor.pipeline.fanout decides what is sent)."""

    def __init__(self, queue_max: int) -> None:
        self.queue_max = queue_max
        self.clients: set[FeedClient] = set()
        self.dropped_total = 0

    def register(self, name: str) -> FeedClient:
        client = FeedClient(self.queue_max, name)
        self.clients.add(client)
        return client

    def unregister(self, client: FeedClient) -> None:
        self.clients.discard(client)

    def deliver(self, message: str) -> None:
        for client in tuple(self.clients):
            if client.dropped.is_set():
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped_total += 1
                log.warning(
                    "feed client %s dropped: fell %d messages behind", client.name, self.queue_max
                )
                client.drop("too slow: the panel fell behind the feed")
                self.clients.discard(client)
