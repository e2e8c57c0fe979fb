"""Simulators through the real monitor: alarms from warped scenarios, exact replays, restarts.

The simulators are the processes under test: they run as subprocesses against the monitor
app in this process (tests/conftest.py app_factory), except where the monitor itself is
killed mid-replay, which needs its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from monitor.core.model import to_rfc3339
from monitor.records.recordings import load_recording

ROOT = Path(__file__).resolve().parent.parent
MIMIC = ROOT / "tests" / "data" / "mimic-s00001"
# A warped device sends hundreds of frames a second; the default flood limit (50/s) is for
# real devices. The tests raise it; docs/simulators.md says so for users.
FAST_ENV = {"VIGIL_DEVICE_RATE_PER_S": "100000", "VIGIL_DEVICE_RATE_BURST": "100000"}
FAST = {"device_rate_per_s": 100000, "device_rate_burst": 100000}
NURSE, NURSE_PW = "nurse-sim", "nurse-sim-password"


def _sim(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulators", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _readings(srv: Any, bed: str, since: float, until: float, step: float) -> list[dict[str, Any]]:
    """Every stored reading of ``bed`` with since <= ts < until, in windows small enough to
    come back in one answer each (so duplicates in storage would show)."""
    out: list[dict[str, Any]] = []
    lo = since
    while lo < until:
        hi = min(lo + step, until)
        page = srv.get(
            "/api/readings", bed=bed, since=to_rfc3339(lo), until=to_rfc3339(hi), limit=10000
        )
        assert page["next_since"] is None, "window too large for one answer"
        out += page["readings"]
        lo = hi
    return out


def _expected(path: Path, start: float, until_s: float) -> list[tuple[str, dict[str, float], Any]]:
    return [
        (to_rfc3339(start + r.t), r.values, r.source) for r in load_recording(path) if r.t < until_s
    ]


def _as_stored(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, float], Any]]:
    return sorted(
        ((r["ts"], r["values"], r["source"]) for r in rows),
        key=lambda x: (x[0], x[2] is not None),
    )


def test_warped_scenarios_raise_their_alarms_on_the_real_monitor(
    app_factory: Any, tmp_path: Path
) -> None:
    """demo --speed 600: each story's physiological alarm appears, the calm bed stays quiet,
    and the nurse drove every session from admission to end."""
    srv = app_factory(**FAST)
    scenarios = [
        "desaturation",
        "hypertensive_surge",
        "sustained_tachycardia",
        "bradycardia",
        "normal",
    ]
    lines = ["device_id,token"]
    for i in range(1, len(scenarios) + 1):
        lines.append(f"sim-bed-{i}-mon,{srv.add_device(f'sim-bed-{i}-mon', f'bed-{i}')}")
    (tmp_path / "tokens.csv").write_text("\n".join(lines) + "\n")
    srv.add_user(NURSE, "nurse", NURSE_PW)
    t0 = time.monotonic()
    done = _sim(
        "demo", "--beds", str(len(scenarios)), "--beds-scenarios", ",".join(scenarios),
        "--url", srv.ws_url, "--speed", "600", "--sessions", "1", "--tokens", "tokens.csv",
        "--user", NURSE, "--password", NURSE_PW, "--state-dir", "state",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - t0 < 40
    expect = {1: {"spo2", "rr"}, 2: {"sbp"}, 3: {"hr"}, 4: {"hr"}}
    for bed, signals in expect.items():
        alarms = srv.get("/api/alarms", bed=f"bed-{bed}")["alarms"]
        physio = {a["signal"] for a in alarms if a["kind"] == "physiological"}
        assert signals <= physio, (bed, alarms)
    calm = srv.get("/api/alarms", bed="bed-5")["alarms"]
    assert not [a for a in calm if a["kind"] == "physiological" and a["priority"] != "low"]
    for bed in range(1, len(scenarios) + 1):
        sessions = srv.get("/api/sessions", bed=f"bed-{bed}")["sessions"]
        assert len(sessions) == 1 and sessions[0]["phase"] == "ended"
        kinds = [e["type"] for e in srv.get(f"/api/sessions/{sessions[0]['id']}")["events"]]
        assert [k for k in kinds if k != "observation"][-2:] == ["infusion_stop", "end"]
        assert "infusion_start" in kinds


def test_replay_of_the_mimic_record_stores_exactly_the_readings_the_file_holds(
    app_factory: Any, tmp_path: Path
) -> None:
    """Contract replay: held 1 Hz numerics + cuff readings, ts = --start + t, nothing more or less."""
    srv = app_factory(**FAST)
    token = srv.add_device("replay-1", "bed-r")
    start = float(int(time.time()) - 40 * 3600)
    until_s = 4 * 3600.0
    record = MIMIC / "s00001-2896-10-10-00-31n"  # the WFDB record, PATH without extension
    done = _sim(
        "replay", str(record), "--device", "replay-1", "--token", token, "--url", srv.ws_url,
        "--speed", "100000", "--start", to_rfc3339(start), "--until-s", str(until_s),
        "--state-dir", "state",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _expected(record, start, until_s)
    assert f"replay: {len(expected)} readings, acked {len(expected)}, rejected 0" in done.stdout
    rows = _readings(srv, "bed-r", start - 1, start + until_s + 1, 2 * 3600)
    assert len({r["seq"] for r in rows}) == len(rows)
    assert _as_stored(rows) == sorted(expected, key=lambda x: (x[0], x[2] is not None))
    cuffs = [r for r in rows if r["source"] == "nibp"]
    assert cuffs and all(set(r["values"]) == {"sbp", "dbp", "map"} for r in cuffs)


def test_monitor_killed_mid_replay_loses_and_duplicates_nothing(
    server_factory: Any, tmp_path: Path
) -> None:
    """A monitor restart mid-run: the device reconnects, resends its unacked readings, and the
    store ends with each reading exactly once."""
    srv = server_factory(env=FAST_ENV)
    token = srv.add_device("replay-2", "bed-k")
    start = float(int(time.time()) - 40 * 3600)
    until_s = 3 * 3600.0
    csv_path = MIMIC / "numerics.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "replay", str(csv_path), "--device", "replay-2",
         "--token", token, "--url", srv.ws_url, "--speed", "2400", "--start", to_rfc3339(start),
         "--until-s", str(until_s), "--state-dir", "state"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        before = 0
        deadline = time.monotonic() + 20
        while before < 500 and time.monotonic() < deadline:  # kill it mid-run, not before
            time.sleep(0.1)  # a polling interval: how far the replay has got
            before = len(_readings(srv, "bed-k", start - 1, start + until_s + 1, 2 * 3600))
        srv.kill()  # SIGKILL: acks in flight are lost with it
        srv.start()  # its start-up is the gap the simulator reconnects across
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert 0 < before
    expected = _expected(csv_path, start, until_s)
    rows = _readings(srv, "bed-k", start - 1, start + until_s + 1, 2 * 3600)
    assert before < len(rows)
    assert len({r["seq"] for r in rows}) == len(rows) == len(expected)
    assert _as_stored(rows) == sorted(expected, key=lambda x: (x[0], x[2] is not None))
    assert int(out.rsplit("connections ", 1)[1].split()[0]) >= 2  # it did reconnect
