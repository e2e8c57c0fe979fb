"""The cluster's face towards this instance's pipeline: ``Cluster`` is the alarm stage's gate
(monitor.pipeline.gate.Gate: which instance judges a bed) and the fan-out's relay
(monitor.pipeline.fanout.Relay: what the other instances hear), built before the pipeline and given
to it at construction. It hands what the bus brings to the pipeline (``Pipeline``), and runs
the bus, the leases and the command router of this instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis

from monitor.cluster.bus import SEEN_EVERY_S, Bus
from monitor.cluster.codec import (
    Acknowledge,
    AlarmChanged,
    DeviceRebound,
    DeviceRevoked,
    DeviceSeen,
    FrameRejected,
    Keys,
    Message,
    PauseAudio,
    ReadingStored,
    Reply,
    ReplyError,
    Resync,
    SessionChanged,
    UnknownCommand,
)
from monitor.cluster.leases import Leases, RemoteAlarms
from monitor.cluster.port import Pipeline, Port
from monitor.cluster.rpc import Commands, ack_reply, pause_reply
from monitor.core.errors import Unavailable
from monitor.core.model import Alarm, Reading
from monitor.pipeline.gate import Held, Route
from monitor.records.store import Store

log = logging.getLogger("vigil.cluster")

LOOP_S: Final = 1.0
RESYNC_EVERY: Final = 5  # lease rounds between re-reading the other beds' open alarms
READY_TIMEOUT_S: Final = 15.0
FLUSH_TRIES: Final = 50  # a clean stop waits up to 50 x 20 ms for the bus queue to drain


class Cluster:
    """The gate, the relay and the command router of one instance."""

    def __init__(self, instance_id: str, prefix: str, store: Store, client: aioredis.Redis) -> None:
        self.id = instance_id
        self.keys = Keys(prefix)
        self.store = store
        self.redis = client
        self.port = Port()
        self.remote = RemoteAlarms()
        self.bus = Bus(
            instance_id,
            self.keys,
            client,
            self.port,
            on_message=self._heard,
            on_gap=self._after_gap,
        )
        self.leases = Leases(instance_id, self.keys, client, store, self.port, self.remote)
        self.commands = Commands(
            instance_id, self.keys, client, self.bus, self.leases, store, self.port
        )
        self._seen_sent: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lease_task: asyncio.Task[None] | None = None

    # --- the gate (monitor.pipeline.gate.Gate) ---------------------------------------------

    def route(self, bed_id: str) -> Route:
        return self.leases.route(bed_id)

    def hold(self, bed_id: str, item: Held) -> None:
        self.leases.hold(bed_id, item)

    def seen(self, bed_id: str, device_id: str, at: float, *, here: bool) -> None:
        # Throttled: the owner's no-data rule needs one sign of life a second, not every frame.
        last = self._seen_sent.get(device_id)
        self.bus.note_seen(device_id, at)
        if last is not None and at - last < SEEN_EVERY_S:
            return
        self._seen_sent[device_id] = at
        if not here:
            self.bus.send(DeviceSeen(bed_id, device_id, at))

    def artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        self.bus.send(FrameRejected(bed_id, device_id, code, at))

    def remote_alarms(self) -> list[Alarm]:
        return [a for a in self.remote.copies() if self.route(a.bed_id) is not Route.HERE]

    async def acknowledge(
        self, alarm_id: str, user: str, here: Callable[[], Awaitable[Alarm | None]]
    ) -> Alarm | None:
        stored = await self.store.alarm(alarm_id)
        if stored is None or stored.ended_at is not None:
            return None
        reply = await self.commands.call(
            stored.bed_id,
            lambda rid: Acknowledge(rid=rid, alarm_id=alarm_id, user=user),
            lambda: ack_reply(here),
        )
        if reply is not None and reply.error is ReplyError.UNAVAILABLE:
            raise Unavailable("the owner of the bed could not store the acknowledgement")
        return None if reply is None else reply.alarm

    async def pause_audio(
        self,
        bed_id: str,
        seconds: float | None,
        user: str,
        here: Callable[[], Awaitable[list[Alarm]]],
    ) -> list[Alarm]:
        reply = await self.commands.call(
            bed_id,
            lambda rid: PauseAudio(rid=rid, bed_id=bed_id, seconds=seconds, user=user),
            lambda: pause_reply(here),
        )
        if reply is None:
            return []
        if reply.error is ReplyError.VALUE:
            raise ValueError(reply.detail or "invalid pause")
        if reply.error is ReplyError.UNAVAILABLE:
            raise Unavailable("the owner of the bed could not store the audio pause")
        return list(reply.alarms)

    def device_revoked(self, device_id: str) -> None:
        self.bus.send(DeviceRevoked(device_id))

    def device_rebound(self, device_id: str, old_bed: str | None) -> None:
        self.bus.send(DeviceRebound(device_id, old_bed))

    # --- the relay (monitor.pipeline.fanout.Relay) -----------------------------------------------

    def reading(self, reading: Reading) -> None:
        self.bus.send(ReadingStored(reading))
        assert reading.bed_id is not None
        if self.route(reading.bed_id) is Route.AWAY:
            self.leases.claim(reading.bed_id)

    def alarm(self, alarm: Alarm) -> None:
        self.bus.send(AlarmChanged(alarm))

    def session(self, session_id: int, message: str) -> None:
        self.bus.send(SessionChanged(session_id, message))

    # --- what the bus brings --------------------------------------------------------------

    async def _heard(self, on_bus: bool, sender: str, message: Message) -> None:
        if not on_bus:
            if isinstance(message, Reply):
                self.commands.replied(message)
            elif isinstance(message, Acknowledge | PauseAudio | UnknownCommand):
                self.commands.serve(sender, message)
            return
        if sender == self.id:
            return
        p = self.port.pipeline
        match message:
            case AlarmChanged(alarm=alarm):
                p.heard_alarm(alarm)
                if self.route(alarm.bed_id) is Route.AWAY:
                    self.remote.heard(alarm)
            case SessionChanged(session_id=session_id, message=text):
                await p.heard_session(session_id, text)
            case ReadingStored(reading=reading):
                await p.heard_reading(reading)
            case DeviceSeen(bed_id=bed_id, device_id=device_id, at=at):
                await p.heard_seen(bed_id, device_id, at)
            case FrameRejected(bed_id=bed_id, device_id=device_id, code=code, at=at):
                if self.route(bed_id) is not Route.AWAY:
                    await p.heard_artefact(bed_id, device_id, code, at)
            case Resync():
                await self._after_gap()
            case DeviceRevoked(device_id=device_id):
                await p.drop_device(device_id)
            case DeviceRebound(device_id=device_id, old_bed=old_bed):
                await p.device_rebound(device_id, old_bed, relay=False)
            case _:
                pass  # a command or reply on the shared bus: not for us

    async def _after_gap(self) -> None:
        """Events may have been missed: panels reconnect and get a fresh snapshot."""
        await self._resync()
        self.port.pipeline.drop_panels("the feed relay was interrupted; reconnecting")

    async def _resync(self) -> None:
        """Re-read the other beds' open alarms and every open session from the store."""
        alarms = await self.store.alarms(active=True, limit=100_000)
        self.remote.replace(a for a in alarms if self.route(a.bed_id) is Route.AWAY)
        await self.port.pipeline.resync_sessions()

    async def _lease_rounds(self) -> None:
        n = 0
        while True:
            try:
                await self.leases.round()
                if n % RESYNC_EVERY == RESYNC_EVERY - 1:
                    await self._resync()
            except Exception:
                log.exception("lease round failed")
            n += 1
            await asyncio.sleep(LOOP_S)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, pipeline: Pipeline) -> None:
        """Begin serving ``pipeline`` (the one built with this cluster as its gate and relay,
        already started): subscribe, then take leases. Until a lease is taken, every bed is
        judged elsewhere."""
        self.port.attach(pipeline)
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.bus.listener(ready), name="vigil-cluster-listener"),
            asyncio.create_task(self.bus.publisher(), name="vigil-cluster-publisher"),
        ]
        # Subscribed before any lease is taken, so nothing meant for us is missed.
        await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)
        await self._resync()
        self._lease_task = asyncio.create_task(self._lease_rounds(), name="vigil-cluster-leases")
        log.info("cluster instance %s (prefix %s) started", self.id, self.keys.prefix)

    async def stop(self) -> None:
        """Hand every bed over at once (a clean stop need not wait for the leases to expire)."""
        self.leases.closed = True
        self.bus.closed = True  # what is queued already still goes out
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        # Flush what is queued for the bus before letting go of the beds.
        for _ in range(FLUSH_TRIES):
            if self.bus.empty:
                break
            await asyncio.sleep(0.02)
        await self.leases.release_all()
        tasks = [*self._tasks, *self.leases.claim_tasks()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self.redis.delete(self.keys.instance(self.id))
        await self.redis.aclose()


__all__ = ["Cluster"]
