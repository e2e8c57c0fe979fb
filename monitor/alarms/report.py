"""``python -m monitor alarm-report PATH [--config FILE] [--json]``: a recording judged offline.

The recording (CSV or WFDB numerics record, read by monitor.recordings exactly as a replay
sends it) goes through the alarm engine in device time. Beside the engine's alarms, the same
limits with no condition delay and no hysteresis ("naive") show what the delays and hysteresis
save. Only physiological alarms are reported: the technical rules are about a live connection,
which a file does not have.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.alarms.config import PHASES, ClinicConfig, load_config
from monitor.alarms.engine import PHYSIOLOGICAL, AlarmEngine
from monitor.model import PRIORITY_RANK, Alarm, Reading
from monitor.recordings import RecordedReading, Row, dropped, expand, load_rows

REPORT_BED = "recording"
REPORT_DEVICE = "recording"


@dataclass(frozen=True)
class ReportedAlarm:
    signal: str
    kind: str
    priority: str
    condition: str
    start_s: float
    end_s: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "kind": self.kind,
            "priority": self.priority,
            "condition": self.condition,
            "start_s": self.start_s,
            "end_s": self.end_s,
        }


def naive_config(config: ClinicConfig) -> ClinicConfig:
    """The same limits with no condition delay, no hysteresis, no off-delay, no latching and
    RR at face value. The rate judged is chosen as the engine chooses it (ECG HR when present,
    else the pulse), so naive and engine count the same tachycardia."""
    relative = tuple(r.model_copy(update={"delay_s": 0.0}) for r in config.relative)
    return config.model_copy(
        update={
            "delays": {},
            "hysteresis": {},
            "off_delays": {},
            "relative": relative,
            "latch_high": False,
            "respiration": config.respiration.model_copy(update={"enabled": False}),
        }
    )


def _to_reported(alarm: Alarm) -> ReportedAlarm:
    cleared = alarm.detail.get("cleared_at")
    end: float | None
    if isinstance(cleared, int | float):
        end = float(cleared)  # a latched alarm: its condition ended here
    else:
        end = alarm.ended_at
    return ReportedAlarm(
        signal=alarm.signal,
        kind=alarm.kind,
        priority=alarm.priority,
        condition=alarm.condition,
        start_s=alarm.started_at,
        end_s=end,
    )


def run_engine(
    readings: Sequence[RecordedReading],
    config: ClinicConfig,
    *,
    phase: str | None = None,
    baseline: Mapping[str, float] | None = None,
) -> list[ReportedAlarm]:
    """Physiological alarms the engine raises on a recording (device time = seconds from start)."""
    engine = AlarmEngine(config)
    engine.set_session(REPORT_BED, None, phase, baseline, None)
    final: dict[str, Alarm] = {}
    for seq, rec in enumerate(readings):
        reading = Reading(
            device_id=REPORT_DEVICE,
            seq=seq,
            ts=rec.t,
            received_at=rec.t,
            values=rec.values,
            source=rec.source,
            bed_id=REPORT_BED,
        )
        for alarm in engine.on_reading(reading):
            if alarm.kind == PHYSIOLOGICAL:
                final[alarm.id] = alarm
    out = [_to_reported(a) for a in final.values()]
    out.sort(key=lambda a: (a.start_s, a.signal, -PRIORITY_RANK[a.priority]))
    return out


@dataclass(frozen=True)
class Report:
    path: str
    rows: int
    readings: int
    dropped: int
    duration_s: float
    alarms: list[ReportedAlarm]
    naive_alarms: list[ReportedAlarm]

    def as_json(self) -> dict[str, Any]:
        return {
            "alarms": [a.as_json() for a in self.alarms],
            "naive_alarms": [a.as_json() for a in self.naive_alarms],
        }


def build_report(
    path: str | Path,
    config: ClinicConfig,
    *,
    phase: str | None = None,
    baseline: Mapping[str, float] | None = None,
) -> Report:
    rows: list[Row] = load_rows(path)
    readings = expand(rows)
    return Report(
        path=str(path),
        rows=len(rows),
        readings=len(readings),
        dropped=len(dropped(rows)),
        duration_s=readings[-1].t if readings else 0.0,
        alarms=run_engine(readings, config, phase=phase, baseline=baseline),
        naive_alarms=run_engine(readings, naive_config(config), phase=phase, baseline=baseline),
    )


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _by_priority(alarms: Sequence[ReportedAlarm]) -> str:
    counts = Counter(a.priority for a in alarms)
    return ", ".join(f"{p} {counts.get(p, 0)}" for p in ("high", "medium", "low"))


def format_text(report: Report) -> str:
    hours = max(1, math.ceil(report.duration_s / 3600.0)) if report.readings else 0
    lines = [
        f"Alarm report for {report.path}",
        f"  {report.rows} rows, {report.readings} readings over {report.duration_s / 3600:.1f} h, "
        f"{report.dropped} value sets dropped (the device protocol would reject them)",
        f"  engine (delays, hysteresis): {len(report.alarms)} alarms ({_by_priority(report.alarms)})",
        f"  naive (same limits, no delay, no hysteresis): {len(report.naive_alarms)} alarms "
        f"({_by_priority(report.naive_alarms)})",
        "",
        "Alarms started per hour (hour from the recording's start):",
        f"  {'hour':>4}  {'engine':>6}  {'naive':>6}",
    ]
    eng = Counter(int(a.start_s // 3600) for a in report.alarms)
    nai = Counter(int(a.start_s // 3600) for a in report.naive_alarms)
    for h in range(hours):
        lines.append(f"  {h:>4}  {eng.get(h, 0):>6}  {nai.get(h, 0):>6}")
    lines.append(f"  {'all':>4}  {len(report.alarms):>6}  {len(report.naive_alarms):>6}")
    lines += [
        "",
        "Engine alarms:",
        f"  {'start':>8}  {'end':>8}  {'signal':<6}  {'priority':<8}  condition",
    ]
    for a in report.alarms:
        end = _clock(a.end_s) if a.end_s is not None else "active"
        lines.append(
            f"  {_clock(a.start_s):>8}  {end:>8}  {a.signal:<6}  {a.priority:<8}  {a.condition}"
        )
    return "\n".join(lines) + "\n"


def _baseline_arg(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError("expected SIGNAL=VALUE[,SIGNAL=VALUE...]")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    return out


def alarm_report_main(argv: list[str]) -> int:
    """Entry point of ``python -m monitor alarm-report``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor alarm-report",
        description=(
            "Replay a recording (CSV t_seconds,hr,sbp,dbp,map,spo2,rr or a WFDB numerics record "
            "given without extension) through the alarm engine offline, in device time."
        ),
    )
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--config", metavar="FILE", help="clinic configuration (YAML)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--phase", choices=PHASES, help="judge with this session phase's limits (default: none)"
    )
    parser.add_argument(
        "--baseline",
        type=_baseline_arg,
        metavar="hr=70,sbp=120",
        help="patient baseline for the relative (advisory) rules",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        config = load_config(args.config)
        report = build_report(args.path, config, phase=args.phase, baseline=args.baseline)
    except (OSError, ValueError) as exc:
        print(f"alarm-report: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(report.as_json(), indent=1) + "\n")
    else:
        sys.stdout.write(format_text(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(alarm_report_main(sys.argv[1:]))
