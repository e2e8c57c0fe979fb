"""Capacity: the most beds at 1 Hz one monitor process holds with p99 device->ack <= 100 ms
and p99 device->feed <= 100 ms (one panel). Ramp upward, same connections kept, each step
warmed up then measured; a step holds only if every bed kept its 1 Hz, nothing was refused and
>= 99 % of frames were answered (and fed) inside the window. The baseline is the same ramp
against the bare endpoint (acks only: it has no feed). Shipped settings, SQLite FULL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import common, loadgen, runner
from bench.results import Row, Section

LIMIT_MS = 100.0
GOAL = 5000
# Server CPU per reading against the bare endpoint's at the same load: the bound and the aim.
CPU_GOAL = 3.0
CPU_AIM = 2.0


def _ramp(
    server: common.ServerProcess, devices: list[Any], feed_token: str | None, p: dict[str, Any]
) -> list[dict[str, Any]]:
    with common.CpuSampler(server.pid) as cpu:
        r = runner.in_process(
            loadgen.paced,
            {
                "url": server.ws_url,
                "devices": devices,
                "feed_token": feed_token,
                "steps": p["steps"],
                "warmup_s": p["warmup_s"],
                "duration_s": p["duration_s"],
                "stop_when": {"p99_ms": LIMIT_MS},
            },
            timeout=900,
        )
    for m in r["steps"]:
        m["server_cpu"] = round(cpu.cpu_between(*m["window"]), 2)
        m["holds"] = loadgen.passes(m, LIMIT_MS)
    return list(r["steps"])


def _cpu_per_reading_us(m: dict[str, Any]) -> float:
    """Server CPU (cores over the measured window) per reading answered, in µs."""
    rate = m["ack"]["n"] / max(m["window"][1] - m["window"][0], 1e-9)
    return m["server_cpu"] / rate * 1e6 if rate else float("nan")


def _held(steps: list[dict[str, Any]]) -> tuple[int, bool]:
    """Largest step that held before the first failure; True when the ramp never failed."""
    best = 0
    for m in steps:
        if not m["holds"]:
            return best, False
        best = m["beds"]
    return best, True


def _line(label: str, m: dict[str, Any]) -> str:
    feed = m.get("feed")
    ftxt = f"{feed['p50_ms']:.1f}/{feed['p99_ms']:.1f}" if feed else "-"
    return (
        f"| {label} | {m['beds']:,} | {m['ack']['p50_ms']:.1f}/{m['ack']['p99_ms']:.1f} | {ftxt} "
        f"| {m['sent']:,}/{m['expected']:,} | {m['server_cpu']:.2f} | {m['client_cpu']:.2f} "
        f"| {m['connect_s']:.1f} | {'yes' if m['holds'] else 'no'} |"
    )


def run(work: Path, quick: bool) -> Section:
    if quick:
        p = {"steps": [10, 30], "warmup_s": 1.0, "duration_s": 2.0}
    else:
        p = {
            "steps": [500, 1000, 1500, 2000, 3000, 4000, 5000, 5500, 6000, 7000, 8000],
            "warmup_s": 3.0,
            "duration_s": 8.0,
        }
    n = max(p["steps"])
    db = common.sqlite_url(work, "capacity.db")
    fleet = common.seed(db, common.device_names(n))
    with common.bare_server(work).start() as bare:
        bare_steps = _ramp(bare, fleet.devices, None, p)
    with common.monitor_server(work, db).start() as mon:
        token = common.login(mon.base_url)
        steps = _ramp(mon, fleet.devices, token, p)
    held, never_failed = _held(steps)
    bare_held, bare_never = _held(bare_steps)
    s = Section("Capacity")
    s.rows.append(
        Row(
            "beds at 1 Hz, p99 ack and feed ≤ 100 ms",
            held,
            "beds",
            bare_held,
            "bare ws, ack ≤ 100 ms" + (" (ramp top)" if bare_never else ""),
            goal=f"≥ {GOAL:,}" if not quick else "(quick run)",
            ok=(held >= GOAL) if not quick else None,
            note="held at every step (ramp top)" if never_failed else "",
        )
    )
    # CPU per reading at one load both ramps reached (1,000 beds, or the quick run's top).
    at = 1000 if not quick else max(p["steps"])
    mon_at = next((m for m in steps if m["beds"] == at), None)
    bare_at = next((m for m in bare_steps if m["beds"] == at), None)
    if mon_at is not None and bare_at is not None:
        mon_us, bare_us = _cpu_per_reading_us(mon_at), _cpu_per_reading_us(bare_at)
        s.rows.append(
            Row(
                f"server CPU per reading, {at:,} beds at 1 Hz",
                mon_us,
                "µs",
                bare_us,
                "bare ws, same load",
                goal=f"≤ {CPU_GOAL:g}× (goal {CPU_AIM:g}×)" if not quick else "(quick run)",
                ok=(mon_us <= CPU_GOAL * bare_us) if not quick else None,
            )
        )
    s.details += [
        f"- Ramp {', '.join(f'{x:,}' for x in p['steps'])} beds; {p['warmup_s']:g} s warm-up and "
        f"{p['duration_s']:g} s measured per step; stops after the first step that fails.",
        "",
        "| server | beds | ack p50/p99 ms | feed p50/p99 ms | frames sent/expected "
        "| server CPU | client CPU | connect s | holds |",
        "|---|---|---|---|---|---|---|---|---|",
        *[_line("bare", m) for m in bare_steps],
        *[_line("monitor", m) for m in steps],
    ]
    s.raw = {"bare": bare_steps, "monitor": steps, "params": p}
    return s
