"""The alarm off-delay, as lifecycle tables (docs/alarms.md, "Off-delay"; lifecycle rule 6a).

Defaults used here: HR > 120 medium after 30 s, > 140 high after 10 s, hysteresis 5 /min (clear
at 115 or below), HR off-delay 30 s; SpO2 < 90 after 15 s, clear at 92, off-delay 15 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from monitor.alarms import AlarmEngine, load_config
from monitor.core.model import Alarm, AlarmKind, AlarmState, Priority
from tests.factories import T0, make_reading

DEFAULTS = load_config(None)


@dataclass
class Run:
    """Every change the engine returned, and the last copy of each alarm."""

    changes: list[Alarm]
    last: dict[str, Alarm]

    def ids(self) -> list[str]:
        return list(self.last)


def _play(
    engine: AlarmEngine,
    segments: list[tuple[float | None, int]],
    *,
    signal: str = "hr",
    start: int = 0,
    ack_at: int | None = None,
    tick_at: int | None = None,
) -> Run:
    """Feed ``segments`` of (value, seconds) at 1 Hz from ``start``; None = no readings (a gap).
    ``ack_at``/``tick_at``: acknowledge the live alarm / tick the server clock at that second."""
    run = Run([], {})
    t = start
    for value, seconds in segments:
        for _ in range(seconds):
            if value is not None:
                changed = engine.on_reading(
                    make_reading({signal: value}, ts=T0 + t, seq=t, received_at=T0 + t)
                )
                run.changes += changed
            if t == ack_at:
                (live,) = [a for a in engine.active() if a.kind is AlarmKind.PHYSIOLOGICAL]
                run.changes += engine.acknowledge(live.id, "nina", T0 + t)
            if t == tick_at:
                run.changes += engine.tick(T0 + t)
            t += 1
    for a in run.changes:
        if a.kind is AlarmKind.PHYSIOLOGICAL:
            run.last[a.id] = a
    return run


def _engine(**update: object) -> AlarmEngine:
    return AlarmEngine(DEFAULTS.model_copy(update=update) if update else DEFAULTS)


# (what happens, segments, expected alarms: (state, started_at s, cleared_at s, ended_at s))
RECURRENCE = [
    (
        "a 20 s dip inside the 30 s off-delay: one alarm, still active",
        [(125.0, 40), (110.0, 20), (125.0, 40)],
        [("active", 30, None, None)],
    ),
    (
        "a 35 s dip outlasts the off-delay: the first ends 30 s into the dip, a new one follows",
        [(125.0, 40), (110.0, 35), (125.0, 40)],
        [("ended", 30, 40, 70), ("active", 105, None, None)],
    ),
    (
        "a reading in the hysteresis band (118) breaks the clear run: it starts again",
        [(125.0, 40), (110.0, 20), (118.0, 1), (110.0, 29), (125.0, 5)],
        [("active", 30, None, None)],
    ),
    (
        "clear runs restart after the band reading, then last the full off-delay",
        [(125.0, 40), (110.0, 20), (118.0, 1), (110.0, 31)],
        [("ended", 30, 61, 91)],
    ),
    (
        "a gap of 15 s in the readings restarts the clear run (a gap is not evidence)",
        [(125.0, 40), (110.0, 20), (None, 15), (110.0, 25)],
        [("active", 30, None, None)],
    ),
    (
        "after the gap the clear run lasts 30 s from the first reading back",
        [(125.0, 40), (110.0, 20), (None, 15), (110.0, 31)],
        [("ended", 30, 75, 105)],
    ),
]


@pytest.mark.parametrize(
    ("what", "segments", "expected"), RECURRENCE, ids=[r[0] for r in RECURRENCE]
)
def test_off_delay_recurrence_inside_and_outside(
    what: str, segments: list[tuple[float | None, int]], expected: list[tuple[object, ...]]
) -> None:
    """docs/alarms.md: an alarm ends only once its condition stayed clear for the off-delay;
    a recurrence within it is the same alarm."""
    run = _play(_engine(), segments)
    got = [
        (
            a.state,
            a.started_at - T0,
            a.detail["cleared_at"] - T0 if "cleared_at" in a.detail else None,  # type: ignore[operator]
            a.ended_at - T0 if a.ended_at is not None else None,
        )
        for a in run.last.values()
    ]
    assert got == expected, what


def test_recurrence_inside_the_off_delay_keeps_the_acknowledgement() -> None:
    """Same id, same acknowledgement state: no re-alert, no second acknowledgement needed."""
    engine = _engine()
    run = _play(engine, [(125.0, 40), (110.0, 20), (125.0, 40)], ack_at=35)
    (alarm,) = run.last.values()
    assert alarm.state is AlarmState.ACKNOWLEDGED
    assert alarm.acknowledged_at == T0 + 35 and alarm.acknowledged_by == "nina"
    assert "acks" not in alarm.detail  # no re-alert moved the acknowledgement away
    assert [a.state for a in run.changes] == ["active", "acknowledged"]  # nothing else changed


def test_recurrence_outside_the_off_delay_is_a_new_unacknowledged_alarm() -> None:
    """Past the off-delay the acknowledged alarm ended; the next one must be acknowledged."""
    engine = _engine()
    run = _play(engine, [(125.0, 40), (110.0, 35), (125.0, 40)], ack_at=35)
    first, second = run.last.values()
    assert (first.state, first.acknowledged_by) == (AlarmState.ENDED, "nina")
    assert (second.state, second.acknowledged_at) == (AlarmState.ACTIVE, None)
    assert first.id != second.id


def test_a_worse_condition_inside_the_off_delay_raises_the_same_alarm() -> None:
    """Escalating to high during the off-delay is a RAISE of the same alarm (rule 3)."""
    run = _play(_engine(), [(125.0, 40), (110.0, 10), (145.0, 11)], ack_at=35)
    (alarm,) = run.last.values()
    assert (alarm.priority, alarm.state, alarm.condition) == (
        Priority.HIGH,
        AlarmState.ACTIVE,
        "hr > 140",
    )
    assert alarm.detail["acks"] == [{"at": T0 + 35, "by": "nina"}]  # re-alerted


LATCH = [
    # segments of hr, expected (state, cleared_at s) at the end
    ("clear for 20 s: still active, not yet latched", [(145.0, 15), (110.0, 20)], ("active", None)),
    (
        "clear for 30 s: latched, cleared at the first clear reading",
        [(145.0, 15), (110.0, 31)],
        ("latched", 15),
    ),
    (
        "back within the off-delay: still active, nothing happened",
        [(145.0, 15), (110.0, 20), (145.0, 2)],
        ("active", None),
    ),
    (
        "back after latching: the same alarm recurs, active",
        [(145.0, 15), (110.0, 31), (145.0, 11)],
        ("active", None),
    ),
]


@pytest.mark.parametrize(("what", "segments", "expected"), LATCH, ids=[r[0] for r in LATCH])
def test_off_delay_with_latching(
    what: str, segments: list[tuple[float, int]], expected: tuple[object, object]
) -> None:
    """Latching keeps its meaning: a high alarm latches once its condition stayed clear for
    the off-delay; a recurrence before that is no event; after it, RECUR (same alarm)."""
    run = _play(_engine(latch_high=True), segments)
    (alarm,) = run.last.values()
    cleared = alarm.detail.get("cleared_at")
    assert (alarm.state, cleared - T0 if isinstance(cleared, float) else None) == expected, what


def test_escalation_runs_on_through_the_off_delay() -> None:
    """An unacknowledged medium alarm escalates 180 s after it alerted even while its
    condition is clear within the off-delay; the recurrence keeps it escalated (same alarm)."""
    engine = _engine()
    run = _play(engine, [(125.0, 200), (110.0, 20), (125.0, 5)], tick_at=212)
    (alarm,) = run.last.values()
    assert alarm.state is AlarmState.ACTIVE and alarm.escalated
    assert alarm.detail["alerted_at"] == T0 + 30  # no re-alert restarted the clock


def test_an_acknowledged_alarm_in_its_off_delay_does_not_escalate() -> None:
    """Escalation is for alarms nobody acknowledged (rule 8), off-delay or not."""
    engine = _engine()
    run = _play(engine, [(125.0, 200), (110.0, 20)], ack_at=100, tick_at=212)
    (alarm,) = run.last.values()
    assert alarm.state is AlarmState.ACKNOWLEDGED and not alarm.escalated


def test_spo2_off_delay_is_its_own() -> None:
    """Per signal: SpO2's off-delay is 15 s (a 10 s climb to 93 keeps the alarm, 16 s ends it)."""
    kept = _play(_engine(), [(88.0, 16), (93.0, 10), (88.0, 3)], signal="spo2")
    assert [a.state for a in kept.last.values()] == ["active"]
    ended = _play(_engine(), [(88.0, 16), (93.0, 16)], signal="spo2")
    assert [(a.state, a.ended_at) for a in ended.last.values()] == [("ended", T0 + 31)]


def test_off_delay_zero_ends_at_the_first_clear_reading() -> None:
    """A clinic that sets the off-delay to 0 gets the earlier behaviour back."""
    run = _play(_engine(off_delays={}), [(125.0, 40), (110.0, 1)])
    (alarm,) = run.last.values()
    assert (alarm.state, alarm.ended_at, alarm.detail["cleared_at"]) == (
        AlarmState.ENDED,
        T0 + 40,
        T0 + 40,
    )


def test_off_delays_are_validated() -> None:
    """Off-delays exist only for continuous signals and cannot be negative."""
    from monitor.alarms import ConfigError
    from monitor.alarms.config import parse_config

    base = DEFAULTS.model_dump()
    for bad in ({"sbp": 30}, {"hr": -1}):
        with pytest.raises(ConfigError, match="off_delays"):
            parse_config({**base, "off_delays": bad})
