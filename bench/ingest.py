"""Ingest throughput of the full pipeline versus a bare FastAPI websocket endpoint.

Same load generator, same connections, same window of readings in flight per connection.
Full pipeline = validate, store durably (SQLite, synchronous=FULL), evaluate alarms, fan out to
one panel (a feed client in the load generator's process, which must keep up: a panel dropped
for falling behind voids the figure). The per-device flood limit is lifted for both (a bedside
monitor sends 1-2 frames/s; this measures the pipeline, not the limiter).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import common, loadgen, runner
from bench.results import Row, Section


def _one(
    server: common.ServerProcess, devices: list[Any], feed_token: str | None, p: dict[str, Any]
) -> dict[str, Any]:
    with common.CpuSampler(server.pid) as cpu:
        r = runner.in_process(
            loadgen.flood,
            {
                "url": server.ws_url,
                "devices": devices,
                "window": p["window"],
                "warmup_s": p["warmup_s"],
                "duration_s": p["duration_s"],
                "feed_token": feed_token,
            },
            timeout=120,
        )
    r["server_cpu"] = round(cpu.cpu_between(*r["window"]), 2)
    return r


def run(work: Path, quick: bool) -> Section:
    p = (
        {"conns": 10, "window": 8, "warmup_s": 1.0, "duration_s": 2.0, "rounds": 1}
        if quick
        else {"conns": 50, "window": 32, "warmup_s": 2.0, "duration_s": 8.0, "rounds": 2}
    )
    pairs = common.device_names(p["conns"])
    bare_runs, full_runs = [], []
    for k in range(p["rounds"]):
        # A fresh database per round: the same seqs sent again would be acked as duplicates,
        # skipping storage, alarms and fan-out.
        db = common.sqlite_url(work, f"ingest-{k}.db")
        fleet = common.seed(db, pairs)
        with common.bare_server(work).start() as bare:
            bare_runs.append(_one(bare, fleet.devices, None, p))
        with common.monitor_server(work, db, common.UNLIMITED_RATE).start() as mon:
            token = common.login(mon.base_url)
            full_runs.append(_one(mon, fleet.devices, token, p))
    bare_rate = statistics.mean(r["acks_per_s"] for r in bare_runs)
    full_rate = statistics.mean(r["acks_per_s"] for r in full_runs)
    fed = statistics.mean(r["feed_per_s"] for r in full_runs)
    dropped = any(r["panel_dropped"] for r in full_runs)
    s = Section("Ingest throughput")
    s.rows.append(
        Row(
            "ingest, full pipeline (flood)",
            full_rate,
            "msg/s",
            bare_rate,
            "bare FastAPI ws, parse + ack",
            note="panel dropped: figure void" if dropped else "",
            ok=None if not dropped else False,
        )
    )
    s.details += [
        f"- {p['conns']} connections, {p['window']} readings in flight each, "
        f"{p['warmup_s']:g} s warm-up, {p['duration_s']:g} s measured, {p['rounds']} round(s); "
        "SQLite synchronous=FULL on disk.",
        f"- Bare endpoint: {bare_rate:,.0f} acks/s, server CPU "
        + ", ".join(f"{r['server_cpu']:.2f}" for r in bare_runs)
        + " cores; client CPU "
        + ", ".join(f"{r['client_cpu']:.2f}" for r in bare_runs)
        + ".",
        f"- Monitor: {full_rate:,.0f} acks/s, the panel received {fed:,.0f} readings/s"
        + (" (**the panel was dropped for falling behind**)" if dropped else "")
        + "; server CPU "
        + ", ".join(f"{r['server_cpu']:.2f}" for r in full_runs)
        + " cores; client CPU "
        + ", ".join(f"{r['client_cpu']:.2f}" for r in full_runs)
        + ".",
    ]
    s.raw = {"bare": bare_runs, "full": full_runs, "params": p}
    return s
