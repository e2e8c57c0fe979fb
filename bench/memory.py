"""Memory: the monitor's RSS over an 8-hour session of 64 beds, run with time warp.

The simulators' own ward (patients, scenarios, cuff cycles, a nurse opening and closing
sessions over the API, alarms) runs at ``speed`` times real time, its device time starting
8 hours in the past and ending at the present. RSS is sampled from /proc once a second.
Growth is measured after warm-up (the first device hour): the median RSS over the last eighth
of the run against the median over the second eighth. The per-device flood limit is lifted
(a warped device sends ``speed`` readings a second).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import common, loadgen, runner
from bench.results import Row, Section

GOAL = 0.10


def run(work: Path, quick: bool, hours: float | None = None, speed: float | None = None) -> Section:
    from simulators.demo import bed_id, device_id

    beds = 64
    hours = hours or (0.25 if quick else 8.0)
    # 72×: 64 beds send ~4.6k readings/s, below the monitor's flood rate, so RSS measures
    # what the monitor keeps, not a backlog of a saturated pipeline.
    speed = speed or (60.0 if quick else 72.0)
    pairs = [(device_id(i), bed_id(i)) for i in range(1, beds + 1)]
    db = common.sqlite_url(work, "memory.db")
    fleet = common.seed(db, pairs)
    tokens = {d: t for d, _b, t in fleet.devices}
    state = work / "sim-state"
    with common.monitor_server(work, db, common.UNLIMITED_RATE).start() as mon:
        with common.CpuSampler(mon.pid, every_s=1.0) as samp:
            r = runner.in_process(
                loadgen.warp_ward,
                {
                    "url": mon.ws_url,
                    "api": mon.base_url,
                    "tokens": tokens,
                    "beds": beds,
                    "speed": speed,
                    "device_hours": hours,
                    "state_dir": str(state),
                    "user": common.NURSE[0],
                    "password": common.NURSE[1],
                },
                timeout=hours * 3600 / speed + 300,
            )
        stored = _count(db)
    samples = samp.samples
    t_start, t_end = samples[0][0], samples[-1][0]
    span = t_end - t_start
    # RSS swings with the backlog in flight near saturation: compare medians of whole
    # eighths, the one right after warm-up (the first device hour) and the last one.
    near_warm = [s[2] for s in samples if t_start + span / 8 <= s[0] <= t_start + span / 4]
    tail = [s[2] for s in samples if s[0] >= t_end - span / 8]
    warm_rss = statistics.median(near_warm)
    end_rss = statistics.median(tail)
    peak = max(s[2] for s in samples)
    expected = beds * hours * 3600
    growth = (end_rss - warm_rss) / warm_rss
    mib = 1024 * 1024
    s = Section("Memory")
    s.rows.append(
        Row(
            f"monitor RSS, last eighth of {hours:g} h × {beds} beds (median)",
            end_rss / mib,
            "MiB",
            warm_rss / mib,
            "median RSS, 2nd eighth (after warm-up)",
            compare="delta",
            goal="growth ≤ 10 %",
            ok=growth <= GOAL if not quick else None,
        )
    )
    s.details += [
        f"- {beds} beds, {hours:g} device hours at {speed:g}× ({r['wall_s']:.0f} s wall); "
        f"{stored:,} readings stored (≈ {stored / expected:.0%} of {expected:,.0f} 1 Hz readings"
        " of device time: the rest were still in the devices' buffers or in gaps of the "
        "scenarios); peak RSS "
        f"{peak / mib:.1f} MiB; RSS at start {samples[0][2] / mib:.1f} MiB.",
        "- RSS, MiB, every eighth of the run: "
        + ", ".join(f"{_at(samples, t_start + span * k / 8) / mib:.1f}" for k in range(9))
        + ".",
    ]
    s.raw = {"samples": [(round(a, 1), b, c) for a, b, c in samples], "stored": stored}
    return s


def _at(samples: list[tuple[float, float, int]], t: float) -> int:
    return min(samples, key=lambda s: abs(s[0] - t))[2]


def _count(db_url: str) -> int:
    import sqlite3

    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return int(conn.execute("select count(*) from readings").fetchone()[0])
