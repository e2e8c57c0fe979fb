"""Property tests of the simulated patients' physiology (docs/simulators.md)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.model import SIGNAL_RANGES
from simulators import noise
from simulators.physiology import MINUTE, Timeline, draw_patient, ketamine_shape, vitals

SEEDS = range(400)
TL = Timeline()
PATIENTS = [draw_patient(s) for s in SEEDS]
CALM = [p.with_surge(None) for p in PATIENTS]


def _window_mean(p, tl, lo_s, hi_s, signal):
    return float(vitals(p, tl, np.arange(lo_s, hi_s, 5.0))[signal].mean())


def test_resting_values_stay_in_plausible_adult_ranges() -> None:
    """Resting vitals drawn per patient lie in ordinary adult ranges (no alarm at rest)."""
    for p in PATIENTS:
        assert 19 <= p.age <= 75
        assert 104 <= p.sbp0 <= 162
        assert 56 <= p.dbp0 <= p.sbp0 - 30
        assert 58 <= p.hr0 <= 98
        assert 95 <= p.spo20 <= 99.6
        assert 11 <= p.rr0 <= 20


def test_resting_pressure_depends_on_age_and_hypertension() -> None:
    """Older and hypertensive patients rest at higher systolic pressure."""
    htn = [p.sbp0 for p in PATIENTS if p.hypertension]
    normo_young = [p.sbp0 for p in PATIENTS if not p.hypertension and p.age < 40]
    assert len(htn) > 20 and len(normo_young) > 20
    assert np.mean(htn) > np.mean(normo_young) + 10


def test_same_seed_gives_same_patient_and_curves_in_any_order() -> None:
    """Pure model: a seed fixes the patient, and any time gives the same value however asked."""
    assert draw_patient(42) == draw_patient(42)
    p = draw_patient(42)
    whole = vitals(p, TL, np.arange(0, 600.0))
    part = vitals(p, TL, np.arange(300, 310.0))
    one = vitals(p, TL, 305.0)
    for k in whole:
        assert np.array_equal(whole[k][300:310], part[k])
        assert whole[k][305] == one[k][0]


def test_mean_systolic_rise_is_a_few_mmhg_at_the_peak() -> None:
    """Riva-Posse 2018: mean systolic +3..+7 and diastolic +3..+6 at minute 30-40; HR +2."""
    sys_rise, dia_rise, hr_rise = [], [], []
    base = (0.0, TL.baseline_s)
    peak = (TL.infusion_start + 30 * MINUTE, TL.infusion_start + 40 * MINUTE)
    for p in CALM:
        sys_rise.append(_window_mean(p, TL, *peak, "sbp") - _window_mean(p, TL, *base, "sbp"))
        dia_rise.append(_window_mean(p, TL, *peak, "dbp") - _window_mean(p, TL, *base, "dbp"))
        hr_rise.append(_window_mean(p, TL, *peak, "hr") - _window_mean(p, TL, *base, "hr"))
    assert 3.0 <= np.mean(sys_rise) <= 7.0
    assert 2.5 <= np.mean(dia_rise) <= 6.0
    assert 1.0 <= np.mean(hr_rise) <= 3.5
    # Individual rises vary but stay moderate without a surge.
    assert max(sys_rise) < 35


def test_rise_is_larger_over_50_or_with_hypertension() -> None:
    """Szarmach 2020 / Riva-Posse: older and hypertensive patients rise more."""
    risk = [p.ket_sbp for p in PATIENTS if p.age > 50 or p.hypertension]
    low = [p.ket_sbp for p in PATIENTS if p.age <= 50 and not p.hypertension]
    assert np.mean(risk) > 1.3 * np.mean(low)


def test_drug_effect_peaks_late_in_the_infusion_and_is_gone_by_90_minutes() -> None:
    """Peak around minute 30-40 of a 40-min infusion (a minority after it); baseline by 1.5 h."""
    t = np.arange(0, TL.infusion_start + 100 * MINUTE, 10.0)
    peaks = []
    for p in PATIENTS:
        k = ketamine_shape(p, TL, t)
        assert k.min() >= 0.0 and k.max() <= 1.0
        assert k[t < TL.infusion_start].max() == 0.0
        assert k[t >= TL.infusion_start + 90 * MINUTE].max() < 1e-9
        peaks.append((t[int(np.argmax(k))] - TL.infusion_start) / MINUTE)
    peaks_arr = np.array(peaks)
    assert np.mean((peaks_arr >= 30) & (peaks_arr <= 40)) >= 0.75
    assert 0.05 <= np.mean(peaks_arr > 40) <= 0.3  # the minority that peak after the infusion
    assert peaks_arr.min() >= 29 and peaks_arr.max() <= 49


def test_hypertensive_surges_are_a_minority_and_reach_the_alarm_range() -> None:
    """A minority of patients surge; a surge is big enough to matter clinically."""
    surging = [p for p in PATIENTS if p.surge is not None]
    assert 0.01 <= len(surging) / len(PATIENTS) <= 0.15
    for p in surging:
        assert p.surge is not None and p.surge.dsbp >= 30


def test_calm_patients_stay_out_of_alarm_limits_all_session() -> None:
    """Without a surge the true curves stay inside the default medium limits (docs/alarms.md)."""
    t = np.arange(0, TL.end, 1.0)
    for p in CALM:
        v = vitals(p, TL, t)
        assert 90 < v["sbp"].min() and v["sbp"].max() < 180
        assert v["dbp"].max() < 110
        assert v["spo2"].min() > 92
        assert 6 < v["rr"].min() and v["rr"].max() < 30
        # HR and RR may brush a limit for a moment; never for the 30-s medium delay.
        for bad in (v["hr"] > 120, v["hr"] < 50, v["rr"] < 8):
            assert _longest_run(bad) < 30


def test_heart_rate_varies_with_breathing_and_over_minutes() -> None:
    """HR is not flat: respiratory sinus arrhythmia and slower variability are present."""
    p = CALM[3]
    hr = vitals(p, TL, np.arange(0, 300.0))["hr"]
    assert 2.0 < float(np.std(hr)) < 10.0
    assert len(set(np.round(hr).tolist())) > 5


def test_smooth_noise_is_continuous_and_about_unit_variance() -> None:
    """Counter-based smooth noise: no jumps between close times, unit-ish spread."""
    t = np.arange(0, 100_000.0, 1.0)
    x = noise.smooth(5, 1, t, 30.0)
    assert 0.8 < float(np.std(x)) < 1.2
    assert float(np.abs(np.diff(x)).max()) < 0.5
    u = noise.uniform(5, 2, np.arange(100_000))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(float(u.mean()) - 0.5) < 0.01


def _longest_run(mask: np.ndarray) -> int:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**40), infusion_min=st.integers(40, 60))
def test_any_patient_any_infusion_length_gives_finite_values_a_body_can_show(
    seed: int, infusion_min: int
) -> None:
    """For every seed and a 40-60 min infusion, every true value is finite and in range."""
    tl = Timeline(infusion_s=infusion_min * MINUTE)
    p = draw_patient(seed)
    v = vitals(p, tl, np.arange(-10.0, tl.end + 10, 7.0))
    for k, arr in v.items():
        lo, hi = SIGNAL_RANGES[k]
        assert np.all(np.isfinite(arr))
        assert lo <= float(arr.min()) and float(arr.max()) <= hi, k
    assert float(v["sbp"].max()) < 260 and float(v["spo2"].max()) <= 100
    k = ketamine_shape(p, tl, np.array([tl.infusion_start + p.peak_frac * tl.infusion_s]))
    assert math.isclose(float(k[0]), 1.0)
