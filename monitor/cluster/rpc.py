"""Alarm commands across instances (rule 3 of monitor.cluster): an ack or audio pause runs
where the bed's alarm state lives. The caller's instance sends it to the lease holder's own
channel and waits for the reply; the holder answers ``NOT_OWNER`` if the bed has moved on,
and the caller asks again, taking the bed itself if nobody holds it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.cluster.bus import Bus
from monitor.cluster.codec import (
    Acknowledge,
    Command,
    Keys,
    PauseAudio,
    Reply,
    ReplyError,
)
from monitor.cluster.leases import Leases
from monitor.cluster.port import Port
from monitor.core.model import Alarm
from monitor.pipeline.gate import Route
from monitor.records.store import Store

log = logging.getLogger("vigil.cluster")

COMMAND_TIMEOUT_S: Final = 8.0
REPLY_TIMEOUT_S: Final = 2.0


async def ack_reply(here: Callable[[], Awaitable[Alarm | None]]) -> Reply:
    """Acknowledge on this instance, as a reply."""
    return Reply(alarm=await here())


async def pause_reply(here: Callable[[], Awaitable[list[Alarm]]]) -> Reply:
    """Pause audio on this instance, as a reply (a refused pause: ``VALUE``)."""
    try:
        changed = await here()
    except ValueError as e:
        return Reply(error=ReplyError.VALUE, detail=str(e))
    return Reply(alarms=tuple(changed))


class Commands:
    def __init__(
        self,
        instance_id: str,
        keys: Keys,
        client: aioredis.Redis,
        bus: Bus,
        leases: Leases,
        store: Store,
        port: Port,
    ) -> None:
        self.id = instance_id
        self.keys = keys
        self.redis = client
        self.bus = bus
        self.leases = leases
        self.store = store
        self.port = port
        self._replies: dict[str, asyncio.Future[Reply]] = {}
        self._serving: set[asyncio.Task[None]] = set()

    async def call(
        self,
        bed_id: str,
        command: Callable[[str], Command],
        here: Callable[[], Awaitable[Reply]],
    ) -> Reply | None:
        """Run ``command`` (built for a request id) where the bed's alarm state lives, or
        ``here`` if that is this instance; None if no owner answered in time."""
        op = _op(command(""))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            where = self.leases.route(bed_id)
            if where is Route.HERE:
                return await here()
            if where is Route.HOLD:
                await asyncio.sleep(0.05)
                continue
            try:
                owner = await self.redis.get(self.keys.lease(bed_id))
                if owner is None or owner == self.id:
                    # Nobody holds it (or we did before a restart): take it and answer here.
                    await self.leases.try_acquire(bed_id)
                    continue
                request = command(uuid.uuid4().hex)
                fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
                self._replies[request.rid] = fut
                try:
                    await self.bus.publish_now(self.keys.commands(str(owner)), request)
                    reply = await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
                finally:
                    self._replies.pop(request.rid, None)
                if reply.error is not ReplyError.NOT_OWNER:
                    return reply
            except TimeoutError:
                log.warning("instance owning bed %s did not answer a %s", bed_id, op)
            except RedisError as e:
                self.port.redis_failed(e)
                log.error("sending a command through Redis failed: %s", e)
                await asyncio.sleep(0.5)
        log.error("no instance answered a %s for bed %s", op, bed_id)
        return None

    def replied(self, reply: Reply) -> None:
        fut = self._replies.get(reply.rid or "")
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def serve(self, sender: str, command: Command) -> None:
        """Answer another instance's command, in the background."""
        task = asyncio.get_running_loop().create_task(self._serve(sender, command))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, sender: str, command: Command) -> None:
        bed_id: str | None
        if isinstance(command, Acknowledge):
            stored = await self.store.alarm(command.alarm_id)
            bed_id = stored.bed_id if stored is not None else None
        elif isinstance(command, PauseAudio):
            bed_id = command.bed_id
        else:
            bed_id = None
        reply: Reply
        if bed_id is None or self.leases.route(bed_id) is not Route.HERE:
            reply = Reply(error=ReplyError.NOT_OWNER)
        else:
            p = self.port.pipeline
            try:
                if isinstance(command, Acknowledge):
                    alarm_id, user = command.alarm_id, command.user
                    reply = await ack_reply(lambda: p.acknowledge_here(alarm_id, user))
                elif isinstance(command, PauseAudio):
                    bed, seconds, user = bed_id, command.seconds, command.user
                    reply = await pause_reply(lambda: p.pause_audio_here(bed, seconds, user))
                else:
                    reply = Reply(error=ReplyError.UNKNOWN)
            except Exception as e:  # e.g. the alarm store failed: the caller answers 503
                log.error(
                    "serving a %s for bed %s failed: %s",
                    _op(command),
                    bed_id,
                    type(e).__name__,
                )
                reply = Reply(error=ReplyError.UNAVAILABLE)
        self.bus.send(
            dataclasses.replace(reply, rid=command.rid),
            channel=self.keys.commands(sender),
        )


def _op(command: Command) -> str:
    if isinstance(command, Acknowledge):
        return "ack"
    if isinstance(command, PauseAudio):
        return "pause"
    return command.op


__all__ = ["Commands", "ack_reply", "pause_reply"]
