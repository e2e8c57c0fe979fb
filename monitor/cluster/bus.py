"""The Redis bus of one instance (rule 2 of monitor.cluster): a publisher that writes what is
queued for the other instances, in batches, with the devices' last-seen times; a listener on
the shared channel and this instance's own command channel, which notices when events may
have been missed (either way) so panels can reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.cluster.codec import Keys, Message, Resync, decode, encode
from monitor.cluster.port import Port

log = logging.getLogger("vigil.cluster")

SEEN_EVERY_S: Final = 1.0
QUEUE_MAX: Final = 100_000
BATCH_MAX: Final = 1000

# (on the shared bus, sender, message): a command or reply comes on this instance's channel.
OnMessage = Callable[[bool, str, Message], Awaitable[None]]


class Bus:
    def __init__(
        self,
        instance_id: str,
        keys: Keys,
        client: aioredis.Redis,
        port: Port,
        *,
        on_message: OnMessage,
        on_gap: Callable[[], Awaitable[None]],
    ) -> None:
        self.id = instance_id
        self.keys = keys
        self.redis = client
        self.port = port
        self._on_message = on_message
        self._on_gap = on_gap
        self._out: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._seen_pending: dict[str, float] = {}
        self._missed_in = False  # our subscription broke: our panels may have missed events
        self._missed_out = False  # publishing failed: the other panels may have missed ours
        self.closed = False  # stopping: nothing more is queued

    @property
    def empty(self) -> bool:
        return self._out.empty()

    def send(self, message: Message, channel: str | None = None) -> None:
        """Queue a message for the shared bus (or ``channel``); never waits."""
        if self.closed:
            return
        try:
            self._out.put_nowait((channel or self.keys.bus, encode(self.id, message)))
        except asyncio.QueueFull:
            log.error("Redis bus backlog full: dropping a %s message", message.kind)
            self.port.redis_failed(asyncio.QueueFull())

    async def publish_now(self, channel: str, message: Message) -> None:
        """Publish at once (a command: its caller waits on the answer); raises RedisError."""
        await self.redis.publish(channel, encode(self.id, message))

    def note_seen(self, device_id: str, at: float) -> None:
        """A device's last sign of life, written to the seen hash with the next batch."""
        self._seen_pending[device_id] = at

    async def publisher(self) -> None:
        while True:
            batch: list[tuple[str, str]] = []
            with contextlib.suppress(TimeoutError):
                # Wakes at least every second to write the devices' last-seen times.
                batch.append(await asyncio.wait_for(self._out.get(), SEEN_EVERY_S))
            while not self._out.empty() and len(batch) < BATCH_MAX:
                batch.append(self._out.get_nowait())
            seen, self._seen_pending = self._seen_pending, {}
            if not batch and not seen:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for channel, msg in batch:
                    pipe.publish(channel, msg)
                if seen:
                    pipe.hset(self.keys.seen, mapping={k: repr(v) for k, v in seen.items()})
                await pipe.execute()
            except RedisError as e:
                self._missed_out = True
                self.port.redis_failed(e)
                log.error("publishing %d messages to Redis failed: %s", len(batch), e)
                continue
            self.port.redis_ok()
            if self._missed_out:
                # The other instances' panels missed some of ours: tell them to reload.
                self._missed_out = False
                self.send(Resync())

    async def listener(self, ready: asyncio.Event) -> None:
        own = self.keys.commands(self.id)
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.bus, own)
                if self._missed_in:
                    self._missed_in = False
                    await self._on_gap()
                ready.set()
                self.port.redis_ok()
                while True:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is None:
                        continue
                    try:
                        sender, message = decode(msg["data"])
                        await self._on_message(msg["channel"] == self.keys.bus, sender, message)
                    except Exception:
                        log.exception("handling a bus message failed")
            except (RedisError, OSError) as e:
                self._missed_in = True
                self.port.redis_failed(e)
                log.error("Redis bus subscription lost (%s); retrying", e)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
