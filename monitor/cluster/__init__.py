"""Multi-instance mode: several monitors share PostgreSQL (storage) and Redis (fan-out and
ownership). Started only with ``--redis`` (VIGIL_REDIS_URL); without it nothing here runs,
and nothing outside this package names it but the composition root (monitor.app), which
builds the ``Cluster`` before the pipeline and gives it to the pipeline as its gate and relay.

Modules: ``codec`` (the bus messages, typed, and their wire text), ``bus`` (publishing and
listening), ``rpc`` (alarm commands sent to a bed's owner), ``leases`` (ownership and
takeover), ``gate`` (the ``Cluster``: gate, relay and lifecycle), ``port`` (``Pipeline``,
all the cluster may ask of this instance's pipeline).

Rules
-----
1. Every instance accepts devices and panels and stores readings in PostgreSQL; an ack goes to
   the device after the commit, exactly as in single-instance mode.
2. Fan-out. Every reading, alarm change and session change an instance publishes to its own
   panels (monitor.pipeline.fanout) is also published on one Redis channel (``{prefix}:bus``) as data
   with a named kind (``Kind``), tagged with the instance id; every other instance hands it to
   its panels. A panel therefore sees each event once, whichever instance it is connected to.
   Readings travel as exact data so the owner judges them with the same floats the origin
   stored; receivers rebuild the identical feed text. Nothing is read back out of feed text.
3. Ownership. The alarm state of a bed (all its sessions, devices and alarms) lives in exactly
   one instance: the holder of the Redis lease ``{prefix}:lease:{bed}`` (SET NX PX, renewed
   every second, TTL 6 s). ``Cluster`` is the alarm stage's gate (monitor.pipeline.gate.Gate):
   the plain engine judges a bed only where the gate routes it "here"; everything the engine
   needs (readings, device activity, rejected frames, session changes) reaches the owner over
   the bus. Alarm commands (ack, audio pause) are sent to the owner and answered over Redis.
4. Takeover. A lease that is not renewed (owner killed) expires within 6 s; a live instance
   takes it within about 2 s more (at once if one of the bed's devices is connected to it).
   The new owner rebuilds the bed's state from PostgreSQL, not from memory, exactly as a
   restart does (``Pipeline.adopt_bed``; monitor.pipeline.alarm_loop, rule 3), with the devices'
   last-seen times from Redis. Alarm ids are deterministic (bed, signal, direction, device
   time), so a replay meets the alarms already stored instead of raising them again: no alarm
   lost, none doubled; a backlog stored during the gap is replayed with the rest.
   While a takeover runs, whatever arrives for the bed is held and judged after it.
5. A lease found lost (taken, expired, or renewed too late) releases the bed from the alarm
   stage at once (``Pipeline.release_bed``: engine state, checkpoint alarms, watched
   session), without ending its alarms: they belong to the next owner, and a command for
   them that reaches this instance is sent there. If Redis cannot be reached
   the owner keeps judging the beds it holds (a doubled alarm is safer than a lost one) and
   panels are dropped once the bus is back, so they reload a consistent snapshot.
6. Clocks: device time judges physiology as everywhere; technical rules use the owner's clock
   and the ``received_at``/seen times stamped by the receiving instance. Keep the instances'
   clocks in sync (NTP), as for any cluster.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from monitor.cluster.codec import Kind
from monitor.cluster.gate import Cluster
from monitor.cluster.port import Pipeline
from monitor.records.store import Store
from monitor.settings import Settings


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
