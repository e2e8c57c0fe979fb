"""Scenario library and device model: pure outputs checked against what each story promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.core.model import SIGNAL_RANGES
from monitor.wire.device import ErrorCode, ProtocolError, encode_reading, parse_frame
from simulators.cli import _glue_secrets, api_from_ws, build_parser
from simulators.demo import DEFAULT_MIX, demo_devices_csv, plan_beds, read_tokens
from simulators.device import CuffConfig, DeviceModel, Emission
from simulators.nurse import session_script
from simulators.physiology import MINUTE, Timeline
from simulators.scenarios import SCENARIOS, make_plan

ROOT = Path(__file__).resolve().parent.parent
SEEDS = range(12)
NOW = 1_790_000_000.0


def _emissions(
    name: str, seed: int, tl: Timeline | None = None
) -> tuple[DeviceModel, list[Emission]]:
    model = DeviceModel(make_plan(name, seed, tl))
    return model, model.emissions(-1.0, model.end)


def _longest_run(seconds: list[float]) -> int:
    """Longest stretch of consecutive integer seconds in a sorted list."""
    best = run = 0
    prev = None
    for s in seconds:
        run = run + 1 if prev is not None and s == prev + 1 else 1
        best = max(best, run)
        prev = s
    return best


def _continuous(em: list[Emission]) -> list[Emission]:
    return [e for e in em if e.source is None]


def _cuffs(em: list[Emission]) -> list[Emission]:
    return [e for e in em if e.source == "nibp"]


def test_every_scenario_named_in_the_brief_exists_and_is_documented() -> None:
    """The library holds the nine named scenarios, each described in docs/simulators.md."""
    named = {
        "normal", "hypertensive_surge", "sustained_tachycardia", "desaturation", "bradycardia",
        "probe_off_storm", "device_silent", "network_flapping", "stale_cuff",
    }  # fmt: skip
    assert named <= set(SCENARIOS)
    doc = (ROOT / "docs" / "simulators.md").read_text()
    for name in SCENARIOS:
        assert f"`{name}`" in doc, name


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_frame_a_scenario_produces_passes_the_protocol_except_sentinels(name: str) -> None:
    """Frames built from scenario output parse; only the 127/511 sentinels are rejected, as artefact."""
    _, em = _emissions(name, 3)
    rejected = 0
    for seq, e in enumerate(em):
        frame = encode_reading("sim-1", seq, NOW - 5000 + e.s, e.values, e.source)
        try:
            parse_frame(frame, device_id="sim-1", now=NOW)
        except ProtocolError as exc:
            assert exc.code == ErrorCode.INVALID_VALUE
            assert e.values.get("spo2") == 127.0 and e.values.get("hr") == 511.0
            rejected += 1
    assert (rejected > 0) == (name == "probe_off_storm")


def test_continuous_signals_come_once_a_second_and_chunks_add_up() -> None:
    """HR/SpO2/RR at 1 Hz; asking in chunks gives exactly what asking at once gives."""
    model, whole = _emissions("normal", 5)
    cont = _continuous(whole)
    assert [e.s for e in cont] == list(range(int(model.end)))
    assert all(set(e.values) == {"hr", "spo2", "rr"} for e in cont if e.values.get("spo2", 0) > 0)
    chunks: list[Emission] = []
    s = -1.0
    for step in (0.3, 7.0, 100.5, 1000.0, 4000.0):
        chunks += model.emissions(s, s + step)
        s += step
    assert chunks == model.emissions(-1.0, s)


def test_cuff_reports_one_triple_about_30_s_after_it_starts_every_5_min_in_infusion() -> None:
    """NIBP: one sbp/dbp/map triple tagged nibp, 25-35 s after the cycle starts, every 5 min."""
    model, em = _emissions("normal", 6)
    tl = model.plan.timeline
    for c in model.cycles:
        assert 25 <= c.report - c.start <= 35
    inf = [c.start for c in model.cycles if tl.infusion_start <= c.start < tl.infusion_end]
    assert np.allclose(np.diff(inf), 5 * MINUTE) and len(inf) == 8
    cuffs = _cuffs(em)
    assert len(cuffs) == len(model.cycles)
    for e in cuffs:
        assert set(e.values) == {"sbp", "dbp", "map"}
        assert e.values["dbp"] < e.values["map"] < e.values["sbp"]


def test_cuff_interval_is_configurable_per_phase() -> None:
    """A clinic measuring every 10 min during the infusion gets half the cycles."""
    plan = make_plan("normal", 6)
    tl = plan.timeline
    model = DeviceModel(plan, CuffConfig(infusion_min=10.0))
    inf = [c for c in model.cycles if tl.infusion_start <= c.start < tl.infusion_end]
    assert len(inf) == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_desaturation_holds_spo2_below_90_for_more_than_15_s_and_rr_below_8(seed: int) -> None:
    """Respiratory depression: SpO2 < 90 sustained > 15 s (the medium delay) and RR < 8 > 30 s."""
    model, em = _emissions("desaturation", seed)
    cont = _continuous(em)
    shifts = model.plan.shifts
    low_spo2 = [e.s for e in cont if 0 < e.values.get("spo2", 100) < 90]
    low_rr = [e.s for e in cont if e.values["rr"] < 8]
    assert _longest_run(low_spo2) > 60
    assert _longest_run(low_rr) > 60
    story = [e for e in cont if shifts[0].start <= e.s < max(sh.end for sh in shifts)]
    assert min(e.values["spo2"] for e in story) >= 80  # deep, not absurd


@pytest.mark.parametrize("seed", SEEDS)
def test_hypertensive_surge_puts_cuff_readings_at_or_over_180_mid_infusion(seed: int) -> None:
    """Surge: at least one cuff systolic >= 180 during the infusion, none absurd."""
    model, em = _emissions("hypertensive_surge", seed)
    tl = model.plan.timeline
    high = [e for e in _cuffs(em) if e.values["sbp"] >= 180]
    assert high
    assert all(tl.infusion_start <= e.s < tl.infusion_end + 10 * MINUTE for e in high)
    assert max(e.values["sbp"] for e in high) < 230


@pytest.mark.parametrize("seed", SEEDS)
def test_sustained_tachycardia_keeps_hr_over_120_for_five_minutes(seed: int) -> None:
    """Tachycardia: HR > 120 for at least 5 min on end (the esketamine-rule example)."""
    _, em = _emissions("sustained_tachycardia", seed)
    fast = [e.s for e in _continuous(em) if 120 < e.values.get("hr", 0) < 200]
    assert _longest_run(fast) >= 5 * 60


@pytest.mark.parametrize("seed", SEEDS)
def test_bradycardia_keeps_hr_below_50_for_over_30_s(seed: int) -> None:
    """Bradycardia: HR < 50 sustained beyond the 30-s medium delay."""
    _, em = _emissions("bradycardia", seed)
    slow = [e.s for e in _continuous(em) if 0 < e.values.get("hr", 100) < 50]
    assert _longest_run(slow) > 60


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_session_has_no_sustained_out_of_limit_values(seed: int) -> None:
    """Normal: brief motion dips only, never as long as an alarm delay; cuffs in range."""
    _, em = _emissions("normal", seed)
    cont = _continuous(em)
    assert _longest_run([e.s for e in cont if e.values.get("spo2", 100) < 90]) < 10
    assert _longest_run([e.s for e in cont if not 50 <= e.values.get("hr", 70) <= 120]) < 10
    assert _longest_run([e.s for e in cont if e.values["rr"] < 8]) < 15
    for e in _cuffs(em):
        assert 90 <= e.values["sbp"] < 180 and e.values["dbp"] < 110 and e.values["map"] >= 65


def test_probe_off_storm_produces_missing_zero_and_impossible_values() -> None:
    """Probe-off: readings without SpO2/HR, zeros, values outside what a body shows, a 45-s gap."""
    model, em = _emissions("probe_off_storm", 4)
    cont = _continuous(em)
    missing = [e.s for e in cont if "spo2" not in e.values]
    assert all("rr" in e.values and "hr" not in e.values for e in cont if "spo2" not in e.values)
    assert _longest_run(missing) >= 45
    assert any(e.values.get("spo2") == 0.0 and e.values.get("hr") == 0.0 for e in cont)
    lo, hi = SIGNAL_RANGES["spo2"]
    impossible = [e for e in cont if not lo <= e.values.get("spo2", 50) <= hi]
    assert len(impossible) >= 3
    story = model.plan.story_start
    assert story is not None
    assert all(story <= e.s < story + 10 * MINUTE for e in impossible)


def test_device_silent_sends_nothing_at_all_for_longer_than_10_s() -> None:
    """Silent device: no readings and no heartbeats for > 10 s (the no-data alarm), twice."""
    model, em = _emissions("device_silent", 2)
    times = sorted({e.s for e in em} | set(model.heartbeat_times(-1, model.end)))
    gaps = np.diff(times)
    assert sorted(gaps)[-2] >= 40 and gaps.max() >= 75


def test_network_flapping_keeps_measuring_while_the_link_is_down() -> None:
    """Flapping link: readings go on being produced (to be resent); the link is down repeatedly."""
    model, em = _emissions("network_flapping", 2)
    plan = model.plan
    assert len(plan.link_down) >= 8
    down = [e for e in em if not plan.link_up(e.s)]
    assert len(down) > 60
    assert [e.s for e in _continuous(em)] == list(range(int(model.end)))


def test_stale_cuff_stops_pressures_but_not_the_other_signals() -> None:
    """Stale cuff: no cuff reading after the failure; HR/SpO2/RR continue to the end."""
    model, em = _emissions("stale_cuff", 2)
    story = model.plan.story_start
    assert story is not None
    cuffs = _cuffs(em)
    assert cuffs and all(e.s < story + 40 for e in cuffs)
    assert _continuous(em)[-1].s == model.end - 1


def test_scenarios_are_repeatable_and_differ_across_seeds() -> None:
    """Same seed, same stream; another seed, another patient."""
    _, a = _emissions("typical", 11)
    _, b = _emissions("typical", 11)
    _, c = _emissions("typical", 12)
    assert a == b and a != c


@pytest.mark.parametrize("infusion_min", [40, 60])
def test_infusion_length_is_configurable_from_40_to_60_minutes(infusion_min: int) -> None:
    """Baseline 5 min -> infusion 40-60 min -> recovery 30 min; stories stay inside the session."""
    tl = Timeline(infusion_s=infusion_min * MINUTE)
    assert tl.end == (5 + infusion_min + 30) * MINUTE
    for name in SCENARIOS:
        plan = make_plan(name, 1, tl)
        if plan.story_start is not None:
            assert tl.infusion_start <= plan.story_start < tl.infusion_end
    assert tl.phase_at(0) == "baseline" and tl.phase_at(tl.infusion_end - 1) == "infusion"
    assert tl.phase_at(tl.infusion_end) == "recovery" and tl.phase_at(tl.end) == "ended"


def test_nurse_script_walks_the_phases_in_order() -> None:
    """The nurse admits, starts and stops the infusion, records observations, ends."""
    plan = make_plan("desaturation", 1)
    acts = session_script(plan)
    kinds = [a.type for a in acts if a.type != "observation"]
    assert kinds == ["admit", "infusion_start", "infusion_stop", "end"]
    assert [a.s for a in acts] == sorted(a.s for a in acts)
    obs = [a.data for a in acts if a.type == "observation"]
    assert any("moaas" in d for d in obs) and any("cadss6" in d for d in obs)


def test_demo_beds_start_in_different_phases_with_stories_close() -> None:
    """Six staggered beds show a ward at once: every phase, each story started within two
    minutes (a desaturation's joined under a minute in, docs/simulators.md)."""
    specs = plan_beds(6, seed=0)
    tl = Timeline()
    assert [s.device_id for s in specs] == [f"sim-bed-{i}-mon" for i in range(1, 7)]
    assert [s.bed_id for s in specs] == [f"bed-{i}" for i in range(1, 7)]
    assert [s.scenario for s in specs] == list(DEFAULT_MIX[:6])
    assert {tl.phase_at(s.offset_s) for s in specs} == {"baseline", "infusion", "recovery"}
    for s in specs:
        story = make_plan(s.scenario, s.seed, tl).story_start
        if story is not None and s.scenario != "typical":
            assert -MINUTE < story - s.offset_s <= 2 * MINUTE
    flat = plan_beds(3, stagger=False)
    assert {s.offset_s for s in flat} == {0.0}
    with pytest.raises(ValueError):
        plan_beds(1, scenarios=["no_such_thing"])


def test_demo_devices_csv_feeds_import_devices_and_tokens_csv_is_read_back(tmp_path: Path) -> None:
    """demo-devices prints device_id,bed_id; the token CSV from import-devices reads back."""
    assert demo_devices_csv(2) == "device_id,bed_id\nsim-bed-1-mon,bed-1\nsim-bed-2-mon,bed-2\n"
    tokens = tmp_path / "t.csv"
    tokens.write_text("device_id,token\nsim-bed-1-mon,abc\nsim-bed-2-mon,def\n")
    assert read_tokens(tokens) == {"sim-bed-1-mon": "abc", "sim-bed-2-mon": "def"}


def test_cli_takes_tokens_that_begin_with_a_dash() -> None:
    """URL-safe tokens may start with '-': `--token -abc` must still be the token."""
    argv = ["replay", "f.csv", "--device", "d", "--token", "-x9", "--url", "ws://h:1"]
    a = build_parser().parse_args(_glue_secrets(argv))
    assert a.token == "-x9" and a.device == "d" and a.url == "ws://h:1"
    assert api_from_ws("ws://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert api_from_ws("wss://ward.example/ws") == "https://ward.example"
