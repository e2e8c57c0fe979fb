"""Alarm latency: from sending the reading that completes an alarm condition to the alarm event
arriving on the feed, under a background ward at 1 Hz. Two conditions: a cuff systolic of 210
(no delay: that reading completes it) and SpO2 80 % held for the 10 s high-priority delay
(device time: the reading 10 s after the first low one completes it). The baseline is the
plain reading path in the same run: device -> feed latency of ordinary readings.
"""

from __future__ import annotations

from pathlib import Path

from bench import common, loadgen, runner
from bench.results import Row, Section


def run(work: Path, quick: bool) -> Section:
    p = (
        {"background": 10, "cuff": 3, "spo2": 3, "warmup_s": 2.0, "duration_s": 8.0}
        if quick
        else {"background": 1000, "cuff": 20, "spo2": 20, "warmup_s": 3.0, "duration_s": 60.0}
    )
    pairs = common.device_names(p["background"] + p["cuff"] + p["spo2"], prefix="a")
    db = common.sqlite_url(work, "alarms.db")
    fleet = common.seed(db, pairs)
    kinds = {}
    for i, (dev, _bed, _tok) in enumerate(fleet.devices):
        if i < p["cuff"]:
            kinds[dev] = "cuff"
        elif i < p["cuff"] + p["spo2"]:
            kinds[dev] = "spo2"
    with common.monitor_server(work, db).start() as mon:
        token = common.login(mon.base_url)
        r = runner.in_process(
            loadgen.paced,
            {
                "url": mon.ws_url,
                "devices": fleet.devices,
                "feed_token": token,
                "kinds": kinds,
                "steps": [len(fleet.devices)],
                "warmup_s": p["warmup_s"],
                "duration_s": p["duration_s"],
            },
            timeout=600,
        )
    m = r["steps"][0]
    feed, cuff, spo2 = m["feed"], m["alarm"]["cuff"], m["alarm"]["spo2"]
    s = Section("Alarm latency")
    for label, a in (("cuff systolic 210", cuff), ("SpO2 < 85 % for 10 s", spo2)):
        for q in ("p50", "p99"):
            s.rows.append(
                Row(
                    f"alarm on feed, {label}, {q}",
                    a[f"{q}_ms"],
                    "ms",
                    feed[f"{q}_ms"],
                    f"reading device→feed {q}",
                    goal="≤ 100 ms (p99)" if q == "p99" else "",
                    ok=(a["p99_ms"] <= 100.0) if q == "p99" and a["n"] else None,
                )
            )
    s.details += [
        f"- {len(fleet.devices):,} beds at 1 Hz ({p['background']:,} ordinary, {p['cuff']} raising"
        f" cuff alarms every 4 s, {p['spo2']} raising SpO2 alarms every 20 s); "
        f"{p['duration_s']:g} s measured after {p['warmup_s']:g} s warm-up.",
        f"- Samples: {cuff['n']} cuff alarms, {spo2['n']} SpO2 alarms, {feed['n']:,} readings; "
        f"max alarm latency {max(cuff['max_ms'], spo2['max_ms']):.1f} ms; "
        f"alarms on beds that should raise none: {m['unexpected_alarms']}.",
        f"- Device→ack in the same run: p50 {m['ack']['p50_ms']:.1f} ms, "
        f"p99 {m['ack']['p99_ms']:.1f} ms.",
    ]
    s.raw = {"measurement": m, "params": p}
    return s
