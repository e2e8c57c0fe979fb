"""Ownership (rules 3 to 5 of monitor.cluster): which beds this instance judges, held as
Redis leases (SET NX PX, renewed every second), taken over by a rebuild from the store
(``Pipeline.adopt_bed``) and let go without ending any alarm (``Pipeline.release_bed``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.cluster.codec import Keys
from monitor.cluster.port import Port
from monitor.core.model import Alarm
from monitor.pipeline.gate import Held, Route
from monitor.records.store import BedRow, Store

log = logging.getLogger("vigil.cluster")

LEASE_TTL_S: Final = 6.0
LEASE_TTL_MS: Final = int(LEASE_TTL_S * 1000)
# A lease counts as held locally only until this long before Redis would let it expire.
SAFETY_S: Final = 1.5

# Renew only our own lease; release only our own lease.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RemoteAlarms:
    """The open alarms of beds judged elsewhere, as last heard (for this instance's views)."""

    def __init__(self) -> None:
        self._open: dict[str, Alarm] = {}

    def __iter__(self) -> Iterator[Alarm]:
        return iter(list(self._open.values()))

    def heard(self, alarm: Alarm) -> None:
        if alarm.ended_at is not None:
            self._open.pop(alarm.id, None)
        else:
            self._open[alarm.id] = alarm

    def keep(self, alarms: Iterable[Alarm]) -> None:
        """A released bed's live alarms: the next owner's, shown as they were until heard of."""
        for a in alarms:
            self._open[a.id] = a

    def forget_bed(self, bed_id: str) -> None:
        for alarm_id in [k for k, a in self._open.items() if a.bed_id == bed_id]:
            del self._open[alarm_id]

    def replace(self, alarms: Iterable[Alarm]) -> None:
        self._open = {a.id: a for a in alarms}

    def copies(self) -> list[Alarm]:
        return [dataclasses.replace(a) for a in self._open.values()]


class Leases:
    def __init__(
        self,
        instance_id: str,
        keys: Keys,
        client: aioredis.Redis,
        store: Store,
        port: Port,
        remote: RemoteAlarms,
    ) -> None:
        self.id = instance_id
        self.keys = keys
        self.redis = client
        self.store = store
        self.port = port
        self.remote = remote
        self.owned: dict[str, float] = {}  # bed -> monotonic time our hold on it lapses
        self.taking: dict[str, list[Held]] = {}  # bed -> what arrived while we rebuild it
        self.owners: dict[str, str | None] = {}  # bed -> its lease holder, as last read
        self._free_before: set[str] = set()
        self._bed_devices: dict[str, list[str]] = {}
        self._claims: set[str] = set()
        self._acquiring: set[str] = set()
        self._claim_tasks: set[asyncio.Task[None]] = set()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.closed = False  # stopping: no bed is taken any more

    def route(self, bed_id: str) -> Route:
        if bed_id in self.taking:
            return Route.HOLD
        until = self.owned.get(bed_id)
        if until is not None and until > time.monotonic():
            return Route.HERE
        return Route.AWAY

    def hold(self, bed_id: str, item: Held) -> None:
        self.taking[bed_id].append(item)

    def claim(self, bed_id: str) -> None:
        """A reading for a bed judged elsewhere, or by nobody: claim it if nobody holds it (the
        takeover's replay judges that reading too)."""
        if not self.port.attached or self.closed:
            return  # not started yet, or handing every bed over
        if self.owners.get(bed_id) is not None or bed_id in self._claims:
            return
        self._claims.add(bed_id)

        async def claim() -> None:
            try:
                await self.try_acquire(bed_id)
            except Exception:
                log.exception("claiming bed %s failed", bed_id)
            finally:
                self._claims.discard(bed_id)

        self._claim_tasks.add(asyncio.get_running_loop().create_task(claim()))
        self._claim_tasks = {t for t in self._claim_tasks if not t.done()}

    def claim_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._claim_tasks)

    async def round(self) -> None:
        """One lease round: renew what we hold, say we live, take the free beds."""
        # Renewal first: it must not wait on the database.
        await self._renew_held()
        with contextlib.suppress(RedisError):
            await self.redis.set(self.keys.instance(self.id), str(time.time()), px=LEASE_TTL_MS)
        beds = await self.store.list_beds()
        self._bed_devices = {b["id"]: b["devices"] for b in beds}
        await self._find_free(beds)

    async def _renew_held(self) -> None:
        """Renew what we hold; a lease we could not renew in time is no longer ours."""
        now = time.monotonic()
        for bed_id in list(self.owned):
            if self.owned[bed_id] <= now:
                log.warning("lost the hold on bed %s (renewal too late)", bed_id)
                self.drop(bed_id)
        mine = list(self.owned)
        if not mine:
            return
        sent = time.monotonic()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for bed_id in mine:
                await self._renew(
                    keys=[self.keys.lease(bed_id)],
                    args=[self.id, LEASE_TTL_MS],
                    client=pipe,
                )
            results = await pipe.execute()
        except RedisError as e:
            # Nobody can take a lease while Redis is unreachable: keep judging.
            self.port.redis_failed(e)
            log.error("renewing leases failed (%s); keeping the beds held", e)
            results = [1] * len(mine)
        for bed_id, ok in zip(mine, results, strict=True):
            if ok and bed_id in self.owned:
                self.owned[bed_id] = sent + LEASE_TTL_S - SAFETY_S
            elif bed_id in self.owned:
                log.warning("lease of bed %s was taken or expired: handing it over", bed_id)
                self.drop(bed_id)

    async def _find_free(self, beds: list[BedRow]) -> None:
        # Free (or formerly our own) leases are taken: at once where a device of the bed is
        # connected here, otherwise once seen free two rounds in a row (spreads the beds).
        ids = [b["id"] for b in beds]
        owners = await self.redis.mget([self.keys.lease(b) for b in ids]) if ids else []
        self.owners = {b: None if o is None else str(o) for b, o in zip(ids, owners, strict=True)}
        local = set(self.port.pipeline.connected_devices())
        free_now: set[str] = set()
        for bed_id, owner in self.owners.items():
            if bed_id in self.owned or bed_id in self.taking:
                continue
            if owner == self.id:
                await self.try_acquire(bed_id)
            elif owner is None:
                free_now.add(bed_id)
                near = any(d in local for d in self._bed_devices.get(bed_id, []))
                if near or bed_id in self._free_before:
                    await self.try_acquire(bed_id)
        self._free_before = free_now

    async def try_acquire(self, bed_id: str) -> bool:
        busy = bed_id in self.owned or bed_id in self.taking or bed_id in self._acquiring
        if busy or self.closed:
            return bed_id in self.owned
        self._acquiring.add(bed_id)
        try:
            return await self._acquire(bed_id)
        finally:
            self._acquiring.discard(bed_id)

    async def _acquire(self, bed_id: str) -> bool:
        key = self.keys.lease(bed_id)
        sent = time.monotonic()
        got = await self.redis.set(key, self.id, nx=True, px=LEASE_TTL_MS)
        if not got:
            # Our own lease from before a restart: ours again, but the state must be rebuilt.
            got = bool(await self._renew(keys=[key], args=[self.id, LEASE_TTL_MS]))
        if not got:
            return False
        self.taking[bed_id] = []
        try:
            await self._take_over(bed_id, sent + LEASE_TTL_S - SAFETY_S)
        except BaseException:
            self.taking.pop(bed_id, None)
            self.owned.pop(bed_id, None)
            # Half-rebuilt state must not judge or tick: the bed is not ours after all.
            self.port.pipeline.release_bed(bed_id)
            with contextlib.suppress(Exception):
                await self._release(keys=[key], args=[self.id])
            raise
        return True

    async def _take_over(self, bed_id: str, until: float) -> None:
        """Rebuild the bed's alarm state from the store (rule 4), then judge what waited."""
        self.remote.forget_bed(bed_id)
        devices = self._bed_devices.get(bed_id)
        if devices is None:
            beds = await self.store.list_beds()
            devices = next((b["devices"] for b in beds if b["id"] == bed_id), [])
        raw = await self.redis.hmget(self.keys.seen, devices) if devices else []
        last_seen = {d: float(v) if v else 0.0 for d, v in zip(devices, raw, strict=True)}

        def release() -> list[Held]:
            # Called between the replay and the held items, with no await in between: from
            # here on the bed is judged here, and nothing that arrived meanwhile is lost.
            held = self.taking.pop(bed_id, [])
            self.owned[bed_id] = until
            return held

        await self.port.pipeline.adopt_bed(bed_id, last_seen=last_seen, release=release)

    def drop(self, bed_id: str) -> None:
        """Let go of a bed without ending its alarms: the next owner restores them."""
        self.owned.pop(bed_id, None)
        self.remote.keep(self.port.pipeline.release_bed(bed_id))

    async def release_all(self) -> None:
        """A clean stop: hand every bed over at once, without waiting for the leases to expire."""
        for bed_id in list(self.owned):
            with contextlib.suppress(Exception):
                await self._release(keys=[self.keys.lease(bed_id)], args=[self.id])
            self.drop(bed_id)
