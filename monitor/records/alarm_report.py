"""``python -m monitor alarm-report PATH|--dir FOLDER [--config FILE] [--json]``: recordings
judged offline.

The recording (contract CSV, BIDMC numerics CSV or WFDB numerics record, read by
monitor.records.recordings exactly as a replay sends it) goes through the alarm engine in device time.
Beside the engine's alarms, the same limits with no condition delay, no hysteresis, no
off-delay and RR at face value ("naive") show what the engine's rules save. ``alarms`` and
``naive_alarms`` hold physiological alarms only; ``technical_alarms`` holds the one technical
rule judged on device time (HR and pulse disagree). The other technical rules are about a live
connection, which a file does not have. ``--dir`` reports every recording in a folder and the
totals (engine vs naive, per signal and per priority).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.alarms.config import PHASES, ClinicConfig, load_config
from monitor.alarms.engine import PHYSIOLOGICAL, TECHNICAL, AlarmEngine
from monitor.core.model import PRIORITY_RANK, Alarm, AlarmKind, Priority, Reading
from monitor.records.recordings import RecordedReading, Row, dropped, expand, load_rows

REPORT_BED = "recording"
REPORT_DEVICE = "recording"
PRIORITY_ORDER = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)


@dataclass(frozen=True)
class ReportedAlarm:
    signal: str
    kind: AlarmKind
    priority: Priority
    condition: str
    start_s: float
    end_s: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "kind": self.kind.value,
            "priority": self.priority.value,
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
    kind: AlarmKind = PHYSIOLOGICAL,
) -> list[ReportedAlarm]:
    """Alarms of ``kind`` the engine raises on a recording (device time = seconds from start)."""
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
            if alarm.kind is kind:
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
    technical_alarms: list[ReportedAlarm] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "alarms": [a.as_json() for a in self.alarms],
            "naive_alarms": [a.as_json() for a in self.naive_alarms],
            "technical_alarms": [a.as_json() for a in self.technical_alarms],
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
        technical_alarms=run_engine(
            readings, config, phase=phase, baseline=baseline, kind=TECHNICAL
        ),
    )


def recordings_in(folder: str | Path) -> list[Path]:
    """Every recording in a folder, by name: CSV files and WFDB records (their .hea)."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"{d} is not a folder")
    found = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".hea")]
    if not found:
        raise FileNotFoundError(f"no CSV file or WFDB record in {d}")
    return sorted(found, key=lambda p: p.name)


def _counts(alarms: Sequence[ReportedAlarm]) -> dict[str, Any]:
    return {
        "all": len(alarms),
        "by_signal": dict(sorted(Counter(a.signal for a in alarms).items())),
        "by_priority": {p.value: sum(1 for a in alarms if a.priority is p) for p in PRIORITY_ORDER},
    }


def totals(reports: Sequence[Report]) -> dict[str, Any]:
    """Engine vs naive over many recordings, per signal and per priority."""
    engine = [a for r in reports for a in r.alarms]
    naive = [a for r in reports for a in r.naive_alarms]
    technical = [a for r in reports for a in r.technical_alarms]
    return {
        "recordings": len(reports),
        "engine": _counts(engine),
        "naive": _counts(naive),
        "technical": _counts(technical),
        "engine_vs_naive": round(len(engine) / len(naive), 3) if naive else None,
    }


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _by_priority(alarms: Sequence[ReportedAlarm]) -> str:
    counts = Counter(a.priority for a in alarms)
    return ", ".join(f"{p} {counts.get(p, 0)}" for p in PRIORITY_ORDER)


def format_text(report: Report) -> str:
    hours = max(1, math.ceil(report.duration_s / 3600.0)) if report.readings else 0
    lines = [
        f"Alarm report for {report.path}",
        f"  {report.rows} rows, {report.readings} readings over {report.duration_s / 3600:.1f} h, "
        f"{report.dropped} value sets dropped (the device protocol would reject them)",
        f"  engine (delays, hysteresis, off-delay): {len(report.alarms)} alarms ({_by_priority(report.alarms)})",
        f"  naive (same limits, no delay, no hysteresis, no off-delay): {len(report.naive_alarms)} alarms "
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
    lines += _alarm_lines(report.alarms)
    if report.technical_alarms:
        lines += ["", "Technical alarms (judged on device time):"]
        lines += _alarm_lines(report.technical_alarms)
    return "\n".join(lines) + "\n"


def _alarm_lines(alarms: Sequence[ReportedAlarm]) -> list[str]:
    lines = []
    for a in alarms:
        end = _clock(a.end_s) if a.end_s is not None else "active"
        lines.append(
            f"  {_clock(a.start_s):>8}  {end:>8}  {a.signal:<6}  {a.priority:<8}  {a.condition}"
        )
    return lines


def format_totals(reports: Sequence[Report]) -> str:
    """The folder's totals: engine vs naive, per signal and per priority."""
    t = totals(reports)
    eng, nai = t["engine"], t["naive"]
    ratio = f"{100 * t['engine_vs_naive']:.0f} %" if t["engine_vs_naive"] is not None else "-"
    lines = [
        f"Totals over {t['recordings']} recordings: engine {eng['all']} alarms, "
        f"naive {nai['all']} (engine/naive {ratio}); technical {t['technical']['all']}",
        f"  {'recording':<28}  {'engine':>6}  {'naive':>6}  {'technical':>9}",
    ]
    for r in reports:
        lines.append(
            f"  {Path(r.path).name:<28}  {len(r.alarms):>6}  {len(r.naive_alarms):>6}"
            f"  {len(r.technical_alarms):>9}"
        )
    lines.append(f"  {'by signal':<28}  {'engine':>6}  {'naive':>6}")
    for signal in sorted(set(eng["by_signal"]) | set(nai["by_signal"])):
        lines.append(
            f"  {signal:<28}  {eng['by_signal'].get(signal, 0):>6}"
            f"  {nai['by_signal'].get(signal, 0):>6}"
        )
    lines.append(f"  {'by priority':<28}  {'engine':>6}  {'naive':>6}")
    for p in PRIORITY_ORDER:
        lines.append(f"  {p:<28}  {eng['by_priority'][p]:>6}  {nai['by_priority'][p]:>6}")
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
            "Replay a recording (CSV t_seconds,hr,sbp,dbp,map,spo2,rr with an optional pr "
            "column, a BIDMC numerics CSV, or a WFDB numerics record given without extension) "
            "through the alarm engine offline, in device time."
        ),
    )
    parser.add_argument("path", metavar="PATH", nargs="?")
    parser.add_argument(
        "--dir", metavar="FOLDER", help="report every recording in FOLDER, then the totals"
    )
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
    if (args.path is None) == (args.dir is None):
        parser.print_usage(sys.stderr)
        print("alarm-report: give either PATH or --dir FOLDER", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        paths = recordings_in(args.dir) if args.dir is not None else [Path(args.path)]
        reports = [
            build_report(
                p.with_suffix("") if p.suffix.lower() == ".hea" else p,
                config,
                phase=args.phase,
                baseline=args.baseline,
            )
            for p in paths
        ]
    except (OSError, ValueError) as exc:
        print(f"alarm-report: {exc}", file=sys.stderr)
        return 1
    if args.dir is None:
        (report,) = reports
        if args.json:
            sys.stdout.write(json.dumps(report.as_json(), indent=1) + "\n")
        else:
            sys.stdout.write(format_text(report))
        return 0
    if args.json:
        body = {
            "recordings": [{"path": r.path, **r.as_json()} for r in reports],
            "totals": totals(reports),
        }
        sys.stdout.write(json.dumps(body, indent=1) + "\n")
    else:
        sys.stdout.write("\n".join(format_text(r) for r in reports) + "\n")
        sys.stdout.write(format_totals(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(alarm_report_main(sys.argv[1:]))
