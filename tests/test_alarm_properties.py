"""Properties of the alarm engine over arbitrary reading sequences (Hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alarms import AlarmEngine, UnknownAlarm, build_levels, load_config
from monitor.core.model import (
    CONTINUOUS_SIGNALS,
    PRIORITY_RANK,
    Alarm,
    AlarmKind,
    AlarmState,
    Priority,
    Reading,
)
from tests.factories import T0
from tests.strategies import signal_values

DEFAULTS = load_config(None)
BASELINE = {"sbp": 120.0, "hr": 70.0}

# Values on a half-unit grid hit the limits (90, 85, 120, ...) exactly, where bugs live.
_halves = lambda lo, hi: st.integers(lo * 2, hi * 2).map(lambda x: x / 2)  # noqa: E731
continuous_values = st.fixed_dictionaries(
    {},
    optional={"spo2": _halves(70, 100), "hr": _halves(25, 160), "rr": _halves(3, 36)},
).filter(bool)
# With the pulse rate beside (or instead of) the ECG heart rate.
rate_values = st.fixed_dictionaries(
    {},
    optional={
        "spo2": _halves(70, 100),
        "hr": _halves(25, 160),
        "pr": _halves(25, 160),
        "rr": _halves(3, 36),
    },
).filter(bool)
cuff_values = st.fixed_dictionaries(
    {},
    optional={"sbp": _halves(60, 220), "dbp": _halves(40, 130), "map": _halves(45, 110)},
).filter(bool)


@dataclass(frozen=True)
class Step:
    dt: float
    action: str  # "reading" | "ack" | "tick"
    values: dict[str, float]
    pick: int = 0


steps = st.lists(
    st.one_of(
        st.builds(
            Step,
            dt=st.sampled_from([0.5, 1.0, 1.0, 1.0, 2.0, 3.0, 5.0]),
            action=st.just("reading"),
            values=st.one_of(continuous_values, continuous_values, cuff_values),
        ),
        st.builds(
            Step, dt=st.just(0.0), action=st.just("ack"), values=st.just({}), pick=st.integers(0, 5)
        ),
        st.builds(Step, dt=st.just(0.0), action=st.just("tick"), values=st.just({})),
    ),
    max_size=120,
)

# Long runs of the same value make delays elapse; interleave them with the random steps.
runs = st.lists(
    st.tuples(st.one_of(continuous_values, cuff_values), st.integers(1, 40)), max_size=8
).map(lambda rs: [Step(1.0, "reading", v) for v, n in rs for _ in range(n)])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Step], bool, bool]:
    mixed = draw(steps) + draw(runs)
    order = draw(st.permutations(range(len(mixed)))) if len(mixed) < 12 else range(len(mixed))
    return [mixed[i] for i in order], draw(st.booleans()), draw(st.booleans())


def _engine(latch: bool, baseline: bool) -> AlarmEngine:
    engine = AlarmEngine(DEFAULTS.model_copy(update={"latch_high": latch}))
    engine.set_session("bed-1", 1, "infusion", BASELINE if baseline else None, None)
    return engine


@dataclass
class Trace:
    """Every change the engine returned, with what caused it."""

    changes: list[tuple[str, Reading | None, Alarm]]
    history: dict[str, list[tuple[float, float]]]


def _run(engine: AlarmEngine, scenario: list[Step]) -> Trace:
    trace = Trace([], {})
    t = T0
    for seq, step in enumerate(scenario):
        t += step.dt
        if step.action == "reading":
            reading = Reading("dev-1", seq, t, t + 0.2, step.values, None, "bed-1")
            for sig, v in step.values.items():
                trace.history.setdefault(sig, []).append((t, v))
            trace.changes += [("reading", reading, a) for a in engine.on_reading(reading)]
        elif step.action == "tick":
            trace.changes += [("tick", None, a) for a in engine.tick(t + 0.2)]
        else:
            live = engine.active("bed-1")
            if live:
                target = live[step.pick % len(live)]
                before = target.priority
                acked = engine.acknowledge(target.id, "nurse", t + 0.2)
                for a in acked:
                    assert PRIORITY_RANK[a.priority] >= PRIORITY_RANK[before]
                trace.changes += [("ack", None, a) for a in acked]
    return trace


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_no_alarm_starts_or_rises_before_its_delay(case: tuple[list[Step], bool, bool]) -> None:
    """§3: a continuous condition must hold in every reading for its delay; cuff per reading."""
    scenario, latch, baseline = case
    engine = _engine(latch, baseline)
    levels = build_levels(DEFAULTS, "infusion", BASELINE if baseline else None)
    trace = _run(engine, scenario)
    seen: dict[str, str] = {}
    for cause, reading, alarm in trace.changes:
        if alarm.kind is not AlarmKind.PHYSIOLOGICAL:
            continue
        prev = seen.get(alarm.id)
        seen[alarm.id] = alarm.priority
        created_or_rose = prev is None or PRIORITY_RANK[alarm.priority] > PRIORITY_RANK[prev]
        if not created_or_rose:
            continue
        assert cause == "reading" and reading is not None
        direction = alarm.direction
        assert direction is not None
        (level,) = [
            lv for lv in levels[(alarm.signal, direction)] if lv.label == alarm.detail["limit"]
        ] or [None]
        assert level is not None, alarm.condition
        t = reading.ts
        if alarm.signal in CONTINUOUS_SIGNALS:
            hist = [(ts, v) for ts, v in trace.history[alarm.signal] if ts <= t]
            run_start = t
            for ts, v in reversed(hist):
                if not level.beyond(direction, v):
                    break
                run_start = ts
            assert t - run_start >= level.delay, (alarm, run_start)
        else:
            assert level.beyond(direction, reading.values[alarm.signal])


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_priorities_never_fall_and_alarms_never_end_while_the_condition_holds(
    case: tuple[list[Step], bool, bool],
) -> None:
    """Acknowledging never lowers a priority; no alarm ends inside its hysteresis band."""
    scenario, latch, baseline = case
    engine = _engine(latch, baseline)
    levels = build_levels(DEFAULTS, "infusion", BASELINE if baseline else None)
    trace = _run(engine, scenario)
    rank: dict[str, int] = {}
    for cause, reading, alarm in trace.changes:
        assert PRIORITY_RANK[alarm.priority] >= rank.get(alarm.id, 0)
        rank[alarm.id] = PRIORITY_RANK[alarm.priority]
        if (
            alarm.kind is AlarmKind.PHYSIOLOGICAL
            and cause == "reading"
            and alarm.state in (AlarmState.ENDED, AlarmState.LATCHED)
        ):
            assert reading is not None
            direction = alarm.direction
            assert direction is not None
            value = reading.values[alarm.signal]
            margin = DEFAULTS.margin(alarm.signal)
            assert not any(
                lv.beyond(direction, value, margin) for lv in levels[(alarm.signal, direction)]
            ), (alarm, value)
        if cause == "ack":
            assert alarm.state in (AlarmState.ACKNOWLEDGED, AlarmState.ENDED)
    for alarm in engine.active():
        assert alarm.state in (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.LATCHED)
        if alarm.state is AlarmState.LATCHED:
            assert latch and alarm.priority is Priority.HIGH


def _physiological_outcome(engine: AlarmEngine, changes: list[Alarm]) -> dict[str, tuple[Any, ...]]:
    """Physiological alarms and the technical rule judged on device time (HR vs pulse)."""
    final: dict[str, Alarm] = {}
    for a in changes:
        final[a.id] = a
    return {
        a.id: (a.signal, a.priority, a.condition, a.started_at, a.ended_at, a.state, a.value)
        for a in final.values()
        if a.kind is AlarmKind.PHYSIOLOGICAL or a.signal == "rate"
    }


# Scenarios with the pulse rate too, and long runs where off-delays and the RR rule matter.
rate_runs = st.lists(
    st.tuples(st.one_of(rate_values, cuff_values), st.integers(1, 60)), max_size=8
).map(lambda rs: [Step(1.0, "reading", v) for v, n in rs for _ in range(n)])


@st.composite
def rate_scenarios(draw: st.DrawFn) -> tuple[list[Step], bool, bool]:
    mixed = draw(
        st.lists(
            st.builds(
                Step,
                dt=st.sampled_from([0.5, 1.0, 1.0, 2.0, 5.0, 12.0]),
                action=st.just("reading"),
                values=st.one_of(rate_values, cuff_values),
            ),
            max_size=60,
        )
    ) + draw(rate_runs)
    order = draw(st.permutations(range(len(mixed)))) if len(mixed) < 12 else range(len(mixed))
    return [mixed[i] for i in order], draw(st.booleans()), draw(st.booleans())


@settings(max_examples=100, deadline=None)
@given(st.one_of(scenarios(), rate_scenarios()))
def test_replay_at_1x_and_60x_gives_identical_physiological_alarms(
    case: tuple[list[Step], bool, bool],
) -> None:
    """Contract: physiological alarms are judged on device time, whatever the arrival rate;
    so are off-delays, the rate source and the HR/pulse disagreement (docs/alarms.md)."""
    scenario, latch, baseline = case
    outcomes = []
    for speed, tick_every in ((1.0, 1), (60.0, 7)):
        engine = _engine(latch, baseline)
        changes: list[Alarm] = []
        t = T0
        readings = [s for s in scenario if s.action == "reading"]
        for seq, step in enumerate(readings):
            t += step.dt
            received = T0 + (t - T0) / speed + 0.05
            changes += engine.on_reading(
                Reading("dev-1", seq, t, received, step.values, None, "bed-1")
            )
            if seq % tick_every == 0:
                changes += engine.tick(received)
        outcomes.append(_physiological_outcome(engine, changes))
    assert outcomes[0] == outcomes[1]


ACTIONS = st.sampled_from(
    [
        "reading",
        "reading",
        "reading",
        "tick",
        "ack",
        "pause",
        "seen",
        "artefact",
        "session",
        "restore",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(ACTIONS, st.floats(-30, 120, allow_nan=False), signal_values, st.integers(0, 9)),
        max_size=80,
    )
)
def test_engine_never_raises_on_any_sequence_of_calls(
    calls: list[tuple[str, float, dict[str, float], int]],
) -> None:
    """Out-of-order times, duplicates, any values, any call order: no exception escapes."""
    engine = AlarmEngine(DEFAULTS.model_copy(update={"latch_high": True}))
    t = T0
    beds = ["bed-1", "bed-2"]
    for seq, (action, dt, values, k) in enumerate(calls):
        t += dt
        bed = beds[k % 2]
        if action == "reading":
            engine.on_reading(Reading(f"dev-{k % 3}", seq, t, t + k, values, None, bed))
        elif action == "tick":
            engine.tick(t)
        elif action == "ack":
            live = engine.active()
            if live:
                engine.acknowledge(live[k % len(live)].id, "n", t)
            else:
                try:
                    engine.acknowledge("bed-1.hr.high.0", "n", t)
                except UnknownAlarm:
                    pass
        elif action == "pause":
            engine.pause_audio(bed, t, None if k < 5 else float(k * 10))
        elif action == "seen":
            engine.device_seen(bed, f"dev-{k % 3}", t)
        elif action == "artefact":
            engine.on_artefact(bed, f"dev-{k % 3}", "invalid_value", t)
        elif action == "session":
            phase = [None, "baseline", "infusion", "recovery", "ended"][k % 5]
            engine.set_session(bed, k if k % 2 else None, phase, {"sbp": 100.0 + k}, None, now=t)
        else:
            restored = AlarmEngine(engine.config)
            restored.restore(engine.active())
            assert {a.id for a in restored.active()} == {a.id for a in engine.active()}
            engine = restored
    for alarm in engine.active():
        assert alarm.ended_at is None


# A 1 Hz stream without gaps: runs of one value each, long enough for every delay.
steady_runs = st.lists(st.tuples(rate_values, st.integers(1, 45)), min_size=1, max_size=10).map(
    lambda rs: [v for v, n in rs for _ in range(n)]
)


@settings(max_examples=200, deadline=None)
@given(steady_runs, st.booleans())
def test_no_true_sustained_condition_is_missed(stream: list[dict[str, float]], latch: bool) -> None:
    """Whenever a condition has held in every reading for its delay, an alarm of that signal
    and side is live, at that level's priority or above (a low RR that SpO2 and HR do not echo
    is kept at low priority by the respiration rule, never dropped). docs/alarms.md."""
    engine = AlarmEngine(DEFAULTS.model_copy(update={"latch_high": latch}))
    levels = build_levels(DEFAULTS)
    onsets: dict[tuple[str, str, str], float] = {}
    hr_seen: float | None = None
    for seq, values in enumerate(stream):
        t = T0 + seq
        engine.on_reading(Reading("dev-1", seq, t, t, values, None, "bed-1"))
        # The rate judged: the ECG HR when present on the bed (seen within 10 s), else pulse.
        if "hr" in values:
            hr_seen = t
        judged = {k: v for k, v in values.items() if k not in ("hr", "pr")}
        if "hr" in values:
            judged["hr"] = values["hr"]
        elif "pr" in values and (hr_seen is None or t - hr_seen > 10):
            judged["hr"] = values["pr"]
        live = {
            (a.signal, a.direction): a for a in engine.active() if a.kind is AlarmKind.PHYSIOLOGICAL
        }
        for (signal, direction), group in levels.items():
            if signal not in ("hr", "spo2", "rr"):
                continue
            for lv in group:
                key = (signal, direction, lv.label)
                if signal in judged and lv.beyond(direction, judged[signal]):
                    onsets.setdefault(key, t)
                else:
                    onsets.pop(key, None)
                    continue
                if t - onsets[key] < lv.delay:
                    continue
                alarm = live.get((signal, direction))
                assert alarm is not None, (key, t - T0)
                floor = "low" if (signal, direction) == ("rr", "low") else lv.priority
                assert PRIORITY_RANK[alarm.priority] >= PRIORITY_RANK[floor], (alarm, lv)
