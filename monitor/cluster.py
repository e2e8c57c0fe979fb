"""Multi-instance mode: several monitors share PostgreSQL (storage) and Redis (fan-out and
ownership). Started only with ``--redis`` (VIGIL_REDIS_URL); without it nothing here runs.

Rules
-----
1. Every instance accepts devices and panels and stores readings in PostgreSQL; an ack goes to
   the device after the commit, exactly as in single-instance mode.
2. Fan-out. Everything an instance publishes to its own panels is also published on one Redis
   channel (``{prefix}:bus``), tagged with the instance id; every other instance hands it to
   its panels. A panel therefore sees each event once, whichever instance it is connected to.
   Readings travel as exact data ("r" envelopes, not their feed text) so the owner can judge
   them with the same floats the origin stored; receivers rebuild the identical feed text.
3. Ownership. The alarm state of a bed (all its sessions, devices and alarms) lives in exactly
   one instance: the holder of the Redis lease ``{prefix}:lease:{bed}`` (SET NX PX, renewed
   every second, TTL 6 s). Only the owner runs the alarm engine for that bed; everything the
   engine needs (readings, device activity, rejected frames, session changes) reaches it over
   the bus. Alarm commands (ack, audio pause) are sent to the owner and answered over Redis.
4. Takeover. A lease that is not renewed (owner killed) expires within 6 s; a live instance
   takes it within about 2 s more (at once if one of the bed's devices is connected to it).
   The new owner rebuilds the bed's state from PostgreSQL, not from memory: the open session,
   the open physiological alarms, then the bed's readings of the last 5 minutes replayed in
   device time (readings a restored or recently ended alarm already accounts for are skipped
   for that signal), then the open technical alarms and the last-seen time of each device.
   Alarm ids are deterministic (bed, signal, direction, device time), so a replay meets the
   alarms already stored instead of raising them again: no alarm lost, none doubled.
   While a takeover runs, whatever arrives for the bed is held and judged after it.
5. A lease found lost (taken, expired, or renewed too late) drops the bed's engine state at
   once, without ending its alarms: they belong to the next owner. If Redis cannot be reached
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
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.alarms import AlarmEngine
from monitor.alarms.config import ClinicConfig
from monitor.model import PRIORITY_RANK, Alarm, Reading, parse_rfc3339
from monitor.protocol import feed
from monitor.service import Monitor

log = logging.getLogger("vigil.cluster")

LEASE_TTL_S: Final = 6.0
LOOP_S: Final = 1.0
# A lease counts as held locally only until this long before Redis would let it expire.
SAFETY_S: Final = 1.5
REPLAY_WINDOW_S: Final = 300.0
REPLAY_MAX_S: Final = 6 * 3600.0
SEEN_EVERY_S: Final = 1.0
RESYNC_EVERY: Final = 5  # loops between re-reading the other beds' open alarms from the store
COMMAND_TIMEOUT_S: Final = 8.0
REPLY_TIMEOUT_S: Final = 2.0
SEP: Final = "\x1f"

Route = Literal["here", "hold", "away"]

# Renew only our own lease; release only our own lease.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _reading_json(r: Reading) -> bytes:
    return orjson.dumps(
        [r.device_id, r.seq, r.ts, r.received_at, dict(r.values), r.source, r.bed_id, r.session_id]
    )


def _reading_from(data: Any) -> Reading:
    dev, seq, ts, received_at, values, source, bed, session_id = data
    return Reading(dev, int(seq), float(ts), float(received_at), values, source, bed, session_id)


def _alarm_json(a: Alarm) -> dict[str, Any]:
    return dataclasses.asdict(a)


def _alarm_from(d: Mapping[str, Any]) -> Alarm:
    return Alarm(**d)


def _t(v: Any) -> float | None:
    return parse_rfc3339(v) if isinstance(v, str) else None


def _alarm_from_feed(a: Mapping[str, Any]) -> Alarm:
    """An alarm as shown on the feed (millisecond times): good enough for another bed's display."""
    return Alarm(
        id=a["id"],
        bed_id=a["bed"],
        signal=a["signal"],
        kind=a["kind"],
        priority=a["priority"],
        condition=a["condition"],
        started_at=parse_rfc3339(a["started_at"]),
        state=a["state"],
        ended_at=_t(a.get("ended_at")),
        acknowledged_at=_t(a.get("acknowledged_at")),
        acknowledged_by=a.get("acknowledged_by"),
        session_id=a.get("session_id"),
        device_id=a.get("device_id"),
        value=a.get("value"),
        escalated=bool(a.get("escalated")),
        audio_paused_until=_t(a.get("audio_paused_until")),
    )


class ClusterEngine(AlarmEngine):
    """The alarm engine of one instance: judges the beds it owns and hands everything about the
    other beds to the cluster. Also answers ``active()`` for every bed (the others' alarms from
    a mirror kept from the bus and the store), so panels and /api/beds see the whole ward."""

    def __init__(self, config: ClinicConfig | None = None) -> None:
        super().__init__(config)
        self.cluster: Cluster | None = None
        self.mirror: dict[str, Alarm] = {}

    def route(self, bed_id: str) -> Route:
        return "away" if self.cluster is None else self.cluster.route(bed_id)

    def on_reading(self, reading: Reading) -> list[Alarm]:
        assert reading.bed_id is not None
        c = self.cluster
        if c is not None:
            c.send_reading(reading)
        where = self.route(reading.bed_id)
        if where == "here":
            return super().on_reading(reading)
        if c is not None:
            if where == "hold":
                c.hold(reading.bed_id, ("reading", reading))
            else:
                c.claim_if_free(reading.bed_id)
        return []

    def device_seen(self, bed_id: str, device_id: str, at: float) -> list[Alarm]:
        c = self.cluster
        where = self.route(bed_id)
        if c is not None:
            c.send_seen(bed_id, device_id, at, publish=where != "here")
        if where == "here":
            return super().device_seen(bed_id, device_id, at)
        if where == "hold" and c is not None:
            c.hold(bed_id, ("seen", device_id, at))
        return []

    def on_artefact(self, bed_id: str, device_id: str, code: str, at: float) -> list[Alarm]:
        c = self.cluster
        where = self.route(bed_id)
        if where == "here":
            return super().on_artefact(bed_id, device_id, code, at)
        if c is not None:
            if where == "hold":
                c.hold(bed_id, ("artefact", device_id, code, at))
            else:
                c.send("a", orjson.dumps([bed_id, device_id, code, at]))
        return []

    def set_session(
        self,
        bed_id: str,
        session_id: int | None,
        phase: str | None,
        baseline: Mapping[str, float] | None,
        overrides: Mapping[str, Any] | None,
        *,
        now: float | None = None,
    ) -> list[Alarm]:
        where = self.route(bed_id)
        if where == "here":
            return super().set_session(bed_id, session_id, phase, baseline, overrides, now=now)
        # Elsewhere the owner hears of the change over the bus and reads the session itself.
        return []

    def restore(self, alarms: Iterable[Alarm]) -> None:
        mine = []
        for a in alarms:
            if self.route(a.bed_id) == "here":
                mine.append(a)
            elif a.ended_at is None:
                self.mirror[a.id] = a
        super().restore(mine)

    def forget_bed(self, bed_id: str, now: float) -> list[Alarm]:
        return super().forget_bed(bed_id, now) if self.route(bed_id) == "here" else []

    def remove_device(self, bed_id: str, device_id: str, now: float) -> list[Alarm]:
        if self.route(bed_id) == "here":
            return super().remove_device(bed_id, device_id, now)
        return []

    def active(self, bed_id: str | None = None) -> list[Alarm]:
        alarms = super().active(bed_id)
        alarms.extend(
            dataclasses.replace(a)
            for a in self.mirror.values()
            if (bed_id is None or a.bed_id == bed_id) and self.route(a.bed_id) != "here"
        )
        alarms.sort(key=lambda a: (-PRIORITY_RANK.get(a.priority, 0), a.started_at, a.id))
        return alarms

    def mirror_update(self, alarm: Alarm) -> None:
        if alarm.ended_at is not None:
            self.mirror.pop(alarm.id, None)
        else:
            self.mirror[alarm.id] = alarm


class Cluster:
    def __init__(self, monitor: Monitor, client: aioredis.Redis, engine: ClusterEngine) -> None:
        settings = monitor.settings
        self.monitor = monitor
        self.redis = client
        self.engine = engine
        self.id = settings.instance_id or f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"
        self.prefix = settings.redis_prefix
        self.bus = f"{self.prefix}:bus"
        self.seen_key = f"{self.prefix}:seen"
        self.owned: dict[str, float] = {}  # bed -> monotonic time our hold on it lapses
        self.taking: dict[str, list[tuple[Any, ...]]] = {}  # bed -> what arrived meanwhile
        self.owners: dict[str, str | None] = {}
        self._free_before: set[str] = set()
        self._out: asyncio.Queue[tuple[str, bytes | str]] = asyncio.Queue(maxsize=100_000)
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

    # --- routing ------------------------------------------------------------------------

    def lease_key(self, bed_id: str) -> str:
        return f"{self.prefix}:lease:{bed_id}"

    def cmd_channel(self, instance: str) -> str:
        return f"{self.prefix}:cmd:{instance}"

    def route(self, bed_id: str) -> Route:
        if bed_id in self.taking:
            return "hold"
        until = self.owned.get(bed_id)
        if until is not None and until > time.monotonic():
            return "here"
        return "away"

    def hold(self, bed_id: str, item: tuple[Any, ...]) -> None:
        self.taking[bed_id].append(item)

    def claim_if_free(self, bed_id: str) -> None:
        """A reading for a bed nobody was seen holding: try to own it now rather than at the
        next lease round (the replay judges this reading too)."""
        if self.owners.get(bed_id) is not None or bed_id in self._claims or self._stopping:
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

    # --- outgoing -----------------------------------------------------------------------

    def send(self, kind: str, payload: bytes | str, channel: str | None = None) -> None:
        if self._stopping:
            return
        body = payload.decode() if isinstance(payload, bytes) else payload
        try:
            self._out.put_nowait((channel or self.bus, f"{self.id}{SEP}{kind}{SEP}{body}"))
        except asyncio.QueueFull:
            log.error("Redis bus backlog full: dropping a %s message", kind)

    def relay(self, message: str) -> None:
        """Hub hook: every local feed message, except readings (sent as exact "r" data)."""
        if not message.startswith('{"type":"reading"'):
            self.send("f", message)

    def send_reading(self, reading: Reading) -> None:
        self.send("r", _reading_json(reading))

    def send_seen(self, bed_id: str, device_id: str, at: float, *, publish: bool) -> None:
        # Throttled: the owner's no-data rule needs one sign of life a second, not every frame.
        last = self._seen_sent.get(device_id)
        self._seen_pending[device_id] = at
        if last is not None and at - last < SEEN_EVERY_S:
            return
        self._seen_sent[device_id] = at
        if publish:
            self.send("s", orjson.dumps([bed_id, device_id, at]))

    def device_revoked(self, device_id: str) -> None:
        self.send("v", device_id)

    async def _publisher(self) -> None:
        while True:
            batch: list[tuple[str, bytes | str]] = []
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
                log.error("publishing %d messages to Redis failed: %s", len(batch), e)
                continue
            if self._missed_out:
                # The other instances' panels missed some of ours: tell them to reload.
                self._missed_out = False
                self.send("g", "")

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
                log.error("Redis bus subscription lost (%s); retrying", e)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _after_gap(self) -> None:
        """Events may have been missed: panels reconnect and get a fresh snapshot."""
        await self._resync()
        for client in tuple(self.monitor.hub.clients):
            client.drop("the feed relay was interrupted; reconnecting")

    async def _on_message(self, channel: str, data: str) -> None:
        src, kind, body = data.split(SEP, 2)
        if channel != self.bus:
            await self._on_command(src, kind, body)
            return
        if src == self.id:
            return
        m = self.monitor
        if kind == "f":
            m.hub.deliver(body)
            if body.startswith('{"type":"alarm"'):
                alarm = _alarm_from_feed(orjson.loads(body)["alarm"])
                if self.route(alarm.bed_id) == "away":
                    self.engine.mirror_update(alarm)
            elif body.startswith('{"type":"session"'):
                await self._session_changed(int(orjson.loads(body)["session"]["id"]))
        elif kind == "r":
            r = _reading_from(orjson.loads(body))
            m.hub.deliver(feed.reading_message(r))
            self._cache_reading(r)
            assert r.bed_id is not None
            where = self.route(r.bed_id)
            if where == "here":
                await self._persist(AlarmEngine.on_reading(self.engine, r))
            elif where == "hold":
                self.hold(r.bed_id, ("reading", r))
        elif kind == "s":
            bed_id, device_id, at = orjson.loads(body)
            prev = m.caches.last_seen.get(device_id)
            m.caches.last_seen[device_id] = at if prev is None else max(prev, at)
            where = self.route(bed_id)
            if where == "here":
                await self._persist(AlarmEngine.device_seen(self.engine, bed_id, device_id, at))
            elif where == "hold":
                self.hold(bed_id, ("seen", device_id, at))
        elif kind == "a":
            bed_id, device_id, code, at = orjson.loads(body)
            where = self.route(bed_id)
            if where == "here":
                await self._persist(
                    AlarmEngine.on_artefact(self.engine, bed_id, device_id, code, at)
                )
            elif where == "hold":
                self.hold(bed_id, ("artefact", device_id, code, at))
        elif kind == "g":
            await self._after_gap()
        elif kind == "v":
            await m.drop_device(body)

    def _cache_reading(self, r: Reading) -> None:
        assert r.bed_id is not None
        caches = self.monitor.caches
        latest = caches.latest.setdefault(r.bed_id, {})
        for sig in r.values:
            prev = latest.get(sig)
            if prev is None or r.ts >= prev.ts:
                latest[sig] = r
        prev_seen = caches.last_seen.get(r.device_id)
        caches.last_seen[r.device_id] = (
            r.received_at if prev_seen is None else max(prev_seen, r.received_at)
        )

    async def _session_changed(self, session_id: int) -> None:
        row = await self.monitor.store.session_row(session_id)
        if row is None:
            return
        # Refreshes this instance's session cache; the engine acts only if we own the bed.
        changed = self.monitor._cache_session(row)
        if self.route(row["bed_id"]) == "hold":
            self.hold(row["bed_id"], ("session", session_id))
        await self._persist(changed)

    async def _persist(self, changed: list[Alarm]) -> None:
        if changed:
            await self.monitor._persist_and_publish(changed)

    # --- commands -----------------------------------------------------------------------

    async def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        if self.engine.get(alarm_id) is not None:
            return await self.monitor.acknowledge_here(alarm_id, user)
        stored = await self.monitor.store.alarm(alarm_id)
        if stored is None or stored.ended_at is not None:
            return None
        reply = await self._command(
            stored.bed_id,
            {"op": "ack", "alarm_id": alarm_id, "user": user},
            lambda: self._ack_here(alarm_id, user),
        )
        if reply is None or reply.get("alarm") is None:
            return None
        return _alarm_from(reply["alarm"])

    async def pause_audio(self, bed_id: str, seconds: float | None) -> list[Alarm]:
        reply = await self._command(
            bed_id,
            {"op": "pause", "bed": bed_id, "seconds": seconds},
            lambda: self._pause_here(bed_id, seconds),
        )
        if reply is None:
            return []
        if reply.get("error") == "value":
            raise ValueError(reply.get("detail", "invalid pause"))
        return [_alarm_from(a) for a in reply.get("alarms", [])]

    async def _ack_here(self, alarm_id: str, user: str) -> dict[str, Any]:
        a = await self.monitor.acknowledge_here(alarm_id, user)
        return {"alarm": _alarm_json(a) if a is not None else None}

    async def _pause_here(self, bed_id: str, seconds: float | None) -> dict[str, Any]:
        try:
            changed = await self.monitor.pause_audio_here(bed_id, seconds)
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
            if where == "here":
                return await here()
            if where == "hold":
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
                        self.cmd_channel(str(owner)), f"{self.id}{SEP}q{SEP}{body}"
                    )
                    reply = await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
                finally:
                    self._replies.pop(rid, None)
                if reply.get("error") != "not_owner":
                    return reply
            except TimeoutError:
                log.warning("instance owning bed %s did not answer a %s", bed_id, request["op"])
            except RedisError as e:
                log.error("sending a command through Redis failed: %s", e)
                await asyncio.sleep(0.5)
        log.error("no instance answered a %s for bed %s", request["op"], bed_id)
        return None

    async def _on_command(self, src: str, kind: str, body: str) -> None:
        msg = orjson.loads(body)
        if kind == "p":
            fut = self._replies.get(msg.get("rid", ""))
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if kind == "q":
            asyncio.get_running_loop().create_task(self._serve_command(src, msg))

    async def _serve_command(self, src: str, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        bed_id = msg.get("bed")
        if op == "ack":
            stored = await self.monitor.store.alarm(str(msg["alarm_id"]))
            bed_id = stored.bed_id if stored is not None else None
        reply: dict[str, Any]
        if bed_id is None or self.route(bed_id) != "here":
            reply = {"error": "not_owner"}
        elif op == "ack":
            reply = await self._ack_here(str(msg["alarm_id"]), str(msg["user"]))
        elif op == "pause":
            reply = await self._pause_here(bed_id, msg.get("seconds"))
        else:
            reply = {"error": "unknown"}
        reply["rid"] = msg.get("rid")
        self.send("p", orjson.dumps(reply), channel=self.cmd_channel(src))

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
        beds = await self.monitor.store.list_beds()
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
        local = set(self.monitor.connections)
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
            AlarmEngine.forget_bed(self.engine, bed_id, self.monitor.clock())
            with contextlib.suppress(Exception):
                await self._release(keys=[key], args=[self.id])
            raise
        return True

    async def _take_over(self, bed_id: str, until: float) -> None:
        """Rebuild the bed's alarm state from the store (rule 4), then judge what waited."""
        m, eng = self.monitor, self.engine
        store = m.store
        now = m.clock()
        for a in [a for a in eng.mirror.values() if a.bed_id == bed_id]:
            eng.mirror.pop(a.id, None)
        sessions = await store.session_rows(bed_id=bed_id, open_only=True, limit=1)
        window_start = now - REPLAY_WINDOW_S
        open_alarms = await store.alarms(bed_id=bed_id, active=True, limit=10_000)
        recent = await store.alarms(bed_id=bed_id, since=window_start, limit=10_000)
        physio = [a for a in open_alarms if a.kind == "physiological"]
        technical = [a for a in open_alarms if a.kind != "physiological"]
        # Per signal, the device time up to which stored alarms already account for readings.
        cut: dict[str, float] = {}
        for a in recent:
            if a.kind != "physiological":
                continue
            mark = a.started_at if a.ended_at is None else max(a.started_at, a.ended_at)
            cut[a.signal] = max(cut.get(a.signal, mark), mark)
        readings = await store.readings(
            bed_id=bed_id, since=max(window_start, now - REPLAY_MAX_S), limit=100_000
        )
        seen_raw: list[Any] = []
        devices = self._bed_devices.get(bed_id) or sorted({r.device_id for r in readings})
        if devices:
            seen_raw = await self.redis.hmget(self.seen_key, devices)

        changed: list[Alarm] = []
        if sessions:
            row = sessions[0]
            m._cache_session(row)  # the session cache; the engine call is held (bed is taken)
            changed += AlarmEngine.set_session(
                eng,
                bed_id,
                row["id"],
                row["phase"],
                row["baseline"],
                row["limit_overrides"],
                now=now,
            )
        else:
            m.caches.open_sessions.pop(bed_id, None)
        AlarmEngine.restore(eng, physio)
        replayed: set[tuple[str, int]] = set()
        last_seen: dict[str, float] = {}
        for r in readings:
            replayed.add((r.device_id, r.seq))
            last_seen[r.device_id] = max(last_seen.get(r.device_id, 0.0), r.received_at)
            values = {k: v for k, v in r.values.items() if r.ts > cut.get(k, float("-inf"))}
            if values:
                changed += AlarmEngine.on_reading(eng, dataclasses.replace(r, values=values))
        AlarmEngine.restore(eng, technical)
        for dev, raw in zip(devices, seen_raw or [None] * len(devices), strict=True):
            at = max(last_seen.get(dev, 0.0), float(raw) if raw else 0.0)
            if at <= 0:
                continue
            no_data = [a for a in technical if a.signal == "device" and a.device_id == dev]
            # A device silent since its no-data alarm began must not end it by replay.
            if all(at > a.started_at for a in no_data):
                changed += AlarmEngine.device_seen(eng, bed_id, dev, at)

        held = self.taking.pop(bed_id, [])
        self.owned[bed_id] = until
        for item in held:
            if item[0] == "reading":
                r = item[1]
                if (r.device_id, r.seq) not in replayed:
                    changed += AlarmEngine.on_reading(eng, r)
            elif item[0] == "seen":
                changed += AlarmEngine.device_seen(eng, bed_id, item[1], item[2])
            elif item[0] == "artefact":
                changed += AlarmEngine.on_artefact(eng, bed_id, item[1], item[2], item[3])
        log.info(
            "took over bed %s: %d open alarms restored, %d readings replayed, %d changes",
            bed_id,
            len(open_alarms),
            len(readings),
            len(changed),
        )
        await self._persist(changed)
        if any(item[0] == "session" for item in held):
            # A session changed while we rebuilt: apply its latest row now that we judge.
            rows = await store.session_rows(bed_id=bed_id, open_only=True, limit=1)
            if rows:
                await self._persist(m._cache_session(rows[0]))

    def _drop(self, bed_id: str) -> None:
        """Let go of a bed without ending its alarms: the next owner restores them."""
        self.owned.pop(bed_id, None)
        keep = AlarmEngine.active(self.engine, bed_id)
        AlarmEngine.forget_bed(self.engine, bed_id, self.monitor.clock())
        for a in keep:
            self.engine.mirror[a.id] = a

    async def _resync(self) -> None:
        """Re-read the other beds' open alarms and every open session from the store."""
        m = self.monitor
        alarms = await m.store.alarms(active=True, limit=100_000)
        self.engine.mirror = {a.id: a for a in alarms if self.route(a.bed_id) == "away"}
        rows = await m.store.session_rows(open_only=True, limit=10_000)
        open_beds = {r["bed_id"] for r in rows}
        for row in rows:
            c = m.caches.open_sessions.get(row["bed_id"])
            if c is None or (c.id, c.phase, c.baseline, c.overrides) != (
                row["id"],
                row["phase"],
                row["baseline"],
                row["limit_overrides"],
            ):
                await self._persist(m._cache_session(row))
        for bed_id in [b for b in m.caches.open_sessions if b not in open_beds]:
            ended = await m.store.session_row(m.caches.open_sessions[bed_id].id)
            if ended is not None:
                await self._persist(m._cache_session(ended))

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listener(ready), name="vigil-cluster-listener"),
            asyncio.create_task(self._publisher(), name="vigil-cluster-publisher"),
        ]
        # Subscribed before any lease is taken, so nothing meant for us is missed.
        await asyncio.wait_for(ready.wait(), 15.0)
        self.engine.cluster = self
        self.monitor.hub.relay = self.relay
        self.monitor.router = self
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
        self.monitor.hub.relay = None
        self.monitor.router = None
        self.engine.cluster = None
        tasks = [*self._tasks, *self._claim_tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self.redis.delete(f"{self.prefix}:instance:{self.id}")
        await self.redis.aclose()


async def start_cluster(monitor: Monitor) -> Callable[[], Awaitable[None]]:
    """Join the cluster named by ``settings.redis_url``; returns the stop function."""
    settings = monitor.settings
    assert settings.redis_url is not None
    if not isinstance(monitor.engine, ClusterEngine):
        raise RuntimeError("multi-instance mode needs the monitor built with a ClusterEngine")
    client = aioredis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=10,
    )
    cluster = Cluster(monitor, client, monitor.engine)
    await cluster.start()
    return cluster.stop


__all__ = ["Cluster", "ClusterEngine", "start_cluster"]
