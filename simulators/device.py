"""What a bedside monitor reports, as a pure function of a scenario plan and session time.

- HR, SpO2, RR: one reading a second (integer session seconds), rounded as a monitor
  displays them; pulse-oximeter artefacts change or remove hr/spo2.
- Cuff (NIBP): a measurement starts on a per-phase schedule and reports one
  sbp/dbp/map triple, tagged source "nibp", 25-35 s later (its measurement time).
- Silent windows produce nothing (the device is hung); link-down windows are a property
  of the network, handled by the runner (readings are still produced and buffered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators import noise
from simulators.scenarios import Plan

HEARTBEAT_EVERY_S = 5.0
# Nonin-style "no value" sentinels: outside what a body can show, so the monitor rejects them.
INVALID_SPO2 = 127.0
INVALID_HR = 511.0


@dataclass(frozen=True, slots=True)
class CuffConfig:
    """Cuff intervals in minutes per phase (docs/simulators.md: every 5-15 min during, 15 after)."""

    baseline_min: float = 5.0
    infusion_min: float = 5.0
    recovery_min: float = 10.0
    first_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Emission:
    """One reading as the device produces it: session time, values, source."""

    s: float
    values: dict[str, float]
    source: str | None = None


@dataclass(frozen=True, slots=True)
class CuffCycle:
    start: float
    report: float


class DeviceModel:
    """The readings one simulated monitor produces for one plan (pure, any order)."""

    def __init__(self, plan: Plan, cuff: CuffConfig | None = None) -> None:
        self.plan = plan
        self.cuff = cuff or CuffConfig()
        self.cycles = self._cuff_schedule()

    @property
    def end(self) -> float:
        return self.plan.timeline.end

    def _cuff_schedule(self) -> list[CuffCycle]:
        tl, c = self.plan.timeline, self.cuff
        starts: list[float] = []
        spans = [
            (c.first_s, tl.infusion_start, c.baseline_min),
            (tl.infusion_start, tl.infusion_end, c.infusion_min),
            # Nurses take a pressure when the infusion stops, then on the recovery schedule.
            (tl.infusion_end, tl.end - 45.0, c.recovery_min),
        ]
        for lo, hi, every_min in spans:
            s = lo
            while s < hi:
                starts.append(s)
                s += every_min * 60.0
        seed = self.plan.patient.seed
        durs = 25.0 + 10.0 * noise.uniform(seed, 40, np.arange(len(starts)))
        return [CuffCycle(st, float(np.round(st + d))) for st, d in zip(starts, durs, strict=True)]

    def continuous(self, seconds: np.ndarray) -> list[Emission]:
        """The 1 Hz hr/spo2/rr readings at integer session ``seconds``."""
        if len(seconds) == 0:
            return []
        plan = self.plan
        v = plan.vitals(seconds)
        seed = plan.patient.seed
        u = noise.uniform(seed, 41, seconds)
        out: list[Emission] = []
        for i, s in enumerate(seconds.tolist()):
            if plan.is_silent(s):
                continue
            values: dict[str, float] = {
                "hr": float(max(20, round(v["hr"][i]))),
                "spo2": float(min(100, max(50, round(v["spo2"][i])))),
                "rr": float(max(0, round(v["rr"][i]))),
            }
            art = plan.artefact_at(s)
            if art is not None:
                if art.kind == "motion":
                    # Motion: saturation reads falsely low, pulse rate erratic.
                    values["spo2"] = float(round(values["spo2"] - 12 - 18 * u[i]))
                    values["hr"] = float(round(40 + 130 * u[i]))
                elif art.kind == "probe_off":
                    del values["hr"], values["spo2"]
                elif art.kind == "probe_zero":
                    values["hr"], values["spo2"] = 0.0, 0.0
                else:
                    values["hr"], values["spo2"] = INVALID_HR, INVALID_SPO2
            out.append(Emission(float(s), values))
        return out

    def cuff_readings(self, s0: float, s1: float) -> list[Emission]:
        """Cuff triples whose report time lies in (s0, s1]."""
        cycles = [
            (i, c) for i, c in enumerate(self.cycles) if s0 < c.report <= s1 and c.report < self.end
        ]
        if not cycles:
            return []
        seed = self.plan.patient.seed
        idx = np.array([i for i, _ in cycles])
        v = self.plan.vitals(np.array([c.report for _, c in cycles]))
        e_s = 2.5 * noise.gauss(seed, 42, idx)
        e_d = 2.0 * noise.gauss(seed, 43, idx)
        out: list[Emission] = []
        for j, (_, c) in enumerate(cycles):
            if not self.plan.cuff_works(c.start) or self.plan.is_silent(c.report):
                continue
            sbp = round(v["sbp"][j] + e_s[j])
            dbp = min(round(v["dbp"][j] + e_d[j]), sbp - 10)
            mean = round(dbp + (sbp - dbp) / 3.0)
            out.append(
                Emission(
                    c.report, {"sbp": float(sbp), "dbp": float(dbp), "map": float(mean)}, "nibp"
                )
            )
        return out

    def emissions(self, s0: float, s1: float) -> list[Emission]:
        """Everything the device produces in session time (s0, s1], in time order
        (a cuff triple reported in the same second follows that second's numerics)."""
        lo = max(math.floor(s0) + 1, 0)
        hi = min(math.floor(s1), math.ceil(self.end) - 1)
        seconds = np.arange(lo, hi + 1, dtype=np.int64) if hi >= lo else np.array([], np.int64)
        out = self.continuous(seconds) + self.cuff_readings(s0, s1)
        out.sort(key=lambda e: (e.s, e.source is not None))
        return out

    def heartbeat_times(self, s0: float, s1: float) -> list[float]:
        """Heartbeats in (s0, s1]: every few seconds unless the device is silent."""
        k0 = math.floor(s0 / HEARTBEAT_EVERY_S) + 1
        k1 = math.floor(min(s1, self.end) / HEARTBEAT_EVERY_S)
        times = [k * HEARTBEAT_EVERY_S for k in range(k0, k1 + 1)]
        return [s for s in times if s >= 0 and not self.plan.is_silent(s)]
