"""Scenario library: named scripts over session time, layered on the physiological model.

A scenario turns (patient seed, timeline) into a ``Plan``: the patient (a surge forced or
removed), physiological shifts (a signal pulled toward a target over a smooth envelope),
pulse-oximeter artefacts, and device/network faults (silent device, link down, cuff
failure). Everything is pure and seeded; docs/simulators.md describes each scenario.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simulators.physiology import (
    MINUTE,
    Array,
    Patient,
    Surge,
    Timeline,
    draw_patient,
    trapezoid,
    vitals,
)

ArtefactKind = Literal["motion", "probe_off", "probe_zero", "probe_invalid"]


@dataclass(frozen=True, slots=True)
class Shift:
    """Pull ``signal`` toward ``target`` (keeping its noise) over a smooth envelope."""

    signal: str
    target: float
    start: float
    rise: float
    hold: float
    fall: float

    @property
    def end(self) -> float:
        return self.start + self.rise + self.hold + self.fall


@dataclass(frozen=True, slots=True)
class Artefact:
    """A pulse-oximeter artefact episode, session seconds [start, start + duration)."""

    kind: ArtefactKind
    start: float
    duration: float

    def covers(self, s: float) -> bool:
        return self.start <= s < self.start + self.duration


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float

    def covers(self, s: float) -> bool:
        return self.start <= s < self.end


@dataclass(frozen=True)
class Plan:
    """One scenario instantiated for one patient and timeline."""

    scenario: str
    patient: Patient
    timeline: Timeline
    shifts: tuple[Shift, ...] = ()
    artefacts: tuple[Artefact, ...] = ()
    silent: tuple[Window, ...] = ()
    link_down: tuple[Window, ...] = ()
    cuff_fail: tuple[Window, ...] = ()
    # When the scenario's story starts (session seconds); None for uneventful scenarios.
    story_start: float | None = None
    notes: dict[str, float] = field(default_factory=dict)

    def vitals(self, s: Array | float | list[float]) -> dict[str, Array]:
        """True vitals at session times ``s`` with the scenario's shifts applied."""
        t = np.atleast_1d(np.asarray(s, dtype=np.float64))
        v = vitals(self.patient, self.timeline, t)
        for sh in self.shifts:
            w = trapezoid(t, sh.start, sh.rise, sh.hold, sh.fall)
            # At full strength the signal sits at the target with a damped share of its own
            # variability (a depressed breathing rate does not swing by +-3/min).
            own = v[sh.signal] - _resting(self.patient, sh.signal)
            v[sh.signal] = (1.0 - w) * v[sh.signal] + w * (sh.target + 0.4 * own)
        v["spo2"] = np.minimum(v["spo2"], 100.0)
        v["map"] = v["dbp"] + (v["sbp"] - v["dbp"]) / 3.0
        return v

    def artefact_at(self, s: float) -> Artefact | None:
        for a in self.artefacts:
            if a.covers(s):
                return a
        return None

    def is_silent(self, s: float) -> bool:
        return any(w.covers(s) for w in self.silent)

    def link_up(self, s: float) -> bool:
        return not any(w.covers(s) for w in self.link_down)

    def cuff_works(self, s: float) -> bool:
        return not any(w.covers(s) for w in self.cuff_fail)


def _resting(p: Patient, signal: str) -> float:
    return {
        "hr": p.hr0,
        "spo2": p.spo20,
        "rr": p.rr0,
        "sbp": p.sbp0,
        "dbp": p.dbp0,
        "map": p.map0,
    }[signal]


def _natural_motion(
    rng: np.random.Generator, tl: Timeline, per_hour: float = 3.0
) -> list[Artefact]:
    """Short motion artefacts (2-7 s): shorter than every alarm delay, so they must not alarm."""
    out: list[Artefact] = []
    s = float(rng.exponential(3600.0 / per_hour))
    while s < tl.end - 10:
        out.append(Artefact("motion", float(np.floor(s)), float(rng.integers(2, 8))))
        s += 60.0 + float(rng.exponential(3600.0 / per_hour))
    return out


BuildFn = Callable[[Patient, Timeline, np.random.Generator], Plan]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expect: tuple[str, ...]  # what the monitor should show, as alarm signals / kinds
    build: BuildFn


def _normal(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    return Plan("normal", p.with_surge(None), tl, artefacts=tuple(_natural_motion(rng, tl)))


def _typical(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    story = tl.infusion_start + p.surge.start_s if p.surge else None
    return Plan("typical", p, tl, artefacts=tuple(_natural_motion(rng, tl)), story_start=story)


def _hypertensive_surge(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    start = 0.4 * tl.infusion_s
    rise, hold, fall = 4 * MINUTE, 8 * MINUTE, 10 * MINUTE
    # Aim the peak systolic at 198..206 whatever the patient's resting pressure, so the
    # cuff readings taken during the hold cross the 180 limit despite drift and cuff noise.
    peak = float(rng.uniform(198.0, 206.0))
    dsbp = max(35.0, peak - p.sbp0 - p.ket_sbp)
    surge = Surge(start, rise, hold, fall, dsbp, 0.45 * dsbp, float(rng.uniform(8.0, 14.0)))
    return Plan(
        "hypertensive_surge",
        p.with_surge(surge),
        tl,
        artefacts=tuple(_natural_motion(rng, tl)),
        story_start=tl.infusion_start + start,
        notes={"peak_sbp_target": peak},
    )


def _shift_plan(
    name: str, p: Patient, tl: Timeline, rng: np.random.Generator, shifts: list[Shift]
) -> Plan:
    return Plan(
        name,
        p.with_surge(None),
        tl,
        shifts=tuple(shifts),
        artefacts=tuple(
            a
            for a in _natural_motion(rng, tl)
            # keep ordinary motion out of the story so the story reads cleanly
            if not any(sh.start - 30 <= a.start <= sh.end + 30 for sh in shifts)
        ),
        story_start=min(sh.start for sh in shifts),
    )


def _sustained_tachycardia(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    start = tl.infusion_start + 0.3 * tl.infusion_s
    target = float(rng.uniform(130.0, 136.0))
    return _shift_plan(
        "sustained_tachycardia", p, tl, rng, [Shift("hr", target, start, 90.0, 6 * MINUTE, 120.0)]
    )


def _bradycardia(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    start = tl.infusion_start + 0.5 * tl.infusion_s
    target = float(rng.uniform(41.0, 44.0))
    return _shift_plan(
        "bradycardia", p, tl, rng, [Shift("hr", target, start, 60.0, 3 * MINUTE, 90.0)]
    )


def _desaturation(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    # Respiratory depression: breathing slows first, saturation follows about a minute later.
    start = tl.infusion_start + 0.55 * tl.infusion_s
    return _shift_plan(
        "desaturation",
        p,
        tl,
        rng,
        [
            Shift("rr", float(rng.uniform(5.5, 6.5)), start, 120.0, 5 * MINUTE, 120.0),
            Shift("spo2", float(rng.uniform(83.0, 86.0)), start + 60.0, 120.0, 3 * MINUTE, 150.0),
        ],
    )


def _probe_off_storm(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    start = tl.infusion_start + 0.35 * tl.infusion_s
    stop = start + 8 * MINUTE
    kinds: tuple[ArtefactKind, ...] = ("probe_off", "probe_zero", "probe_invalid", "motion")
    # It opens with sentinel values (rejected frames: the artefact technical alarm) and a
    # long probe-off (SpO2 missing for 45 s: the no-SpO2 technical alarm), zeros and motion,
    # then a random mix.
    episodes = [
        Artefact("probe_invalid", start, 8.0),
        Artefact("probe_off", start + 30.0, 45.0),
        Artefact("probe_zero", start + 100.0, 10.0),
        Artefact("motion", start + 130.0, 8.0),
    ]
    s = start + 160.0
    while s < stop:
        kind = kinds[int(rng.integers(0, len(kinds)))]
        dur = float(rng.integers(5, 31))
        episodes.append(Artefact(kind, float(np.floor(s)), dur))
        s += dur + float(rng.uniform(10.0, 45.0))
    natural = [a for a in _natural_motion(rng, tl) if not start - 30 <= a.start <= s + 30]
    return Plan(
        "probe_off_storm",
        p.with_surge(None),
        tl,
        artefacts=tuple(sorted(episodes + natural, key=lambda a: a.start)),
        story_start=start,
    )


def _device_silent(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    first = tl.infusion_start + 0.4 * tl.infusion_s
    second = tl.infusion_start + 0.7 * tl.infusion_s
    return Plan(
        "device_silent",
        p.with_surge(None),
        tl,
        artefacts=tuple(_natural_motion(rng, tl)),
        silent=(Window(first, first + 75.0), Window(second, second + 40.0)),
        story_start=first,
    )


def _network_flapping(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    start = tl.infusion_start + 0.3 * tl.infusion_s
    stop = start + 10 * MINUTE
    downs: list[Window] = []
    s = start
    while s < stop:
        dur = float(rng.uniform(5.0, 20.0))
        downs.append(Window(s, s + dur))
        s += dur + float(rng.uniform(20.0, 60.0))
    return Plan(
        "network_flapping",
        p.with_surge(None),
        tl,
        artefacts=tuple(_natural_motion(rng, tl)),
        link_down=tuple(downs),
        story_start=start,
    )


def _stale_cuff(p: Patient, tl: Timeline, rng: np.random.Generator) -> Plan:
    # The cuff tubing comes off a quarter into the infusion and nobody notices: HR, SpO2
    # and RR keep flowing, blood pressure goes stale.
    start = tl.infusion_start + 0.25 * tl.infusion_s
    return Plan(
        "stale_cuff",
        p.with_surge(None),
        tl,
        artefacts=tuple(_natural_motion(rng, tl)),
        cuff_fail=(Window(start, tl.end + 1),),
        story_start=start,
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "normal", "uneventful session: small ketamine rise, brief motion artefacts", (), _normal
        ),
        Scenario(
            "typical",
            "a patient as drawn: occasional spontaneous hypertensive surge (older and hypertensive patients more often)",
            (),
            _typical,
        ),
        Scenario(
            "hypertensive_surge",
            "systolic climbs to about 200 mmHg mid-infusion for about 10 minutes",
            ("sbp",),
            _hypertensive_surge,
        ),
        Scenario(
            "sustained_tachycardia",
            "heart rate 130-136/min for 6 minutes a third into the infusion",
            ("hr",),
            _sustained_tachycardia,
        ),
        Scenario(
            "desaturation",
            "respiratory depression: RR falls to about 6/min, SpO2 to 83-86 % for 3 minutes",
            ("spo2", "rr"),
            _desaturation,
        ),
        Scenario(
            "bradycardia",
            "heart rate 41-44/min for 3 minutes mid-infusion",
            ("hr",),
            _bradycardia,
        ),
        Scenario(
            "probe_off_storm",
            "8 minutes of pulse-oximeter trouble: 127/511 sentinels, a 45-s probe-off, then missing values, zeros and motion",
            ("artefact",),
            _probe_off_storm,
        ),
        Scenario(
            "device_silent",
            "the monitor goes quiet (no readings, no heartbeats, connection open) for 75 s and 40 s",
            ("device",),
            _device_silent,
        ),
        Scenario(
            "network_flapping",
            "the link drops every 20-60 s for 5-20 s over 10 minutes; every reading is resent",
            (),
            _network_flapping,
        ),
        Scenario(
            "stale_cuff",
            "the cuff stops reporting a quarter into the infusion; other signals continue",
            ("cuff",),
            _stale_cuff,
        ),
    ]
}


def make_plan(name: str, seed: int, timeline: Timeline | None = None) -> Plan:
    """Scenario ``name`` for the patient drawn from ``seed``: pure and repeatable."""
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    tl = timeline or Timeline()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return scenario.build(draw_patient(seed), tl, rng)
