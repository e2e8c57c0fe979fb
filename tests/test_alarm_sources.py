"""Heart rate vs pulse rate, and respiratory alarms that weigh their sensor (docs/alarms.md,
"Heart rate and pulse rate" and "Respiratory rate from impedance")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from monitor.alarms import AlarmEngine, ConfigError, load_config
from monitor.alarms.config import parse_config
from monitor.core.model import Alarm, AlarmKind, AlarmState, Priority, Reading
from tests.factories import T0, make_reading

DEFAULTS = load_config(None)
Values = Callable[[int], dict[str, float]]


def _play(
    values: Values, seconds: range, *, engine: AlarmEngine | None = None, device: str = "dev-1"
) -> tuple[AlarmEngine, dict[str, Alarm]]:
    """One reading a second; ``values(t)`` may depend on t. Returns the last copy of each alarm."""
    engine = engine or AlarmEngine(DEFAULTS)
    last: dict[str, Alarm] = {}
    for t in seconds:
        v = values(t)
        if not v:
            continue
        for a in engine.on_reading(
            make_reading(v, ts=T0 + t, seq=t, device_id=device, received_at=T0 + t)
        ):
            last[a.id] = a
    return engine, last


def _summary(alarms: dict[str, Alarm]) -> list[tuple[str, str, str, float]]:
    return [(a.kind, a.signal, a.priority, a.started_at - T0) for a in alarms.values()]


# --- which rate the heart-rate limits judge -----------------------------------------------------


def test_a_poor_probe_never_raises_bradycardia_while_the_ecg_is_normal() -> None:
    """Pulse 37-49 beside ECG HR 71-83: no physiological alarm; after 30 s apart by more than
    20 /min, one low technical alarm says to check leads and probe."""
    _, alarms = _play(
        lambda t: {"hr": 71.0 + t % 13, "pr": 37.0 + t % 13, "spo2": 97.0}, range(300)
    )
    assert _summary(alarms) == [("technical", "rate", "low", 30.0)]
    (alarm,) = alarms.values()
    assert alarm.condition == "HR and pulse disagree: check leads and probe"
    assert alarm.state is AlarmState.ACTIVE


def test_the_disagreement_ends_once_the_two_agree_for_30_s() -> None:
    """clear_s: the technical alarm ends after 30 s of agreement, cleared at the first."""
    _, alarms = _play(lambda t: {"hr": 80.0, "pr": 40.0 if t < 100 else 79.0}, range(200))
    (alarm,) = alarms.values()
    assert alarm.state is AlarmState.ENDED
    assert (alarm.detail["cleared_at"], alarm.ended_at) == (T0 + 100, T0 + 130)


def test_brief_disagreement_raises_nothing() -> None:
    """ECG undercounting for 9 s (as in bidmc_45) is below the 30 s delay."""
    _, alarms = _play(lambda t: {"hr": 45.0 if 85 <= t < 94 else 60.0, "pr": 66.0}, range(200))
    assert alarms == {}


def test_the_pulse_is_judged_when_no_ecg_rate_is_present() -> None:
    """ECG leads off (no hr): after the 10 s gap the pulse drives the rate alarm, and the
    alarm says so (condition names pr, detail.source)."""
    _, alarms = _play(lambda t: {"pr": 130.0, "spo2": 97.0}, range(100))
    (alarm,) = alarms.values()
    assert (alarm.signal, alarm.priority, alarm.condition) == ("hr", Priority.MEDIUM, "pr > 120")
    assert alarm.detail["source"] == "pr" and alarm.started_at == T0 + 30


def test_one_tachycardia_is_one_alarm_when_the_ecg_drops_out_and_returns() -> None:
    """hr 125 then leads off for 200 s with the pulse at 125, then hr back: one alarm."""
    _, alarms = _play(
        lambda t: {**({} if 50 <= t < 250 else {"hr": 125.0}), "pr": 125.0}, range(300)
    )
    assert _summary(alarms) == [("physiological", "hr", "medium", 30.0)]


def test_two_devices_on_one_bed_do_not_interleave_in_one_tracker() -> None:
    """An ECG monitor sends hr 80, an oximeter sends pr 130 (poor probe) in their own readings:
    the ECG is present, so the pulse is never judged; only the disagreement alarm, 30 s after
    the first paired reading (the oximeter's, half a second after the ECG's)."""
    engine = AlarmEngine(DEFAULTS)
    last: dict[str, Alarm] = {}
    for t in range(120):
        for device, values in (("ecg", {"hr": 80.0}), ("oxi", {"pr": 130.0, "spo2": 97.0})):
            for a in engine.on_reading(
                make_reading(
                    values,
                    ts=T0 + t + (0.5 if device == "oxi" else 0),
                    seq=t,
                    device_id=device,
                    received_at=T0 + t,
                )
            ):
                last[a.id] = a
    assert _summary(last) == [("technical", "rate", "low", 30.5)]


def test_a_clinic_may_judge_the_pulse_first() -> None:
    """rate.sources: [pr, hr] judges the pulse whenever it is present."""
    cfg = DEFAULTS.model_copy(
        update={"rate": DEFAULTS.rate.model_copy(update={"sources": ("pr", "hr")})}
    )
    _, alarms = _play(lambda t: {"hr": 80.0, "pr": 45.0}, range(100), engine=AlarmEngine(cfg))
    phys = [a for a in alarms.values() if a.kind is AlarmKind.PHYSIOLOGICAL]
    assert [(a.condition, a.started_at - T0) for a in phys] == [("pr < 50", 30.0)]


def test_pr_has_no_limits_of_its_own() -> None:
    """The heart-rate limits judge whichever rate is chosen; limits.pr is refused."""
    data = DEFAULTS.model_dump()
    data["limits"]["pr"] = {"low": {"medium": 50}}
    with pytest.raises(ConfigError, match="pr is judged with hr's limits"):
        parse_config(data)
    data = DEFAULTS.model_dump()
    data["rate"] = {"sources": ["hr", "hr"]}
    with pytest.raises(ConfigError, match="rate.sources"):
        parse_config(data)


# --- respiratory rate from impedance ------------------------------------------------------------

STEADY = {"hr": 80.0, "pr": 80.0, "spo2": 99.0}


def _rr(rr: Callable[[int], float | None], others: Values = lambda t: STEADY) -> Values:
    def values(t: int) -> dict[str, float]:
        v = dict(others(t))
        r = rr(t)
        if r is not None:
            v["rr"] = r
        return v

    return values


def test_impedance_rr_falling_alone_is_kept_at_low_priority() -> None:
    """RR 0 for 170 s with SpO2 99 and HR flat: one alarm, low priority, never silenced."""
    _, alarms = _play(_rr(lambda t: 0.0 if 50 <= t < 220 else 14.0), range(300))
    (alarm,) = alarms.values()
    assert (alarm.signal, alarm.priority, alarm.started_at) == ("rr", Priority.LOW, T0 + 65)
    assert alarm.condition == "rr < 6 (RR alone: SpO2 and HR steady)"
    assert alarm.detail["cleared_at"] == T0 + 220


def test_rr_vanishing_raises_nothing() -> None:
    """No RR value is not a low RR (a missing key means not measured)."""
    _, alarms = _play(_rr(lambda t: None if 50 <= t < 220 else 14.0), range(300))
    assert alarms == {}


@pytest.mark.parametrize(
    ("what", "others", "priority", "reason"),
    [
        (
            "SpO2 falls 3 points",
            lambda t: {**STEADY, "spo2": 99.0 - min(4.0, max(0.0, (t - 70) / 5))},
            "high",
            "SpO2 fell 99 to 96",
        ),
        (
            "HR rises by 20",
            lambda t: {**STEADY, "hr": 80.0 + min(25.0, max(0.0, t - 80.0))},
            "high",
            "HR 80 to 100",
        ),
    ],
)
def test_rr_low_takes_its_limit_priority_when_the_patient_shows_it(
    what: str, others: Values, priority: str, reason: str
) -> None:
    """SpO2 falling or HR changing since the RR condition began: the priority its limits give."""
    _, alarms = _play(_rr(lambda t: 4.0 if 50 <= t < 200 else 14.0, others), range(250))
    rr = [a for a in alarms.values() if a.signal == "rr"]
    assert len(rr) == 1, what
    assert rr[0].priority == priority and rr[0].detail["weighed"] == reason, what


def test_rr_low_alone_for_240_s_takes_its_limit_priority() -> None:
    """Duration: supplemental oxygen can keep SpO2 normal during hypoventilation."""
    _, alarms = _play(_rr(lambda t: 5.0 if 50 <= t < 350 else 14.0), range(400))
    (alarm,) = alarms.values()
    assert alarm.priority is Priority.HIGH and alarm.condition == "rr < 6 (for 240 s)"


def test_without_spo2_rr_is_judged_at_face_value() -> None:
    """Nothing to weigh it by: the limits' priority."""
    _, alarms = _play(lambda t: {"rr": 5.0}, range(100))
    (alarm,) = alarms.values()
    assert alarm.priority is Priority.HIGH and alarm.condition == "rr < 6"


def test_the_rule_can_be_switched_off_and_never_touches_spo2() -> None:
    """respiration.enabled: false judges RR at face value; SpO2 alarms are the same either way."""
    off = DEFAULTS.model_copy(
        update={"respiration": DEFAULTS.respiration.model_copy(update={"enabled": False})}
    )
    desat = _rr(lambda t: 4.0, lambda t: {**STEADY, "spo2": 84.0 if t > 40 else 99.0})
    _, on_alarms = _play(desat, range(120))
    _, off_alarms = _play(desat, range(120), engine=AlarmEngine(off))
    spo2 = lambda alarms: [  # noqa: E731
        (a.priority, a.started_at, a.ended_at) for a in alarms.values() if a.signal == "spo2"
    ]
    assert spo2(on_alarms) == spo2(off_alarms) == [("high", T0 + 51, None)]
    assert [a.priority for a in off_alarms.values() if a.signal == "rr"] == ["high"]


def test_a_restored_rr_alone_alarm_stays_low_after_a_restart() -> None:
    """restore(): what SpO2 and HR were at the onset is kept in the alarm, so a restart does
    not turn a low "RR alone" alarm into a high one while nothing else changed."""
    engine, alarms = _play(_rr(lambda t: 0.0), range(60))
    (alarm,) = alarms.values()
    assert alarm.priority is Priority.LOW
    restored = AlarmEngine(DEFAULTS)
    restored.restore(engine.active())
    _, later = _play(_rr(lambda t: 0.0), range(60, 120), engine=restored)
    assert later == {}  # no change: still the same low alarm
    assert [a.priority for a in restored.active()] == ["low"]


def test_the_shipped_defaults_are_the_documented_ones() -> None:
    """docs/alarms.md: off-delays SpO2 15 s, HR 30 s, RR 30 s; ECG HR first, then pulse;
    disagreement beyond 20 /min for 30 s, low; RR weighed: 3 points SpO2, 20 /min HR, 240 s."""
    assert DEFAULTS.off_delays == {"spo2": 15, "hr": 30, "rr": 30}
    assert DEFAULTS.rate.sources == ("hr", "pr")
    d = DEFAULTS.rate.disagreement
    assert (d.margin, d.delay_s, d.clear_s, d.priority) == (20, 30, 30, Priority.LOW)
    r = DEFAULTS.respiration
    assert (r.enabled, r.alone_priority, r.spo2_drop, r.hr_change, r.duration_s) == (
        True,
        "low",
        3,
        20,
        240,
    )


def _rebuilt(first: AlarmEngine, readings: list[Reading], window: slice) -> AlarmEngine:
    """A second engine rebuilt from the stored record, as after a restart: open alarms plus
    the readings of a window (monitor/alarms/replay.py)."""
    from monitor.alarms.replay import Record, replay

    stored = first.active()
    engine = AlarmEngine(DEFAULTS)
    replay(
        engine,
        "bed-1",
        Record(sessions=[], open_alarms=stored, recent_alarms=stored, readings=readings[window]),
        now=readings[-1].received_at,
        last_seen={"dev-1": readings[-1].received_at},
        seen_now=True,
    )
    return engine


def _readings(values: Values, seconds: range) -> list[Reading]:
    return [make_reading(values(t), ts=T0 + t, seq=t, received_at=T0 + t) for t in seconds]


def test_a_restart_continues_the_disagreement_alarm_instead_of_raising_a_second() -> None:
    """The stored HR/pulse alarm is restored before the replay (device time), so a replay
    window that starts after its onset does not raise another one."""
    readings = _readings(lambda t: {"hr": 78.0, "pr": 40.0, "spo2": 97.0}, range(90))
    first = AlarmEngine(DEFAULTS)
    for r in readings:
        first.on_reading(r)
    (alarm,) = first.active()
    rebuilt = _rebuilt(first, readings, slice(40, None))
    assert [a.id for a in rebuilt.active()] == [alarm.id]


def test_a_restart_does_not_let_the_pulse_end_an_ecg_tachycardia() -> None:
    """ECG 130 with a pulse deficit (pr 100): after a restart the pulse readings from before
    the restored alarm's cut are not judged in place of the ECG's, so the alarm stays."""
    readings = _readings(lambda t: {"hr": 130.0, "pr": 100.0}, range(120))
    first = AlarmEngine(DEFAULTS)
    for r in readings:
        first.on_reading(r)
    tachy = [a for a in first.active() if a.kind is AlarmKind.PHYSIOLOGICAL]
    assert [(a.signal, a.condition) for a in tachy] == [("hr", "hr > 120")]
    rebuilt = _rebuilt(first, readings, slice(0, None))
    assert [a.id for a in rebuilt.active() if a.kind is AlarmKind.PHYSIOLOGICAL] == [tachy[0].id]
