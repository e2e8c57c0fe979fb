"""Multi-instance mode: several monitors share PostgreSQL (storage) and Redis (fan-out and
ownership). Started only with ``--redis`` (VIGIL_REDIS_URL); without it nothing here runs.

Rules
-----
1. Every instance accepts devices and panels and stores readings in PostgreSQL; an ack goes to
   the device after the commit, exactly as in single-instance mode.
2. Fan-out. Every reading, alarm change and session change an instance publishes to its own
   panels (monitor.fanout) is also published on one Redis channel (``{prefix}:bus``) as data
   with a named kind (``Kind``), tagged with the instance id; every other instance hands it to
   its panels. A panel therefore sees each event once, whichever instance it is connected to.
   Readings travel as exact data so the owner judges them with the same floats the origin
   stored; receivers rebuild the identical feed text. Nothing is read back out of feed text.
3. Ownership. The alarm state of a bed (all its sessions, devices and alarms) lives in exactly
   one instance: the holder of the Redis lease ``{prefix}:lease:{bed}`` (SET NX PX, renewed
   every second, TTL 6 s). ``Cluster`` is the alarm stage's gate (monitor.alarm_loop.Gate):
   the plain engine judges a bed only where the gate routes it "here"; everything the engine
   needs (readings, device activity, rejected frames, session changes) reaches the owner over
   the bus. Alarm commands (ack, audio pause) are sent to the owner and answered over Redis.
4. Takeover. A lease that is not renewed (owner killed) expires within 6 s; a live instance
   takes it within about 2 s more (at once if one of the bed's devices is connected to it).
   The new owner rebuilds the bed's state from PostgreSQL, not from memory, exactly as a
   restart does (monitor.alarm_loop, rule 3), with the devices' last-seen times from Redis.
   Alarm ids are deterministic (bed, signal, direction, device time), so a replay meets the
   alarms already stored instead of raising them again: no alarm lost, none doubled; a
   backlog stored during the gap is replayed with the rest.
   While a takeover runs, whatever arrives for the bed is held and judged after it.
5. A lease found lost (taken, expired, or renewed too late) releases the bed from the alarm
   stage at once (``AlarmLoop.release_bed``: engine state, checkpoint alarms, watched
   session), without ending its alarms: they belong to the next owner, and a command for
   them that reaches this instance is sent there. If Redis cannot be reached
   the owner keeps judging the beds it holds (a doubled alarm is safer than a lost one) and
   panels are dropped once the bus is back, so they reload a consistent snapshot.
6. Clocks: device time judges physiology as everywhere; technical rules use the owner's clock
   and the ``received_at``/seen times stamped by the receiving instance. Keep the instances'
   clocks in sync (NTP), as for any cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.alarm_loop import Held, Route
from monitor.db.store import Store
from monitor.errors import Unavailable
from monitor.model import Alarm, Reading
from monitor.settings import Settings

log = logging.getLogger("vigil.cluster")

LEASE_TTL_S: Final = 6.0
LOOP_S: Final = 1.0
# A lease counts as held locally only until this long before Redis would let it expire.
SAFETY_S: Final = 1.5
SEEN_EVERY_S: Final = 1.0
RESYNC_EVERY: Final = 5  # loops between re-reading the other beds' open alarms from the store
COMMAND_TIMEOUT_S: Final = 8.0
REPLY_TIMEOUT_S: Final = 2.0
SEP: Final = "\x1f"


class Kind(StrEnum):
    """What a bus message carries (rule 2); commands travel on an instance's own channel."""

    READING = "reading"  # a stored reading, as exact data
    ALARM = "alarm"  # an alarm change, as stored
    SESSION = "session"  # a session changed: its feed message (receivers re-read the row)
    SEEN = "seen"  # a device's last sign of life, for its bed's owner
    ARTEFACT = "artefact"  # a rejected frame, for its bed's owner
    REVOKED = "revoked"  # a device was revoked: close its socket wherever it is
    REBOUND = "rebound"  # a device was bound to another bed: reload its bindings
    RESYNC = "resync"  # the sender's panels may have missed events: reload snapshots
    COMMAND = "command"  # an alarm command for the bed's owner
    REPLY = "reply"  # the owner's answer to a command


# Renew only our own lease; release only our own lease.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _reading_json(r: Reading) -> bytes:
    return orjson.dumps(
        [r.device_id, r.seq, r.ts, r.received_at, dict(r.values), r.source, r.bed_id]
    )


def _reading_from(data: Any) -> Reading:
    dev, seq, ts, received_at, values, source, bed = data
    return Reading(
        device_id=dev,
        seq=int(seq),
        ts=float(ts),
        received_at=float(received_at),
        values=values,
        source=source,
        bed_id=bed,
    )


def _alarm_json(a: Alarm) -> dict[str, Any]:
    return dataclasses.asdict(a)


def _alarm_from(d: Mapping[str, Any]) -> Alarm:
    return Alarm(**d)


class Pipeline(Protocol):
    """What this instance's pipeline (monitor.service.Monitor) offers the cluster: the only
    ways in, each named for what it means. Handed over at ``Cluster.start``."""

    async def adopt_bed(
        self,
        bed_id: str,
        *,
        last_seen: Mapping[str, float],
        release: Callable[[], Sequence[Held]],
    ) -> list[Alarm]: ...

    def release_bed(self, bed_id: str) -> list[Alarm]: ...

    async def acknowledge_here(self, alarm_id: str, user: str) -> Alarm | None: ...

    async def pause_audio_here(
        self, bed_id: str, seconds: float | None, user: str
    ) -> list[Alarm]: ...

    async def heard_reading(self, reading: Reading) -> None: ...

    def heard_alarm(self, alarm: Alarm) -> None: ...

    async def heard_session(self, session_id: int, message: str) -> None: ...

    async def heard_seen(self, bed_id: str, device_id: str, at: float) -> None: ...

    async def heard_artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None: ...

    async def drop_device(self, device_id: str) -> None: ...

    async def device_rebound(
        self, device_id: str, old_bed: str | None, *, relay: bool = True
    ) -> None: ...

    async def resync_sessions(self) -> None: ...

    def drop_panels(self, reason: str) -> None: ...

    def connected_devices(self) -> Collection[str]: ...

    def track_redis(self) -> None: ...

    def redis_ok(self) -> None: ...

    def redis_failed(self, reason: str) -> None: ...


class Cluster:
    """The gate (which instance judges a bed), the relay (what the others hear) and the
    command router of one instance. Built before the pipeline, which is given it as its
    gate and relay; handed the pipeline when it starts."""

    def __init__(self, instance_id: str, prefix: str, store: Store, client: aioredis.Redis) -> None:
        self._pipeline: Pipeline | None = None
        self.store = store
        self.redis = client
        self.id = instance_id
        self.prefix = prefix
        self.bus = f"{self.prefix}:bus"
        self.seen_key = f"{self.prefix}:seen"
        self.owned: dict[str, float] = {}  # bed -> monotonic time our hold on it lapses
        self.taking: dict[str, list[Held]] = {}  # bed -> what arrived while we rebuild it
        self.owners: dict[str, str | None] = {}
        self.mirror: dict[str, Alarm] = {}  # open alarms of beds judged elsewhere
        self._free_before: set[str] = set()
        self._out: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=100_000)
        self._seen_sent: dict[str, float] = {}
        self._seen_pending: dict[str, float] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._missed_in = False  # our subscription broke: our panels may have missed events
        self._missed_out = False  # publishing failed: the other panels may have missed ours
        self._bed_devices: dict[str, list[str]] = {}
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._stopping = False
        self._claims: set[str] = set()
        self._acquiring: set[str] = set()
        self._claim_tasks: set[asyncio.Task[None]] = set()

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "the cluster has not been started"
        return self._pipeline

    def _redis_ok(self) -> None:
        self.pipeline.redis_ok()

    def _redis_failed(self, e: BaseException) -> None:
        if self._pipeline is not None:
            self._pipeline.redis_failed(type(e).__name__)

    # --- the gate (monitor.alarm_loop.Gate) ---------------------------------------------

    def lease_key(self, bed_id: str) -> str:
        return f"{self.prefix}:lease:{bed_id}"

    def cmd_channel(self, instance: str) -> str:
        return f"{self.prefix}:cmd:{instance}"

    def route(self, bed_id: str) -> Route:
        if bed_id in self.taking:
            return Route.HOLD
        until = self.owned.get(bed_id)
        if until is not None and until > time.monotonic():
            return Route.HERE
        return Route.AWAY

    def hold(self, bed_id: str, item: Held) -> None:
        self.taking[bed_id].append(item)

    def seen(self, bed_id: str, device_id: str, at: float, *, here: bool) -> None:
        # Throttled: the owner's no-data rule needs one sign of life a second, not every frame.
        last = self._seen_sent.get(device_id)
        self._seen_pending[device_id] = at
        if last is not None and at - last < SEEN_EVERY_S:
            return
        self._seen_sent[device_id] = at
        if not here:
            self.send(Kind.SEEN, orjson.dumps([bed_id, device_id, at]))

    def artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        self.send(Kind.ARTEFACT, orjson.dumps([bed_id, device_id, code, at]))

    def away(self, bed_id: str) -> None:
        """A reading for a bed judged elsewhere, or by nobody: claim it if nobody holds it (the
        takeover's replay judges that reading too)."""
        if self._pipeline is None or self._stopping:
            return  # not started yet, or handing every bed over
        if self.owners.get(bed_id) is not None or bed_id in self._claims:
            return
        self._claims.add(bed_id)

        async def claim() -> None:
            try:
                await self._try_acquire(bed_id)
            except Exception:
                log.exception("claiming bed %s failed", bed_id)
            finally:
                self._claims.discard(bed_id)

        self._claim_tasks.add(asyncio.get_running_loop().create_task(claim()))
        self._claim_tasks = {t for t in self._claim_tasks if not t.done()}

    def remote_alarms(self) -> list[Alarm]:
        return [
            dataclasses.replace(a)
            for a in self.mirror.values()
            if self.route(a.bed_id) is not Route.HERE
        ]

    def device_revoked(self, device_id: str) -> None:
        self.send(Kind.REVOKED, device_id)

    def device_rebound(self, device_id: str, old_bed: str | None) -> None:
        self.send(Kind.REBOUND, orjson.dumps([device_id, old_bed]))

    # --- the relay (monitor.fanout.Relay) -----------------------------------------------

    def send(self, kind: Kind, payload: bytes | str, channel: str | None = None) -> None:
        if self._stopping:
            return
        body = payload.decode() if isinstance(payload, bytes) else payload
        try:
            self._out.put_nowait((channel or self.bus, f"{self.id}{SEP}{kind.value}{SEP}{body}"))
        except asyncio.QueueFull:
            log.error("Redis bus backlog full: dropping a %s message", kind)
            self._redis_failed(asyncio.QueueFull())

    def reading(self, reading: Reading) -> None:
        self.send(Kind.READING, _reading_json(reading))
        assert reading.bed_id is not None
        if self.route(reading.bed_id) is Route.AWAY:
            self.away(reading.bed_id)

    def alarm(self, alarm: Alarm) -> None:
        self.send(Kind.ALARM, orjson.dumps(_alarm_json(alarm)))

    def session(self, session_id: int, message: str) -> None:
        self.send(Kind.SESSION, message)

    async def _publisher(self) -> None:
        while True:
            batch: list[tuple[str, str]] = []
            with contextlib.suppress(TimeoutError):
                # Wakes at least every second to write the devices' last-seen times.
                batch.append(await asyncio.wait_for(self._out.get(), SEEN_EVERY_S))
            while not self._out.empty() and len(batch) < 1000:
                batch.append(self._out.get_nowait())
            seen, self._seen_pending = self._seen_pending, {}
            if not batch and not seen:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for channel, msg in batch:
                    pipe.publish(channel, msg)
                if seen:
                    pipe.hset(self.seen_key, mapping={k: repr(v) for k, v in seen.items()})
                await pipe.execute()
            except RedisError as e:
                self._missed_out = True
                self._redis_failed(e)
                log.error("publishing %d messages to Redis failed: %s", len(batch), e)
                continue
            self._redis_ok()
            if self._missed_out:
                # The other instances' panels missed some of ours: tell them to reload.
                self._missed_out = False
                self.send(Kind.RESYNC, "")

    # --- incoming -----------------------------------------------------------------------

    async def _listener(self, ready: asyncio.Event) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.bus, self.cmd_channel(self.id))
                if self._missed_in:
                    self._missed_in = False
                    await self._after_gap()
                ready.set()
                self._redis_ok()
                while True:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is None:
                        continue
                    try:
                        await self._on_message(msg["channel"], msg["data"])
                    except Exception:
                        log.exception("handling a bus message failed")
            except (RedisError, OSError) as e:
                self._missed_in = True
                self._redis_failed(e)
                log.error("Redis bus subscription lost (%s); retrying", e)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _after_gap(self) -> None:
        """Events may have been missed: panels reconnect and get a fresh snapshot."""
        await self._resync()
        self.pipeline.drop_panels("the feed relay was interrupted; reconnecting")

    async def _on_message(self, channel: str, data: str) -> None:
        src, kind_text, body = data.split(SEP, 2)
        kind = Kind(kind_text)
        if channel != self.bus:
            await self._on_command(src, kind, body)
            return
        if src == self.id:
            return
        p = self.pipeline
        if kind is Kind.ALARM:
            alarm = _alarm_from(orjson.loads(body))
            p.heard_alarm(alarm)
            if self.route(alarm.bed_id) is Route.AWAY:
                if alarm.ended_at is not None:
                    self.mirror.pop(alarm.id, None)
                else:
                    self.mirror[alarm.id] = alarm
        elif kind is Kind.SESSION:
            await p.heard_session(int(orjson.loads(body)["session"]["id"]), body)
        elif kind is Kind.READING:
            await p.heard_reading(_reading_from(orjson.loads(body)))
        elif kind is Kind.SEEN:
            bed_id, device_id, at = orjson.loads(body)
            await p.heard_seen(bed_id, device_id, at)
        elif kind is Kind.ARTEFACT:
            bed_id, device_id, code, at = orjson.loads(body)
            if self.route(bed_id) is not Route.AWAY:
                await p.heard_artefact(bed_id, device_id, code, at)
        elif kind is Kind.RESYNC:
            await self._after_gap()
        elif kind is Kind.REVOKED:
            await p.drop_device(body)
        elif kind is Kind.REBOUND:
            device_id, old_bed = orjson.loads(body)
            await p.device_rebound(device_id, old_bed, relay=False)

    # --- commands -----------------------------------------------------------------------

    async def acknowledge(
        self, alarm_id: str, user: str, here: Callable[[], Awaitable[Alarm | None]]
    ) -> Alarm | None:
        stored = await self.store.alarm(alarm_id)
        if stored is None or stored.ended_at is not None:
            return None
        reply = await self._command(
            stored.bed_id,
            {"op": "ack", "alarm_id": alarm_id, "user": user},
            lambda: self._ack_here(here),
        )
        if reply is not None and reply.get("error") == "unavailable":
            raise Unavailable("the owner of the bed could not store the acknowledgement")
        if reply is None or reply.get("alarm") is None:
            return None
        return _alarm_from(reply["alarm"])

    async def pause_audio(
        self,
        bed_id: str,
        seconds: float | None,
        user: str,
        here: Callable[[], Awaitable[list[Alarm]]],
    ) -> list[Alarm]:
        reply = await self._command(
            bed_id,
            {"op": "pause", "bed": bed_id, "seconds": seconds, "user": user},
            lambda: self._pause_here(here),
        )
        if reply is None:
            return []
        if reply.get("error") == "value":
            raise ValueError(reply.get("detail", "invalid pause"))
        if reply.get("error") == "unavailable":
            raise Unavailable("the owner of the bed could not store the audio pause")
        return [_alarm_from(a) for a in reply.get("alarms", [])]

    async def _ack_here(self, here: Callable[[], Awaitable[Alarm | None]]) -> dict[str, Any]:
        a = await here()
        return {"alarm": _alarm_json(a) if a is not None else None}

    async def _pause_here(self, here: Callable[[], Awaitable[list[Alarm]]]) -> dict[str, Any]:
        try:
            changed = await here()
        except ValueError as e:
            return {"error": "value", "detail": str(e)}
        return {"alarms": [_alarm_json(a) for a in changed]}

    async def _command(
        self,
        bed_id: str,
        request: dict[str, Any],
        here: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any] | None:
        """Run a command where the bed's alarm state lives; None if no owner answered in time."""
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            where = self.route(bed_id)
            if where is Route.HERE:
                return await here()
            if where is Route.HOLD:
                await asyncio.sleep(0.05)
                continue
            try:
                owner = await self.redis.get(self.lease_key(bed_id))
                if owner is None or owner == self.id:
                    # Nobody holds it (or we did before a restart): take it and answer here.
                    await self._try_acquire(bed_id)
                    continue
                rid = uuid.uuid4().hex
                fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self._replies[rid] = fut
                try:
                    body = orjson.dumps({**request, "rid": rid}).decode()
                    await self.redis.publish(
                        self.cmd_channel(str(owner)), f"{self.id}{SEP}{Kind.COMMAND}{SEP}{body}"
                    )
                    reply = await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
                finally:
                    self._replies.pop(rid, None)
                if reply.get("error") != "not_owner":
                    return reply
            except TimeoutError:
                log.warning("instance owning bed %s did not answer a %s", bed_id, request["op"])
            except RedisError as e:
                self._redis_failed(e)
                log.error("sending a command through Redis failed: %s", e)
                await asyncio.sleep(0.5)
        log.error("no instance answered a %s for bed %s", request["op"], bed_id)
        return None

    async def _on_command(self, src: str, kind: Kind, body: str) -> None:
        msg = orjson.loads(body)
        if kind is Kind.REPLY:
            fut = self._replies.get(msg.get("rid", ""))
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if kind is Kind.COMMAND:
            asyncio.get_running_loop().create_task(self._serve_command(src, msg))

    async def _serve_command(self, src: str, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        bed_id = msg.get("bed")
        if op == "ack":
            stored = await self.store.alarm(str(msg["alarm_id"]))
            bed_id = stored.bed_id if stored is not None else None
        reply: dict[str, Any]
        if bed_id is None or self.route(bed_id) is not Route.HERE:
            reply = {"error": "not_owner"}
        else:
            try:
                p, seconds = self.pipeline, msg.get("seconds")
                if op == "ack":
                    alarm_id, user = str(msg["alarm_id"]), str(msg["user"])
                    reply = await self._ack_here(lambda: p.acknowledge_here(alarm_id, user))
                elif op == "pause":
                    user = str(msg.get("user", ""))
                    reply = await self._pause_here(
                        lambda: p.pause_audio_here(bed_id, seconds, user)
                    )
                else:
                    reply = {"error": "unknown"}
            except Exception as e:  # e.g. the alarm store failed: the caller answers 503
                log.error("serving a %s for bed %s failed: %s", op, bed_id, type(e).__name__)
                reply = {"error": "unavailable"}
        reply["rid"] = msg.get("rid")
        self.send(Kind.REPLY, orjson.dumps(reply), channel=self.cmd_channel(src))

    # --- ownership ----------------------------------------------------------------------

    async def _leases(self) -> None:
        n = 0
        while True:
            try:
                await self._lease_round(n)
            except Exception:
                log.exception("lease round failed")
            n += 1
            await asyncio.sleep(LOOP_S)

    async def _lease_round(self, n: int) -> None:
        # Renewal first: it must not wait on the database.
        await self._renew_held()
        with contextlib.suppress(RedisError):
            await self.redis.set(
                f"{self.prefix}:instance:{self.id}", str(time.time()), px=int(LEASE_TTL_S * 1000)
            )
        beds = await self.store.list_beds()
        self._bed_devices = {b["id"]: b["devices"] for b in beds}
        await self._find_free(beds)
        if n % RESYNC_EVERY == RESYNC_EVERY - 1:
            await self._resync()

    async def _renew_held(self) -> None:
        """Renew what we hold; a lease we could not renew in time is no longer ours."""
        now = time.monotonic()
        for bed_id in list(self.owned):
            if self.owned[bed_id] <= now:
                log.warning("lost the hold on bed %s (renewal too late)", bed_id)
                self._drop(bed_id)
        mine = list(self.owned)
        if mine:
            sent = time.monotonic()
            try:
                pipe = self.redis.pipeline(transaction=False)
                for bed_id in mine:
                    await self._renew(
                        keys=[self.lease_key(bed_id)],
                        args=[self.id, int(LEASE_TTL_S * 1000)],
                        client=pipe,
                    )
                results = await pipe.execute()
            except RedisError as e:
                # Nobody can take a lease while Redis is unreachable: keep judging.
                self._redis_failed(e)
                log.error("renewing leases failed (%s); keeping the beds held", e)
                results = [1] * len(mine)
            for bed_id, ok in zip(mine, results, strict=True):
                if ok and bed_id in self.owned:
                    self.owned[bed_id] = sent + LEASE_TTL_S - SAFETY_S
                elif bed_id in self.owned:
                    log.warning("lease of bed %s was taken or expired: handing it over", bed_id)
                    self._drop(bed_id)

    async def _find_free(self, beds: list[dict[str, Any]]) -> None:
        # Free (or formerly our own) leases are taken: at once where a device of the bed is
        # connected here, otherwise once seen free two rounds in a row (spreads the beds).
        ids = [b["id"] for b in beds]
        owners = await self.redis.mget([self.lease_key(b) for b in ids]) if ids else []
        self.owners = {b: None if o is None else str(o) for b, o in zip(ids, owners, strict=True)}
        local = set(self.pipeline.connected_devices())
        free_now: set[str] = set()
        for bed_id, owner in self.owners.items():
            if bed_id in self.owned or bed_id in self.taking:
                continue
            if owner == self.id:
                await self._try_acquire(bed_id)
            elif owner is None:
                free_now.add(bed_id)
                near = any(d in local for d in self._bed_devices.get(bed_id, []))
                if near or bed_id in self._free_before:
                    await self._try_acquire(bed_id)
        self._free_before = free_now

    async def _try_acquire(self, bed_id: str) -> bool:
        busy = bed_id in self.owned or bed_id in self.taking or bed_id in self._acquiring
        if busy or self._stopping:
            return bed_id in self.owned
        self._acquiring.add(bed_id)
        try:
            return await self._acquire(bed_id)
        finally:
            self._acquiring.discard(bed_id)

    async def _acquire(self, bed_id: str) -> bool:
        key = self.lease_key(bed_id)
        ttl = int(LEASE_TTL_S * 1000)
        sent = time.monotonic()
        got = await self.redis.set(key, self.id, nx=True, px=ttl)
        if not got:
            # Our own lease from before a restart: ours again, but the state must be rebuilt.
            got = bool(await self._renew(keys=[key], args=[self.id, ttl]))
        if not got:
            return False
        self.taking[bed_id] = []
        try:
            await self._take_over(bed_id, sent + LEASE_TTL_S - SAFETY_S)
        except BaseException:
            self.taking.pop(bed_id, None)
            self.owned.pop(bed_id, None)
            # Half-rebuilt state must not judge or tick: the bed is not ours after all.
            self.pipeline.release_bed(bed_id)
            with contextlib.suppress(Exception):
                await self._release(keys=[key], args=[self.id])
            raise
        return True

    async def _take_over(self, bed_id: str, until: float) -> None:
        """Rebuild the bed's alarm state from the store (rule 4), then judge what waited."""
        for a in [a for a in self.mirror.values() if a.bed_id == bed_id]:
            self.mirror.pop(a.id, None)
        devices = self._bed_devices.get(bed_id)
        if devices is None:
            beds = await self.store.list_beds()
            devices = next((b["devices"] for b in beds if b["id"] == bed_id), [])
        raw = await self.redis.hmget(self.seen_key, devices) if devices else []
        last_seen = {d: float(v) if v else 0.0 for d, v in zip(devices, raw, strict=True)}

        def release() -> list[Held]:
            # Called between the replay and the held items, with no await in between: from
            # here on the bed is judged here, and nothing that arrived meanwhile is lost.
            held = self.taking.pop(bed_id, [])
            self.owned[bed_id] = until
            return held

        await self.pipeline.adopt_bed(bed_id, last_seen=last_seen, release=release)

    def _drop(self, bed_id: str) -> None:
        """Let go of a bed without ending its alarms: the next owner restores them."""
        self.owned.pop(bed_id, None)
        for a in self.pipeline.release_bed(bed_id):
            self.mirror[a.id] = a

    async def _resync(self) -> None:
        """Re-read the other beds' open alarms and every open session from the store."""
        alarms = await self.store.alarms(active=True, limit=100_000)
        self.mirror = {a.id: a for a in alarms if self.route(a.bed_id) is Route.AWAY}
        await self.pipeline.resync_sessions()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, pipeline: Pipeline) -> None:
        """Begin serving ``pipeline`` (the one built with this cluster as its gate and relay,
        already started): subscribe, then take leases. Until a lease is taken, every bed is
        judged elsewhere."""
        self._pipeline = pipeline
        pipeline.track_redis()
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listener(ready), name="vigil-cluster-listener"),
            asyncio.create_task(self._publisher(), name="vigil-cluster-publisher"),
        ]
        # Subscribed before any lease is taken, so nothing meant for us is missed.
        await asyncio.wait_for(ready.wait(), 15.0)
        await self._resync()
        self._tasks.append(asyncio.create_task(self._leases(), name="vigil-cluster-leases"))
        log.info("cluster instance %s (prefix %s) started", self.id, self.prefix)

    async def stop(self) -> None:
        """Hand every bed over at once (a clean stop need not wait for the leases to expire)."""
        self._stopping = True
        lease_task = self._tasks[-1] if len(self._tasks) == 3 else None
        if lease_task is not None:
            lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease_task
        # Flush what is queued for the bus before letting go of the beds.
        for _ in range(50):
            if self._out.empty():
                break
            await asyncio.sleep(0.02)
        for bed_id in list(self.owned):
            with contextlib.suppress(Exception):
                await self._release(keys=[self.lease_key(bed_id)], args=[self.id])
            self._drop(bed_id)
        tasks = [*self._tasks, *self._claim_tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self.redis.delete(f"{self.prefix}:instance:{self.id}")
        await self.redis.aclose()


def connect(settings: Settings, store: Store, instance_id: str) -> Cluster:
    """The cluster of ``settings.redis_url``, to give the pipeline as its gate and relay
    (``Monitor(..., gate=cluster, relay=cluster)``); once the pipeline has started,
    ``await cluster.start(monitor)``."""
    assert settings.redis_url is not None
    client = aioredis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=10,
    )
    return Cluster(instance_id, settings.redis_prefix, store, client)


__all__ = ["Cluster", "Kind", "Pipeline", "connect"]
