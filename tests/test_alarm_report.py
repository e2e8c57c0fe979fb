"""`python -m monitor alarm-report PATH [--config FILE] [--json]` on the shipped MIMIC record
(docs/alarms.md), and on short recordings."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alarms import load_config
from monitor.alarms.config import DEFAULT_CONFIG_PATH
from monitor.records.alarm_report import Report, alarm_report_main, build_report, format_text

ROOT = Path(__file__).resolve().parent.parent
MIMIC = Path(__file__).parent / "data" / "mimic-s00001"
MIMIC_CSV = MIMIC / "numerics.csv"
MIMIC_WFDB = MIMIC / "s00001-2896-10-10-00-31n"
BIDMC = Path(__file__).parent / "data" / "bidmc"
KEYS = {"signal", "kind", "priority", "condition", "start_s", "end_s"}


def _recording(tmp_path: Path) -> Path:
    """Three minutes: a low RR for a minute, then a cuff reading at 150/80 (mean 103)."""
    path = tmp_path / "short.csv"
    path.write_text(
        "t_seconds,hr,sbp,dbp,map,spo2,rr\n"
        "1000,70,,,,97,14\n"
        "1060,70,,,,97,7\n"
        "1120,70,150,80,103,97,14\n"
        "1180,70,,,,97,14\n"
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = alarm_report_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def mimic_report() -> Report:
    """The report on the MIMIC copy (a 32 h recording), computed once for the module: its
    replay is most of this module's CPU. The command line around it is pinned on short
    recordings below (the same ``build_report`` and formatters)."""
    return build_report(MIMIC_CSV, load_config(None))


@pytest.fixture(scope="module")
def mimic_json(mimic_report: Report) -> dict[str, Any]:
    return mimic_report.as_json()


def test_the_command_prints_the_reports_json_and_text(tmp_path: Path) -> None:
    """`python -m monitor alarm-report PATH [--json]`, a process of its own: what it prints is
    the report's JSON, or its text."""
    report = build_report(BIDMC / "bidmc_21_Numerics.csv", load_config(None))
    outputs = [
        subprocess.run(
            [sys.executable, "-m", "monitor", "alarm-report", str(BIDMC / "bidmc_21_Numerics.csv"),
             *flag],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        for flag in (["--json"], [])
    ]  # fmt: skip
    assert json.loads(outputs[0]) == report.as_json() and report.as_json()["alarms"]
    assert outputs[1] == format_text(report)


def test_report_json_has_the_contract_shape(mimic_json: dict[str, Any]) -> None:
    """Contract: keys alarms and naive_alarms; items signal/kind/priority/condition/start_s/end_s.
    docs/alarms.md adds technical_alarms beside them."""
    assert set(mimic_json) == {"alarms", "naive_alarms", "technical_alarms"}
    assert mimic_json["technical_alarms"] == []  # numerics.csv has no pulse column
    for item in mimic_json["alarms"] + mimic_json["naive_alarms"]:
        assert set(item) == KEYS
        assert item["signal"] in {"hr", "spo2", "rr", "sbp", "dbp", "map"}
        assert item["kind"] == "physiological"
        assert item["priority"] in {"high", "medium", "low"}
        assert item["end_s"] is None or item["end_s"] >= item["start_s"] >= 0


def test_mimic_report_counts(mimic_json: dict[str, Any]) -> None:
    """The figures quoted in docs/alarms.md: 30 alarms from the engine, 32 naive; the RR falls
    that SpO2 and HR do not echo are kept at low priority, but one lasting 240 s is medium."""
    engine = Counter((a["signal"], a["priority"]) for a in mimic_json["alarms"])
    naive = Counter((a["signal"], a["priority"]) for a in mimic_json["naive_alarms"])
    assert engine == {
        ("rr", "low"): 23,
        ("rr", "medium"): 1,
        ("rr", "high"): 1,
        ("hr", "medium"): 3,
        ("hr", "high"): 1,
        ("map", "high"): 1,
    }
    assert naive == {
        ("rr", "medium"): 24,
        ("rr", "high"): 2,
        ("hr", "medium"): 4,
        ("hr", "high"): 1,
        ("map", "high"): 1,
    }


def test_engine_raises_fewer_alarms_yet_misses_no_sustained_episode(
    mimic_json: dict[str, Any],
) -> None:
    """Delays and hysteresis cut alarms, but every naive episode longer than its delay is alarmed."""
    alarms, naive = mimic_json["alarms"], mimic_json["naive_alarms"]
    assert len(alarms) < len(naive)
    cfg = load_config(None)
    end_of_recording = 116100.0
    for ep in naive:
        direction = "low" if "<" in ep["condition"] else "high"
        delays = [lv.delay for lv in _levels(cfg)[(ep["signal"], direction)]]
        end = ep["end_s"] if ep["end_s"] is not None else end_of_recording
        if end - ep["start_s"] < max(delays):
            continue
        assert any(
            a["signal"] == ep["signal"]
            and a["start_s"] <= end
            and (a["end_s"] is None or a["end_s"] >= ep["start_s"])
            for a in alarms
        ), ep


def _levels(cfg: Any) -> Any:
    from monitor.alarms import build_levels

    return build_levels(cfg)


def test_text_report_shows_counts_per_hour(mimic_report: Report) -> None:
    """Text output: engine and naive counts per hour, totals, then the alarm list."""
    out = format_text(mimic_report)
    assert "engine (delays, hysteresis, off-delay): 30 alarms (high 3, medium 4, low 23)" in out
    assert "naive (same limits, no delay, no hysteresis, no off-delay): 32 alarms" in out
    assert "     1       5       6" in out  # hour 1: five engine alarms, six naive
    assert "   all      30      32" in out
    assert "23:09:10  23:23:00  hr      high      hr < 40" in out


def test_clinic_config_changes_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--config FILE: the clinic's own limits are the ones replayed."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["limits"]["rr"] = {"high": {"medium": 30}}  # no low RR alarms in this clinic
    data["limits"]["sbp"]["high"] = {"medium": 140}
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(data))
    rec = _recording(tmp_path)
    code, out, _ = _run(capsys, str(rec), "--json")
    assert code == 0
    assert Counter(a["signal"] for a in json.loads(out)["alarms"]) == {"rr": 1}
    code, out, _ = _run(capsys, str(rec), "--config", str(path), "--json")
    assert code == 0
    assert Counter(a["signal"] for a in json.loads(out)["alarms"]) == {"sbp": 1}


def test_baseline_option_adds_the_relative_advisories(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--baseline: systolic more than 25 % over baseline is a low-priority advisory."""
    code, out, _ = _run(capsys, str(_recording(tmp_path)), "--json", "--baseline", "sbp=110")
    assert code == 0
    low = [a for a in json.loads(out)["alarms"] if a["signal"] == "sbp"]
    assert [(a["priority"], a["start_s"], a["end_s"]) for a in low] == [("low", 120.0, None)]


def test_json_reports_start_and_end_in_seconds_from_the_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """start_s/end_s count from the first row; the rr alarm waits out its 30 s delay, and
    its end is when the condition cleared (120 s), not when the 30 s off-delay elapsed."""
    code, out, _ = _run(capsys, str(_recording(tmp_path)), "--json")
    assert code == 0
    report = json.loads(out)
    assert [(a["signal"], a["start_s"], a["end_s"]) for a in report["alarms"]] == [
        ("rr", 90.0, 120.0)
    ]
    assert [(a["signal"], a["start_s"], a["end_s"]) for a in report["naive_alarms"]] == [
        ("rr", 60.0, 120.0)
    ]


@pytest.mark.parametrize(
    "argv",
    [["/nonexistent/recording.csv"], [str(MIMIC_CSV), "--config", "/nonexistent.yaml"]],
)
def test_missing_files_fail_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A wrong path is an error exit with a reason on stderr, not a traceback."""
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == "" and "alarm-report:" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """No PATH: argparse's usage error, returned rather than raised; PATH and --dir together
    are refused the same way."""
    code, _, err = _run(capsys)
    assert code == 2 and "usage" in err
    code, _, err = _run(capsys, str(MIMIC_CSV), "--dir", str(BIDMC))
    assert code == 2 and "either PATH or --dir" in err


def test_dir_reports_every_recording_and_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    """--dir FOLDER: one report per recording, then totals engine vs naive per signal and
    per priority (docs/alarms.md)."""
    code, out, _ = _run(capsys, "--dir", str(BIDMC), "--json")
    assert code == 0
    body = json.loads(out)
    names = [Path(r["path"]).name for r in body["recordings"]]
    assert names == sorted(p.name for p in BIDMC.glob("*.csv"))
    totals = body["totals"]
    assert totals["recordings"] == 7
    for side, key in (("engine", "alarms"), ("naive", "naive_alarms")):
        items = [a for r in body["recordings"] for a in r[key]]
        assert totals[side]["all"] == len(items)
        assert totals[side]["by_signal"] == dict(Counter(a["signal"] for a in items))
        assert totals[side]["by_priority"] == {
            p: sum(a["priority"] == p for a in items) for p in ("high", "medium", "low")
        }
    assert totals["engine_vs_naive"] == round(totals["engine"]["all"] / totals["naive"]["all"], 3)
    code, out, _ = _run(capsys, "--dir", str(BIDMC))
    assert code == 0
    assert out.count("Alarm report for ") == 7
    assert "Totals over 7 recordings:" in out and "by priority" in out


def test_dir_reads_wfdb_records_beside_csv_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A folder may hold WFDB records (named by their .hea) beside CSV files. The record is
    the MIMIC one's first two hours (its header says 120 samples; the data file is cut to
    them), so the replay stays short; tests/test_recordings.py reads the whole one."""
    header = (MIMIC / "s00001-2896-10-10-00-31n.hea").read_text()
    assert " 1936 " in header.splitlines()[0]
    (tmp_path / "s00001-2896-10-10-00-31n.hea").write_text(header.replace(" 1936 ", " 120 ", 1))
    signals = len(header.splitlines()) - 2  # the record line and the trailing comment
    data = (MIMIC / "3975656n.dat").read_bytes()[: 120 * signals * 2]  # format 16: 2 bytes
    (tmp_path / "3975656n.dat").write_bytes(data)
    (tmp_path / "bidmc_21.csv").write_bytes((BIDMC / "bidmc_21_Numerics.csv").read_bytes())
    code, out, _ = _run(capsys, "--dir", str(tmp_path), "--json")
    assert code == 0
    body = json.loads(out)
    assert [Path(r["path"]).name for r in body["recordings"]] == [
        "bidmc_21.csv",
        "s00001-2896-10-10-00-31n",
    ]
    code, _, err = _run(capsys, "--dir", str(tmp_path / "nothing"))
    assert code == 1 and "alarm-report:" in err
