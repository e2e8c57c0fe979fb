"""Physiological model of one simulated patient in one ketamine session.

Pure: a patient is drawn from a seed; the true vitals are a function of (patient,
timeline, session time in seconds). No clock, no I/O. Numbers follow
the sources in docs/simulators.md ("Physiological model"):

- resting values depend on age, hypertension and anxiety;
- under ketamine systolic pressure rises a few mmHg (population mean about +5, diastolic
  a little less, heart rate about +2/min), peaking around minute 30-40 of a 40-minute
  infusion (in a minority after it) and back to baseline about 90 minutes after the
  infusion started; rises are larger over 50, with hypertension or strong dissociation;
- a minority have a hypertensive surge;
- breathing (respiratory sinus arrhythmia), heart-rate variability and slow drifts are
  counter-based noise (simulators.noise), so any time can be asked in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simulators import noise

Array = NDArray[np.float64]

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Timeline:
    """Session layout in session seconds: baseline -> infusion -> recovery -> ended."""

    baseline_s: float = 5 * MINUTE
    infusion_s: float = 40 * MINUTE
    recovery_s: float = 30 * MINUTE

    @property
    def infusion_start(self) -> float:
        return self.baseline_s

    @property
    def infusion_end(self) -> float:
        return self.baseline_s + self.infusion_s

    @property
    def end(self) -> float:
        return self.baseline_s + self.infusion_s + self.recovery_s

    def phase_at(self, s: float) -> str:
        if s < self.infusion_start:
            return "baseline"
        if s < self.infusion_end:
            return "infusion"
        if s < self.end:
            return "recovery"
        return "ended"


@dataclass(frozen=True, slots=True)
class Surge:
    """A hypertensive surge: a smooth bump on pressure and heart rate, times from infusion start."""

    start_s: float
    rise_s: float
    hold_s: float
    fall_s: float
    dsbp: float
    ddbp: float
    dhr: float


@dataclass(frozen=True, slots=True)
class Patient:
    seed: int
    age: int
    hypertension: bool
    anxiety: float  # 0..1
    dissociation: float  # 0..1, how strongly ketamine dissociates this patient
    sbp0: float
    dbp0: float
    hr0: float
    spo20: float
    rr0: float
    ket_sbp: float  # systolic rise at the ketamine peak, mmHg
    ket_dbp: float
    ket_hr: float
    peak_frac: float  # peak time as a fraction of the infusion length
    surge: Surge | None
    rsa_amp: float  # heart-rate swing with breathing, /min

    def with_surge(self, surge: Surge | None) -> Patient:
        return replace(self, surge=surge)

    @property
    def map0(self) -> float:
        return self.dbp0 + (self.sbp0 - self.dbp0) / 3.0


def draw_surge(rng: np.random.Generator) -> Surge:
    dsbp = float(rng.uniform(30.0, 55.0))
    return Surge(
        start_s=float(rng.uniform(15.0, 30.0)) * MINUTE,
        rise_s=float(rng.uniform(3.0, 6.0)) * MINUTE,
        hold_s=float(rng.uniform(4.0, 12.0)) * MINUTE,
        fall_s=float(rng.uniform(8.0, 15.0)) * MINUTE,
        dsbp=dsbp,
        ddbp=dsbp * float(rng.uniform(0.35, 0.55)),
        dhr=float(rng.uniform(5.0, 15.0)),
    )


def draw_patient(seed: int) -> Patient:
    """A patient drawn from ``seed``: same seed, same patient."""
    rng = np.random.default_rng(seed)
    age = int(rng.integers(19, 76))
    hypertension = bool(rng.random() < float(np.clip(0.05 + 0.008 * (age - 25), 0.05, 0.5)))
    anxiety = float(rng.beta(2.0, 3.0))
    dissociation = float(rng.beta(2.0, 3.0))
    htn = 1.0 if hypertension else 0.0
    sbp0 = float(
        np.clip(108 + 0.35 * (age - 30) + 14 * htn + 6 * anxiety + rng.normal(0, 7), 104, 162)
    )
    dbp0 = float(np.clip(68 + 0.12 * (age - 30) + 7 * htn + 3 * anxiety + rng.normal(0, 5), 56, 98))
    dbp0 = min(dbp0, sbp0 - 30.0)
    hr0 = float(np.clip(70 + 10 * anxiety - 0.08 * (age - 40) + rng.normal(0, 7), 58, 98))
    spo20 = float(np.clip(98.0 - 0.025 * max(age - 30, 0) + rng.normal(0, 0.6), 95.0, 99.6))
    rr0 = float(np.clip(14 + 2 * anxiety + rng.normal(0, 1.5), 11, 20))
    # Riva-Posse 2018: +3..+7 systolic on average; larger over 50, with hypertension, or
    # with strong dissociation.
    factor = 1.0 + 0.4 * (age > 50) + 0.5 * htn + 0.6 * (dissociation - 0.4)
    ket_sbp = float(np.clip(rng.normal(4.2, 2.0), 0.0, None) * factor)
    ket_sbp = min(ket_sbp, 22.0)
    ket_dbp = ket_sbp * float(rng.uniform(0.7, 1.0))
    ket_hr = float(np.clip(rng.normal(2.0, 1.5), -1.0, 8.0))
    # Most peak near the end of the infusion; Szarmach 2020 saw the peak after it.
    if rng.random() < 0.15:
        peak_frac = float(rng.uniform(1.0, 1.2))
    else:
        peak_frac = float(rng.uniform(0.75, 1.0))
    surge_p = 0.03 + 0.06 * htn + 0.03 * (age > 50)
    surge = draw_surge(rng) if rng.random() < surge_p else None
    rsa_amp = float(np.clip(4.0 - 0.04 * (age - 20) + rng.normal(0, 0.5), 0.5, 5.0))
    return Patient(
        seed=seed,
        age=age,
        hypertension=hypertension,
        anxiety=anxiety,
        dissociation=dissociation,
        sbp0=sbp0,
        dbp0=dbp0,
        hr0=hr0,
        spo20=spo20,
        rr0=rr0,
        ket_sbp=ket_sbp,
        ket_dbp=ket_dbp,
        ket_hr=ket_hr,
        peak_frac=peak_frac,
        surge=surge,
        rsa_amp=rsa_amp,
    )


def _raised(x: Array) -> Array:
    """0 -> 1 smoothly over x in [0, 1]."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(x, 0.0, 1.0)))


def trapezoid(s: Array, start: float, rise: float, hold: float, fall: float) -> Array:
    """Smooth 0..1 envelope: ramps up over ``rise`` from ``start``, holds, ramps down."""
    up = _raised((s - start) / max(rise, 1e-9))
    down = 1.0 - _raised((s - start - rise - hold) / max(fall, 1e-9))
    return np.minimum(up, down)


def ketamine_shape(patient: Patient, timeline: Timeline, s: ArrayLike) -> Array:
    """0..1 drug effect over session time: rises from infusion start to the patient's peak,
    then falls back to zero by 90 minutes after infusion start (longer infusions: 50
    minutes after their end)."""
    t = np.atleast_1d(np.asarray(s, dtype=np.float64)) - timeline.infusion_start
    peak = patient.peak_frac * timeline.infusion_s
    gone = max(peak + 20 * MINUTE, timeline.infusion_s + 50 * MINUTE)
    rise = _raised(t / peak)
    fall = 1.0 - _raised((t - peak) / (gone - peak))
    return np.where(t < 0, 0.0, np.where(t < peak, rise, fall))


def vitals(patient: Patient, timeline: Timeline, s: ArrayLike) -> dict[str, Array]:
    """True vitals at session times ``s`` (seconds): hr, spo2, rr, sbp, dbp, map."""
    t = np.atleast_1d(np.asarray(s, dtype=np.float64))
    seed = patient.seed
    k = ketamine_shape(patient, timeline, t)

    surge_w = np.zeros_like(t)
    surge = patient.surge
    if surge is not None:
        surge_w = trapezoid(
            t, timeline.infusion_start + surge.start_s, surge.rise_s, surge.hold_s, surge.fall_s
        )

    rr = patient.rr0 + 0.8 * noise.smooth(seed, 1, t, 60.0) + 0.4 * noise.gauss(seed, 2, t)
    breath = np.sin(2 * np.pi * t * patient.rr0 / 60.0 + 2 * np.pi * noise.uniform(seed, 3, 0)[0])

    hr = (
        patient.hr0
        + patient.ket_hr * k
        + (surge.dhr if surge else 0.0) * surge_w
        + patient.rsa_amp * breath
        + 2.0 * noise.smooth(seed, 4, t, 30.0)
        + 1.5 * noise.smooth(seed, 5, t, 600.0)
        + 0.8 * noise.gauss(seed, 6, t)
    )
    drift = noise.smooth(seed, 7, t, 300.0)
    mayer = np.sin(2 * np.pi * 0.1 * t + 2 * np.pi * noise.uniform(seed, 8, 0)[0])
    sbp = (
        patient.sbp0
        + patient.ket_sbp * k
        + (surge.dsbp if surge else 0.0) * surge_w
        + 2.5 * drift
        + 1.5 * mayer
        + 1.0 * breath
    )
    dbp = (
        patient.dbp0
        + patient.ket_dbp * k
        + (surge.ddbp if surge else 0.0) * surge_w
        + 2.0 * drift
        + 1.0 * mayer
    )
    spo2 = np.minimum(
        patient.spo20 + 0.4 * noise.smooth(seed, 9, t, 60.0) + 0.3 * noise.gauss(seed, 10, t),
        100.0,
    )
    return {
        "hr": hr,
        "spo2": spo2,
        "rr": rr,
        "sbp": sbp,
        "dbp": dbp,
        "map": dbp + (sbp - dbp) / 3.0,
    }
