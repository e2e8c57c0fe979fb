"""The demo's first three minutes (docs/simulators.md "The demo's first minutes"): an alarm
to acknowledge, a bed in recovery, and a technical alarm that clears."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.alarms.config import load_config
from simulators.demo import BedSpec, demo_devices_csv, plan_beds, protocol_timeline
from simulators.device import DeviceModel
from simulators.physiology import MINUTE, Timeline
from simulators.scenarios import Plan, make_plan
from tests.conftest import terminate

CONFIG = load_config(None)
PUBLIC = {pid: p.public() for pid, p in CONFIG.protocols.items()}
# `make demo`: six beds, the two protocols in turn (scripts/demo.sh).
BEDS = 6
PROTOCOLS = ("iv-ketamine", "esketamine")
TIMELINES = [protocol_timeline(Timeline(), PUBLIC[p]) for p in PROTOCOLS]
STORY_S = 3 * MINUTE
# The end-to-end run warps device time 5x (three minutes in 36 s). Technical alarms are
# judged on the monitor's clock, so the monitor's silence must outlast the no-data timeout
# in wall time too: 75 s of device time is 15 s of wall time, against a 10 s timeout.
SPEED = 5.0
# A warped device sends faster than the default flood limit allows (docs/simulators.md).
FAST = {"device_rate_per_s": 100000, "device_rate_burst": 100000}
DRIVER, DRIVER_PW = "sim-driver", "sim-driver-password"


def _ward(seed: int) -> list[tuple[BedSpec, Plan]]:
    specs = plan_beds(BEDS, seed=seed, timelines=TIMELINES)
    return [
        (s, make_plan(s.scenario, s.seed, TIMELINES[(s.index - 1) % len(TIMELINES)])) for s in specs
    ]


def _spo2_alarm_after_s(spec: BedSpec, plan: Plan) -> float | None:
    """When, from the bed's start, the SpO2 the device reports has been below the medium
    limit in every reading for the medium delay (docs/alarms.md), if it does in 3 min."""
    limit = CONFIG.limits["spo2"].low.medium  # type: ignore[union-attr]
    delay = CONFIG.delays["spo2"]["medium"]
    onset: float | None = None
    em = DeviceModel(plan).emissions(spec.offset_s - 1e-6, spec.offset_s + STORY_S)
    for e in (e for e in em if e.source is None):
        if limit is not None and 0 < e.values.get("spo2", 100.0) < limit:
            onset = e.s if onset is None else onset
            if e.s - onset >= delay:
                return e.s - spec.offset_s
        else:
            onset = None
    return None


@pytest.mark.parametrize("seed", range(6))
def test_the_demo_ward_tells_its_story_in_the_first_three_minutes_for_any_seed(seed: int) -> None:
    """docs/simulators.md: from the start, a bed in recovery throughout; a desaturation alarm
    in minute 1-2; a monitor silent past the no-data timeout that speaks again in time."""
    ward = _ward(seed)
    tl_of = {s.bed_id: p.timeline for s, p in ward}
    recovering = [
        s.bed_id
        for s, _ in ward
        if {tl_of[s.bed_id].phase_at(s.offset_s + t) for t in (0.0, STORY_S)} == {"recovery"}
    ]
    assert recovering
    alarms = {s.bed_id: at for s, p in ward if (at := _spo2_alarm_after_s(s, p)) is not None}
    assert len(alarms) == 1 and all(MINUTE <= at <= 2 * MINUTE for at in alarms.values())
    timeout = CONFIG.technical.no_data.timeout_s
    silences = [
        (w.start - s.offset_s, w.end - s.offset_s)
        for s, p in ward
        for w in p.silent
        if s.offset_s <= w.start < s.offset_s + STORY_S
    ]
    assert silences
    start, end = silences[0]
    assert end - start >= SPEED * (timeout + 4)  # raised, even at the test's warp
    assert end <= 2.5 * MINUTE  # and cleared, with time to see it
    assert plan_beds(BEDS, seed=seed, timelines=TIMELINES) == [s for s, _ in ward]


def _poll_story(srv: Any, t0: float) -> tuple[dict[str, float], str | None]:
    """The simulated second (an upper bound: the demo starts after t0) each part of the
    story is first seen at, until all are or three simulated minutes have passed; and the
    id of the first alarm there is to acknowledge."""
    seen: dict[str, float] = {}
    to_ack: str | None = None
    while (elapsed := (time.time() - t0) * SPEED) <= STORY_S and len(seen) < 3:
        alarms = srv.get("/api/alarms")["alarms"]
        physio = [
            a
            for a in alarms
            if a["kind"] == "physiological"
            and a["priority"] in ("medium", "high")
            and a["ended_at"] is None
            and a["acknowledged_at"] is None
        ]
        if physio and to_ack is None:
            seen["physiological alarm"], to_ack = elapsed, physio[0]["id"]
        if any(
            a["kind"] == "technical" and a["signal"] == "device" and a["ended_at"] is not None
            for a in alarms
        ):
            seen.setdefault("technical alarm cleared", elapsed)
        sessions = srv.get("/api/sessions", open="true")["sessions"]
        if any(s["phase"] == "recovery" for s in sessions):
            seen.setdefault("recovery", elapsed)
        time.sleep(0.5)
    return seen, to_ack


def test_make_demo_shows_an_alarm_to_acknowledge_a_recovery_and_a_cleared_technical_alarm(
    app_factory: Any, tmp_path: Path
) -> None:
    """docs/simulators.md: within three (simulated) minutes of the demo's start the monitor
    holds an unacknowledged medium or high physiological alarm, a session in recovery, and a
    no-data technical alarm that has ended; the calm beds raise nothing above low."""
    # The demo is the process under test; the monitor is the app in this process.
    srv = app_factory(**FAST)
    lines = ["device_id,token"]
    for row in demo_devices_csv(BEDS).splitlines()[1:]:
        device, bed = row.split(",")
        lines.append(f"{device},{srv.add_device(device, bed)}")
    (tmp_path / "tokens.csv").write_text("\n".join(lines) + "\n")
    srv.add_user(DRIVER, "charge", DRIVER_PW)
    log = (tmp_path / "demo.log").open("wb")
    t0 = time.time()
    demo = subprocess.Popen(
        [sys.executable, "-m", "simulators", "demo", "--beds", str(BEDS), "--url", srv.ws_url,
         "--speed", str(SPEED), "--backlog", "300", "--tokens", "tokens.csv",
         "--user", DRIVER, "--password", DRIVER_PW, "--state-dir", "state",
         "--protocols", ",".join(PROTOCOLS)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        seen, to_ack = _poll_story(srv, t0)
    finally:
        terminate(demo, grace=20)
        log.close()
    assert len(seen) == 3, (seen, (tmp_path / "demo.log").read_text()[-3000:])
    assert max(seen.values()) <= STORY_S
    calm = {s.bed_id for s in plan_beds(BEDS, timelines=TIMELINES) if s.scenario == "normal"}
    alarms = srv.get("/api/alarms")["alarms"]
    loud = [a for a in alarms if a["kind"] == "physiological" and a["priority"] != "low"]
    assert loud and not [a for a in loud if a["bed"] in calm], loud
    ack = srv.post(f"/api/alarms/{to_ack}/ack")
    assert ack.status_code == 200 and ack.json()["acknowledged_at"] is not None, ack.text
