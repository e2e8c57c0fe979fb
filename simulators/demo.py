"""A simulated ward: N beds, each a patient, a scenario and a device, at once.

Each bed runs sessions back to back (baseline -> infusion -> recovery, then a short gap
with an empty chair), a fresh patient each time. Beds start at staggered points of their
sessions so a panel shows a realistic ward (different phases, a story unfolding) within a
minute. With nurse credentials the phases are driven through the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.client import DeviceClient, SeqStore
from simulators.clock import WarpClock
from simulators.device import CuffConfig, DeviceModel
from simulators.nurse import Nurse, NurseAction, checklist_data, session_script
from simulators.physiology import MINUTE, Timeline
from simulators.scenarios import SCENARIOS, Plan, make_plan

log = logging.getLogger("simulators.demo")

# The ward's default mix, bed by bed: mostly ordinary sessions with the stories between. The
# first six (the `make demo` ward) tell the alarm story within three minutes: a hypertensive
# surge and a desaturation (physiological alarms to acknowledge), a device that goes silent
# and comes back (a technical alarm that clears), and a bed in recovery (bed 3).
DEFAULT_MIX: tuple[str, ...] = (
    "normal",
    "hypertensive_surge",
    "typical",
    "desaturation",
    "device_silent",
    "sustained_tachycardia",
    "normal",
    "probe_off_storm",
    "bradycardia",
    "stale_cuff",
    "network_flapping",
    "typical",
)
# Where beds without a story start, as a fraction of the session, so the ward shows every
# phase at once (the stories themselves all unfold during infusions).
_UNEVENTFUL_AT = (0.02, 0.85, 0.97, 0.3, 0.6, 0.45)
# Eventful beds start this long before the change that alarms (a story's last shift: the
# SpO2 fall of a desaturation comes a minute after its breathing slows), so the alarm comes
# within the demo's first three minutes.
STORY_LEAD_S = 45.0
GAP_S = 120.0


def bed_id(i: int) -> str:
    return f"bed-{i}"


def device_id(i: int) -> str:
    return f"sim-bed-{i}-mon"


def demo_devices_csv(beds: int) -> str:
    """The CSV `python -m monitor import-devices` takes: header device_id,bed_id."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["device_id", "bed_id"])
    for i in range(1, beds + 1):
        w.writerow([device_id(i), bed_id(i)])
    return buf.getvalue()


def read_tokens(path: Path) -> dict[str, str]:
    """``device_id,token`` lines as `import-devices` prints them (header optional)."""
    out: dict[str, str] = {}
    for row in csv.reader(path.read_text().splitlines()):
        if len(row) < 2 or row[0].strip() in ("", "device_id"):
            continue
        out[row[0].strip()] = row[1].strip()
    return out


@dataclass(frozen=True, slots=True)
class BedSpec:
    index: int
    bed_id: str
    device_id: str
    scenario: str
    seed: int
    offset_s: float  # session second the bed's first session is at when the demo starts


def plan_beds(
    beds: int,
    *,
    seed: int = 0,
    scenarios: Iterable[str] | None = None,
    timeline: Timeline | None = None,
    stagger: bool = True,
) -> list[BedSpec]:
    """Which scenario each bed runs and where in its session it starts (pure)."""
    tl = timeline or Timeline()
    mix = list(scenarios) if scenarios else list(DEFAULT_MIX)
    for name in mix:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    specs: list[BedSpec] = []
    uneventful = 0
    for i in range(1, beds + 1):
        name = mix[(i - 1) % len(mix)]
        bed_seed = seed * 1000 + i
        offset = 0.0
        if stagger:
            plan = make_plan(name, bed_seed, tl)
            story = plan.story_start
            # "typical" may hold a spontaneous surge; it stays a background bed.
            if story is not None and name != "typical":
                focus = max((sh.start for sh in plan.shifts), default=story)
                offset = max(0.0, focus - STORY_LEAD_S)
            else:
                offset = round(_UNEVENTFUL_AT[uneventful % len(_UNEVENTFUL_AT)] * tl.end)
                uneventful += 1
        specs.append(BedSpec(i, bed_id(i), device_id(i), name, bed_seed, offset))
    return specs


class BedRunner:
    """Feeds one bed's device model to its client in (warped) device time."""

    def __init__(
        self,
        spec: BedSpec,
        client: DeviceClient,
        clock: WarpClock,
        *,
        nurse: Nurse | None = None,
        timeline: Timeline | None = None,
        cuff: CuffConfig | None = None,
        sessions: int | None = None,
        gap_s: float = GAP_S,
        protocol: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.protocol = protocol
        self.client = client
        self.clock = clock
        self.nurse = nurse
        self.timeline = protocol_timeline(timeline or Timeline(), protocol)
        self.cuff = cuff or CuffConfig()
        self.sessions = sessions
        self.gap_s = gap_s
        self.phase = "starting"
        self.session_id: str | None = None
        self._actions: asyncio.Queue[tuple[NurseAction, float, Plan] | None] = asyncio.Queue()

    async def run(self) -> None:
        nurse_task = asyncio.create_task(self._nurse_worker()) if self.nurse else None
        try:
            start = self.clock.now() - self.spec.offset_s
            first = self.spec.offset_s
            cycle = 0
            while self.sessions is None or cycle < self.sessions:
                plan = make_plan(self.spec.scenario, self.spec.seed + 7919 * cycle, self.timeline)
                await self._session(plan, start, first, cycle)
                cycle += 1
                if self.sessions is not None and cycle >= self.sessions:
                    break
                start = start + self.timeline.end + self.gap_s
                await self._empty_chair(start)
                first = -1.0
        finally:
            if nurse_task is not None:
                await self._actions.put(None)
                with contextlib.suppress(asyncio.CancelledError):
                    await nurse_task

    async def _session(self, plan: Plan, start: float, first: float, cycle: int) -> None:
        model = DeviceModel(plan, self.cuff)
        tl = plan.timeline
        actions = session_script(plan, self.protocol)
        if first > tl.infusion_start and self.protocol is not None:
            # Joining after dosing began: the pre-dose cuff BP the protocol's gate wants is sent
            # first (late, as store-and-forward), before the nurse's backdated dosing event.
            predose = model.cuff_readings(-1.0, tl.infusion_start)
            if predose:
                e = predose[-1]
                self.client.submit(start + e.s, e.values, e.source)
        for a in [a for a in actions if a.s <= first]:
            await self._actions.put((a, start, plan))
        actions = [a for a in actions if a.s > first]
        prev = -1.0
        if first > 0:
            prev = first - 1e-6  # include the reading at the starting second
            # Joining mid-session, the monitor already had a blood pressure: send the last
            # cuff reading (late, as store-and-forward) so the panel shows one at once.
            earlier = model.cuff_readings(-1.0, prev)
            if earlier:
                e = earlier[-1]
                self.client.submit(start + e.s, e.values, e.source)
        while prev < tl.end:
            cur = min(self.clock.now() - start, tl.end)
            if cur > prev:
                self.client.set_link(plan.link_up(cur))
                for e in model.emissions(prev, cur):
                    self.client.submit(start + e.s, e.values, e.source)
                beats = model.heartbeat_times(prev, cur)
                if beats:
                    self.client.heartbeat(start + beats[-1])
                while actions and actions[0].s <= cur:
                    await self._actions.put((actions.pop(0), start, plan))
                self.phase = tl.phase_at(cur)
                prev = cur
            nxt = start + math.floor(prev) + 1
            await asyncio.sleep(min(max(self.clock.seconds_until(nxt), 0.005), 1.0))
        self.client.set_link(True)
        self.phase = "ended"

    async def _empty_chair(self, until: float) -> None:
        """Between patients the monitor is on but measures nothing: heartbeats only."""
        self.phase = "empty"
        while (now := self.clock.now()) < until:
            self.client.heartbeat(now)
            await asyncio.sleep(min(max(self.clock.seconds_until(now + 5.0), 0.005), 5.0))

    async def _nurse_worker(self) -> None:
        assert self.nurse is not None
        while (item := await self._actions.get()) is not None:
            action, start, plan = item
            try:
                await self._perform(action, start, plan)
            except Exception as exc:  # the ward goes on if one HTTP call fails
                log.warning("%s: nurse action %s failed: %s", self.spec.bed_id, action.type, exc)

    async def _perform(self, action: NurseAction, start: float, plan: Plan) -> None:
        assert self.nurse is not None
        at = start + action.s
        if action.type == "admit":
            p = plan.patient
            self.session_id = await self.nurse.admit(
                self.spec.bed_id,
                f"SIM {self.spec.bed_id} #{p.seed}",
                p.age,
                {
                    "hr": round(p.hr0),
                    "sbp": round(p.sbp0),
                    "dbp": round(p.dbp0),
                    "spo2": round(p.spo20),
                },
                protocol=self.protocol["id"] if self.protocol else None,
                at=at if self.protocol else None,
            )
            return
        if self.session_id is None:
            return
        data = action.data or None
        if action.type == "checklist" and self.protocol is not None:
            data = checklist_data(self.protocol, at, 55.0 + 40.0 * (plan.patient.seed % 100) / 100)
        await self.nurse.event(self.session_id, action.type, at, data)
        if action.type == "end":
            self.session_id = None


def protocol_timeline(tl: Timeline, protocol: dict[str, Any] | None) -> Timeline:
    """The session layout a protocol asks for: its planned dosing time, and a recovery long
    enough for its discharge time (docs/protocols.md); the layout given when none."""
    if protocol is None:
        return tl
    infusion_s = tl.infusion_s
    planned = ((protocol.get("phases") or {}).get("infusion") or {}).get("planned_min")
    if planned:
        infusion_s = planned * MINUTE
    recovery_s = tl.recovery_s
    after = (protocol.get("discharge") or {}).get("after")
    if after:
        wait = after["min"] * MINUTE + MINUTE  # a minute's margin past the earliest discharge
        if after["anchor"] == "infusion_start":
            recovery_s = max(recovery_s, wait - infusion_s)
        elif after["anchor"] == "infusion_stop":
            recovery_s = max(recovery_s, wait)
    return Timeline(tl.baseline_s, infusion_s, recovery_s)


async def run_demo(
    *,
    beds: int,
    url: str,
    tokens: dict[str, str],
    speed: float = 1.0,
    seed: int = 0,
    scenarios: list[str] | None = None,
    nurse: Nurse | None = None,
    timeline: Timeline | None = None,
    cuff: CuffConfig | None = None,
    state_dir: Path = Path("data/sim-state"),
    sessions: int | None = None,
    backlog_s: float | None = None,
    stagger: bool = True,
    status_every_s: float = 10.0,
    protocols: list[str] | None = None,
) -> dict[str, DeviceClient]:
    tl = timeline or Timeline()
    known: dict[str, dict[str, Any]] = {}
    if protocols and nurse is not None:
        known = await nurse.protocols()
        unknown = [p for p in protocols if p not in known]
        if unknown:
            raise SystemExit(f"the monitor has no protocol {', '.join(unknown)}")
    specs = plan_beds(beds, seed=seed, scenarios=scenarios, timeline=tl, stagger=stagger)
    missing = [s.device_id for s in specs if s.device_id not in tokens]
    if missing:
        raise SystemExit(
            f"no token for {', '.join(missing)}: register them with "
            f"`python -m simulators demo-devices --beds {beds} > devices.csv` and "
            "`python -m monitor import-devices devices.csv > TOKENS.csv`, then pass --tokens TOKENS.csv"
        )
    if backlog_s is None:
        # Warped device time must start in the past so it never passes the wall clock:
        # one session plus a gap of history lets a warped ward run a full cycle.
        longest = max([tl.end, *(protocol_timeline(tl, p).end for p in known.values())])
        backlog_s = longest + GAP_S if speed > 1 else 0.0
    clock = WarpClock(speed, device_start=None)
    clock.device_start = clock.wall_start - backlog_s
    clients: dict[str, DeviceClient] = {}
    runners: list[BedRunner] = []
    for i, spec in enumerate(specs):
        # The ward runs the protocols given in turn, bed by bed.
        protocol = known[protocols[i % len(protocols)]] if protocols and known else None
        client = DeviceClient(
            url,
            spec.device_id,
            tokens[spec.device_id],
            seq_store=SeqStore.for_device(state_dir, spec.device_id),
        )
        clients[spec.device_id] = client
        runners.append(
            BedRunner(
                spec,
                client,
                clock,
                nurse=nurse,
                timeline=tl,
                cuff=cuff,
                sessions=sessions,
                protocol=protocol,
            )
        )
        log.info(
            "%s: %s, scenario %s, starting at session minute %.1f",
            spec.bed_id,
            spec.device_id,
            spec.scenario,
            spec.offset_s / 60,
        )
    for c in clients.values():
        c.start()

    async def status() -> None:
        while True:
            await asyncio.sleep(status_every_s)
            for r in runners:
                log.info(
                    "%s %-22s %-9s %s pending=%d",
                    r.spec.bed_id,
                    r.spec.scenario,
                    r.phase,
                    r.client.stats.summary(),
                    r.client.pending,
                )

    status_task = asyncio.create_task(status())
    try:
        await asyncio.gather(*(r.run() for r in runners))
        for c in clients.values():
            await c.wait_drained(30.0)
    finally:
        status_task.cancel()
        for c in clients.values():
            await c.close()
        if nurse is not None:
            await nurse.aclose()
    return clients
