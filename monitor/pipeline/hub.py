"""Fan-out to panels. Each panel has a bounded queue; a panel that falls behind is dropped
with a reason instead of slowing ingest or the other panels. Messages arrive serialised
once; every client gets the same string."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

log = logging.getLogger("vigil.hub")


class FeedClient:
    """One panel's backlog and the one future its sender waits on.

    A message, a drop or a stop wakes the sender through that future: waiting costs one
    future, where a queue getter and a drop event raced in ``asyncio.wait`` cost two tasks
    and a wait a message (and each of those a ``getpid()`` system call on Python 3.11).
    """

    __slots__ = ("pending", "maxsize", "is_dropped", "stopped", "reason", "name", "_waiter")

    def __init__(self, maxsize: int, name: str) -> None:
        self.pending: deque[str] = deque()
        self.maxsize = maxsize
        self.is_dropped = False
        self.stopped = False
        self.reason = ""
        self.name = name
        self._waiter: asyncio.Future[None] | None = None

    def put(self, message: str) -> bool:
        """Queue a message; False (and nothing queued) when the backlog is full."""
        if len(self.pending) >= self.maxsize:
            return False
        self.pending.append(message)
        self._wake()
        return True

    def drop(self, reason: str) -> None:
        if not self.is_dropped:
            self.reason = reason
            self.is_dropped = True
            self._wake()

    def stop(self, *_: object) -> None:
        """The sender is to end (its panel went away, its login ended): usable as a done
        callback of the tasks watching those."""
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take(self, n: int) -> list[str]:
        """Up to ``n`` more of the waiting messages, oldest first (for a batching panel)."""
        pending = self.pending
        return [pending.popleft() for _ in range(min(n, len(pending)))]

    async def next(self, loop: asyncio.AbstractEventLoop) -> str | None:
        """The next message, or None once the client is dropped or stopped."""
        while True:
            if self.is_dropped or self.stopped:
                return None
            if self.pending:
                return self.pending.popleft()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


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
            if client.is_dropped:
                continue
            if not client.put(message):
                self.dropped_total += 1
                log.warning(
                    "feed client %s dropped: fell %d messages behind", client.name, self.queue_max
                )
                client.drop("too slow: the panel fell behind the feed")
                self.clients.discard(client)
