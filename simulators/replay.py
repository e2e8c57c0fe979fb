"""Replay a recording as a device: `python -m simulators replay PATH --device ... --token ... --url ...`.

The readings come from monitor.records.recordings (the same stream `monitor alarm-report` judges):
continuous values held to 1 Hz, cuff triples as separate "nibp" readings. Device time of
the first row is ``--start``, by default the present minus the recording's length, so no
reading lies in the future; ``--speed X`` sends them X times faster than their spacing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.records.recordings import RecordedReading, duration, expand, load_rows
from simulators.client import DeviceClient, SeqStore

log = logging.getLogger("simulators.replay")

HEARTBEAT_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    start: float  # device time of the recording's first row
    readings: list[RecordedReading]


def plan_replay(
    path: str | Path,
    *,
    start: float | None = None,
    now: float,
    from_s: float | None = None,
    until_s: float | None = None,
) -> ReplayPlan:
    """Which readings to send and the device time of t=0 (pure apart from reading the file)."""
    rows = load_rows(path)
    readings = expand(rows)
    if from_s is not None:
        readings = [r for r in readings if r.t >= from_s]
    if until_s is not None:
        readings = [r for r in readings if r.t < until_s]
    return ReplayPlan(now - duration(rows) if start is None else start, readings)


async def replay(
    plan: ReplayPlan,
    client: DeviceClient,
    *,
    speed: float = 1.0,
    drain_timeout_s: float | None = None,
) -> bool:
    """Send the plan's readings at their (scaled) spacing; True when all were acked."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    client.start()
    readings = plan.readings
    if not readings:
        await client.close()
        return True
    t_first = readings[0].t
    wall0 = time.monotonic()
    last_hb = wall0
    i = 0
    while i < len(readings):
        if client.failure is not None:
            raise client.failure
        elapsed = (time.monotonic() - wall0) * speed
        while i < len(readings) and readings[i].t - t_first <= elapsed:
            r = readings[i]
            client.submit(plan.start + r.t, r.values, r.source)
            i += 1
        now = time.monotonic()
        if now - last_hb >= HEARTBEAT_EVERY_S:
            client.heartbeat(plan.start + t_first + elapsed)
            last_hb = now
        if i < len(readings):
            wait = (readings[i].t - t_first) / speed - (time.monotonic() - wall0)
            await asyncio.sleep(min(max(wait, 0.0), 1.0))
    timeout = drain_timeout_s if drain_timeout_s is not None else 30.0 + len(readings) / 500
    ok = await client.wait_drained(timeout)
    await client.close()
    log.info("replay done: %s", client.stats.summary())
    return ok and client.stats.dropped == 0


async def run_replay(
    path: str,
    *,
    device: str,
    token: str,
    url: str,
    speed: float = 1.0,
    start: float | None = None,
    state_dir: Path,
    from_s: float | None = None,
    until_s: float | None = None,
    window: int = 512,
) -> int:
    plan = plan_replay(path, start=start, now=time.time(), from_s=from_s, until_s=until_s)
    client = DeviceClient(
        url,
        device,
        token,
        seq_store=SeqStore.for_device(state_dir, device),
        window=window,
        fail_on_auth=True,
    )
    log.info(
        "replaying %d readings from %s as %s, first row at %s, speed %g",
        len(plan.readings),
        path,
        device,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(plan.start)),
        speed,
    )
    try:
        ok = await replay(plan, client, speed=speed)
    except Exception as exc:
        await client.close()
        log.error("replay failed: %s", exc)
        return 1
    stats = client.stats
    print(
        f"replay: {len(plan.readings)} readings, acked {stats.acked}, rejected {stats.dropped}, "
        f"resent {stats.resent}, connections {stats.connects}",
        flush=True,
    )
    if stats.dropped:
        return 2
    return 0 if ok else 1
