"""Alarm engine rules, one table or scenario per rule (docs/alarms.md, docs/protocol.md).

Over 500 lines, one unit: its tables follow docs/alarms.md rule by rule, so a reader checks
the doc against one file; the engine's other subjects (properties, off-delay, sources, the
gate) have modules of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from monitor.alarms import AlarmEngine, ClinicConfig, ConfigError, UnknownAlarm, load_config
from monitor.core.model import (
    ID_PATTERN,
    Alarm,
    AlarmKind,
    AlarmState,
    Direction,
    Priority,
    Reading,
)
from monitor.wire.feed import alarm_json, alarm_message
from tests.factories import T0, make_reading

# The rules one at a time: with the off-delay at 0 an alarm ends at its first clear reading.
# The off-delay has its own tables (tests/test_alarm_off_delay.py).
DEFAULTS = load_config(None).model_copy(update={"off_delays": {}})


def _engine(**update: object) -> AlarmEngine:
    return AlarmEngine(DEFAULTS.model_copy(update=update) if update else DEFAULTS)


def _feed(
    engine: AlarmEngine,
    values: dict[str, float],
    seconds: Iterable[float],
    *,
    bed: str = "bed-1",
    device: str = "dev-1",
    lag: float = 0.0,
) -> list[Alarm]:
    """One reading per listed second (device time T0 + s, received ``lag`` later)."""
    out: list[Alarm] = []
    for s in seconds:
        out += engine.on_reading(
            make_reading(
                dict(values),
                ts=T0 + s,
                seq=int(s * 10),
                bed_id=bed,
                device_id=device,
                received_at=T0 + s + lag,
            )
        )
    return out


def _phys(alarms: list[Alarm]) -> list[Alarm]:
    """Physiological changes only (the readings' device also falls silent in these tests)."""
    return [a for a in alarms if a.kind is AlarmKind.PHYSIOLOGICAL]


def _cuff(
    engine: AlarmEngine, values: dict[str, float], s: float, bed: str = "bed-1"
) -> list[Alarm]:
    return engine.on_reading(make_reading(values, ts=T0 + s, bed_id=bed, source="nibp"))


# --- continuous signals: limit, priority and condition delay -----------------------------------

CONTINUOUS = [
    # signal, value, priority, condition, delay (s)
    ("spo2", 88.0, "medium", "spo2 < 90", 15),
    ("spo2", 84.0, "high", "spo2 < 85", 10),
    ("hr", 125.0, "medium", "hr > 120", 30),
    ("hr", 145.0, "high", "hr > 140", 10),
    ("hr", 45.0, "medium", "hr < 50", 30),
    ("hr", 35.0, "high", "hr < 40", 10),
    ("rr", 7.0, "medium", "rr < 8", 30),
    ("rr", 5.0, "high", "rr < 6", 15),
    ("rr", 31.0, "medium", "rr > 30", 30),
]


@pytest.mark.parametrize(("signal", "value", "priority", "condition", "delay"), CONTINUOUS)
def test_continuous_alarm_waits_out_its_delay(
    signal: str, value: float, priority: str, condition: str, delay: int
) -> None:
    """§3 table: a continuous condition becomes an alarm only after holding for its delay."""
    engine = _engine()
    before = _feed(engine, {signal: value}, range(delay))
    assert before == []
    (alarm,) = _feed(engine, {signal: value}, [delay])
    assert (alarm.signal, alarm.kind, alarm.priority, alarm.condition) == (
        signal,
        "physiological",
        priority,
        condition,
    )
    assert alarm.started_at == T0 + delay
    assert alarm.detail["onset"] == T0
    assert alarm.state is AlarmState.ACTIVE


@pytest.mark.parametrize(
    ("signal", "value"), [("spo2", 90.0), ("hr", 120.0), ("hr", 50.0), ("rr", 8.0), ("rr", 30.0)]
)
def test_values_on_the_limit_do_not_alarm(signal: str, value: float) -> None:
    """§3: the limits are strict (< 90, > 120): the limit value itself is normal."""
    engine = _engine()
    assert _feed(engine, {signal: value}, range(120)) == []


# --- cuff signals: per reading, no delay, never interpolated -----------------------------------

CUFF = [
    ({"sbp": 180.0}, "sbp", "medium", "sbp >= 180"),
    ({"sbp": 200.0}, "sbp", "high", "sbp >= 200"),
    ({"sbp": 89.0}, "sbp", "medium", "sbp < 90"),
    ({"sbp": 79.0}, "sbp", "high", "sbp < 80"),
    ({"dbp": 110.0}, "dbp", "medium", "dbp >= 110"),
    ({"dbp": 120.0}, "dbp", "high", "dbp >= 120"),
    ({"map": 64.0}, "map", "medium", "map < 65"),
    ({"map": 54.0}, "map", "high", "map < 55"),
]


@pytest.mark.parametrize(("values", "signal", "priority", "condition"), CUFF)
def test_one_cuff_reading_beyond_a_limit_alarms_at_once(
    values: dict[str, float], signal: str, priority: str, condition: str
) -> None:
    """§3: cuff values are judged per reading, with no time delay."""
    engine = _engine()
    (alarm,) = _cuff(engine, values, 0)
    assert (alarm.signal, alarm.priority, alarm.condition, alarm.started_at) == (
        signal,
        priority,
        condition,
        T0,
    )


def test_normal_cuff_triple_raises_nothing() -> None:
    """Values just inside every cuff limit are normal."""
    assert _cuff(_engine(), {"sbp": 179.0, "dbp": 109.0, "map": 65.0}, 0) == []


def test_cuff_alarm_lasts_until_the_next_cuff_reading_not_a_clock() -> None:
    """Cuff values are never interpolated: the alarm holds until another cuff reading."""
    engine = _engine()
    (alarm,) = _cuff(engine, {"sbp": 185.0}, 0)
    assert _feed(engine, {"hr": 70.0}, range(1, 600)) == []
    assert all(a.state is not AlarmState.ENDED for a in _phys(engine.tick(T0 + 600)))
    assert [a.id for a in engine.active() if a.signal == "sbp"] == [alarm.id]
    (ended,) = _cuff(engine, {"sbp": 150.0}, 600)
    assert ended.id == alarm.id and ended.state is AlarmState.ENDED and ended.ended_at == T0 + 600


# --- hysteresis --------------------------------------------------------------------------------

HYSTERESIS = [
    # signal, alarming value, still alarming (inside by less than margin), cleared, delay
    ("spo2", 88.0, 91.9, 92.0, 15),
    ("hr", 125.0, 115.1, 115.0, 30),
    ("rr", 7.0, 9.9, 10.0, 30),
]


@pytest.mark.parametrize(("signal", "bad", "held", "cleared", "delay"), HYSTERESIS)
def test_continuous_alarm_clears_only_beyond_its_hysteresis(
    signal: str, bad: float, held: float, cleared: float, delay: int
) -> None:
    """§3: a condition clears only once back inside the limit by the margin."""
    engine = _engine()
    (alarm,) = _feed(engine, {signal: bad}, range(delay + 1))
    assert _feed(engine, {signal: held}, range(delay + 1, delay + 60)) == []
    (ended,) = _feed(engine, {signal: cleared}, [delay + 60])
    assert (
        ended.id == alarm.id
        and ended.state is AlarmState.ENDED
        and ended.ended_at == T0 + delay + 60
    )


CUFF_HYSTERESIS = [
    ("sbp", 185.0, 175.0, 174.9),
    ("sbp", 85.0, 94.9, 95.0),
    ("dbp", 112.0, 105.0, 104.0),
    ("map", 60.0, 69.9, 70.0),
]


@pytest.mark.parametrize(("signal", "bad", "held", "cleared"), CUFF_HYSTERESIS)
def test_cuff_alarm_clears_only_beyond_its_hysteresis(
    signal: str, bad: float, held: float, cleared: float
) -> None:
    """§3: 5 mmHg margin for cuff pressures."""
    engine = _engine()
    (alarm,) = _cuff(engine, {signal: bad}, 0)
    assert _cuff(engine, {signal: held}, 300) == []
    (ended,) = _cuff(engine, {signal: cleared}, 600)
    assert ended.id == alarm.id and ended.state is AlarmState.ENDED


# --- scenarios ---------------------------------------------------------------------------------


def test_sustained_desaturation_gives_medium_then_high_on_one_alarm() -> None:
    """§3: SpO2 < 90 for 15 s is medium; < 85 for 10 s more raises the same alarm to high."""
    engine = _engine()
    (medium,) = _feed(engine, {"spo2": 88.0}, range(0, 16))
    assert (medium.priority, medium.started_at) == (Priority.MEDIUM, T0 + 15)
    assert _feed(engine, {"spo2": 83.0}, range(16, 26)) == []
    (high,) = _feed(engine, {"spo2": 83.0}, [26])
    assert high.id == medium.id
    assert (high.priority, high.condition, high.state) == (
        Priority.HIGH,
        "spo2 < 85",
        AlarmState.ACTIVE,
    )


def test_sudden_deep_desaturation_is_high_after_the_high_delay() -> None:
    """A drop straight below 85 is high after 10 s, without waiting for the medium delay."""
    engine = _engine()
    assert _feed(engine, {"spo2": 80.0}, range(10)) == []
    (alarm,) = _feed(engine, {"spo2": 80.0}, [10])
    assert alarm.priority is Priority.HIGH


def test_five_second_artefact_dip_raises_no_alarm() -> None:
    """A probe artefact shorter than every SpO2 delay never becomes an alarm."""
    engine = _engine()
    changes = _feed(engine, {"spo2": 97.0}, range(0, 30))
    changes += _feed(engine, {"spo2": 40.0}, range(30, 35))
    changes += _feed(engine, {"spo2": 97.0}, range(35, 120))
    assert changes == []


def test_a_gap_in_readings_restarts_the_delay() -> None:
    """The condition must hold in every reading of the window: a gap is not evidence."""
    engine = _engine()
    assert _feed(engine, {"spo2": 88.0}, range(0, 9)) == []
    assert _feed(engine, {"spo2": 88.0}, range(20, 35)) == []  # 11 s gap: restart at 20
    (alarm,) = _feed(engine, {"spo2": 88.0}, [35])
    assert alarm.started_at == T0 + 35 and alarm.detail["onset"] == T0 + 20


def test_late_readings_are_judged_on_device_time() -> None:
    """Contract: a burst of late readings is judged as if it had arrived live."""
    live, late = _engine(), _engine()
    a = _feed(live, {"spo2": 88.0}, range(20))
    b = _feed(late, {"spo2": 88.0}, range(20), lag=120.0)
    assert [(x.id, x.started_at, x.priority) for x in a] == [
        (y.id, y.started_at, y.priority) for y in b
    ]


def test_older_readings_never_break_a_judged_run() -> None:
    """An out-of-order reading (older device time) is ignored by the continuous rules."""
    engine = _engine()
    _feed(engine, {"spo2": 88.0}, range(0, 10))
    assert _feed(engine, {"spo2": 99.0}, [5.5]) == []
    (alarm,) = _feed(engine, {"spo2": 88.0}, range(10, 16))
    assert alarm.started_at == T0 + 15


def test_alarms_are_kept_per_bed() -> None:
    """One bed's readings never raise or end another bed's alarm."""
    engine = _engine()
    (a,) = _cuff(engine, {"sbp": 190.0}, 0, bed="bed-1")
    assert _cuff(engine, {"sbp": 120.0}, 10, bed="bed-2") == []
    assert [x.id for x in engine.active("bed-1")] == [a.id]
    assert engine.active("bed-2") == []


def test_alarm_ids_are_deterministic_and_url_safe() -> None:
    """Ids name bed, signal, direction and start, so a replay upserts the same rows."""
    ids = []
    for _ in range(2):
        engine = _engine()
        ids.append([a.id for a in _feed(engine, {"spo2": 88.0}, range(16))])
    assert ids[0] == ids[1] == [f"bed-1.spo2.low.{int(T0 * 1000) + 15000}"]
    assert re.fullmatch(r"[A-Za-z0-9._-]+", ids[0][0])
    assert ID_PATTERN.match(ids[0][0][:64])


def test_returned_alarms_are_copies() -> None:
    """The caller may keep or change what it gets without touching the engine's state."""
    engine = _engine()
    (alarm,) = _cuff(engine, {"sbp": 190.0}, 0)
    alarm.state = AlarmState.ENDED
    alarm.detail["x"] = 1
    (live,) = engine.active()
    assert live.state is AlarmState.ACTIVE and "x" not in live.detail


def test_reading_without_a_bed_is_refused() -> None:
    """The engine judges beds: the caller must say whose reading it is."""
    with pytest.raises(ValueError):
        _engine().on_reading(make_reading({"hr": 70.0}, bed_id=None))


# --- relative-to-baseline, phases, per-session overrides ---------------------------------------


def test_systolic_25_percent_over_baseline_is_a_low_advisory() -> None:
    """§3: systolic more than 25 % above the patient's baseline, low priority."""
    engine = _engine()
    engine.set_session("bed-1", 7, "infusion", {"sbp": 120.0, "hr": 70.0}, None)
    assert _cuff(engine, {"sbp": 150.0}, 0) == []
    (alarm,) = _cuff(engine, {"sbp": 151.0}, 300)
    assert (alarm.priority, alarm.signal, alarm.session_id) == (Priority.LOW, "sbp", 7)
    assert alarm.condition.startswith("sbp > 150")
    (raised,) = _cuff(engine, {"sbp": 182.0}, 600)
    assert (raised.id, raised.priority) == (alarm.id, Priority.MEDIUM)


def test_heart_rate_30_percent_over_baseline_is_low_after_its_delay() -> None:
    """§3: heart rate more than 30 % above baseline (70 -> > 91), low, with a delay."""
    engine = _engine()
    engine.set_session("bed-1", 7, "baseline", {"hr": 70.0}, None)
    assert _feed(engine, {"hr": 95.0}, range(30)) == []
    (alarm,) = _feed(engine, {"hr": 95.0}, [30])
    assert alarm.priority is Priority.LOW and "baseline 70" in alarm.condition


def test_without_a_baseline_no_relative_alarm() -> None:
    """The relative rules need a baseline; absolute limits still apply."""
    engine = _engine()
    engine.set_session("bed-1", 7, "infusion", None, None)
    assert _cuff(engine, {"sbp": 170.0}, 0) == []


def test_phase_limits_override_the_clinic_limits() -> None:
    """Per-phase overrides: a stricter SpO2 limit during infusion only."""
    cfg = ClinicConfig.model_validate(
        {
            **DEFAULTS.model_dump(),
            "phases": {"infusion": {"limits": {"spo2": {"low": {"medium": 92}}}}},
        }
    )
    engine = AlarmEngine(cfg)
    engine.set_session("bed-1", 1, "baseline", None, None)
    assert _feed(engine, {"spo2": 91.0}, range(30)) == []
    engine.set_session("bed-1", 1, "infusion", None, None)
    (alarm,) = _feed(engine, {"spo2": 91.0}, range(30, 46))
    assert alarm.condition == "spo2 < 92"


def test_session_overrides_move_limits_within_clinic_bounds() -> None:
    """GET/PUT limits: a session may move a limit inside the clinic's bounds only."""
    engine = _engine()
    engine.set_session("bed-1", 1, "infusion", None, {"spo2": {"low": {"medium": 88}}})
    assert _feed(engine, {"spo2": 89.0}, range(60)) == []
    with pytest.raises(ConfigError, match="bounds"):
        engine.set_session("bed-1", 1, "infusion", None, {"spo2": {"low": {"medium": 70}}})
    with pytest.raises(ConfigError, match="switch an alarm off"):
        DEFAULTS.check_overrides({"spo2": {"low": {"medium": None}}})
    with pytest.raises(ConfigError, match="beyond"):
        DEFAULTS.limits_for("infusion", {"spo2": {"low": {"medium": 84}}})


# --- acknowledgement, latching, escalation, audio pause ----------------------------------------


def test_acknowledged_high_alarm_stays_until_its_condition_clears() -> None:
    """§4: acknowledging keeps the alarm visible (and high) until the condition clears."""
    engine = _engine()
    (alarm,) = _feed(engine, {"spo2": 80.0}, range(11))
    (acked,) = engine.acknowledge(alarm.id, "nurse1", T0 + 20)
    assert (acked.state, acked.priority, acked.acknowledged_by) == (
        "acknowledged",
        "high",
        "nurse1",
    )
    assert _feed(engine, {"spo2": 80.0}, range(11, 120)) == []
    assert [a.state for a in engine.active("bed-1")] == ["acknowledged"]
    (ended,) = _feed(engine, {"spo2": 95.0}, [120])
    assert ended.state is AlarmState.ENDED and ended.acknowledged_at == T0 + 20
    assert engine.active() == []


def test_priority_rise_after_ack_re_alerts() -> None:
    """Acknowledging never lowers a priority; a worse condition after ack re-alerts."""
    engine = _engine()
    (alarm,) = _feed(engine, {"spo2": 88.0}, range(16))
    engine.acknowledge(alarm.id, "nurse1", T0 + 17)
    (raised,) = _feed(engine, {"spo2": 80.0}, range(16, 27))
    assert (raised.state, raised.priority, raised.acknowledged_at) == (
        AlarmState.ACTIVE,
        Priority.HIGH,
        None,
    )
    assert raised.detail["acks"] == [{"at": T0 + 17, "by": "nurse1"}]


def test_acknowledging_twice_or_an_unknown_alarm() -> None:
    """A second ack changes nothing; an unknown or ended alarm id is reported as such."""
    engine = _engine()
    (alarm,) = _cuff(engine, {"sbp": 190.0}, 0)
    assert len(engine.acknowledge(alarm.id, "a", T0 + 1)) == 1
    assert engine.acknowledge(alarm.id, "b", T0 + 2) == []
    assert engine.get(alarm.id).acknowledged_by == "a"  # type: ignore[union-attr]
    with pytest.raises(UnknownAlarm):
        engine.acknowledge("bed-1.sbp.high.0", "a", T0)


def test_latching_keeps_a_cleared_high_alarm_until_acknowledged() -> None:
    """§4: when the clinic enables latching, a cleared high alarm shows 'latched' until ack."""
    engine = _engine(latch_high=True)
    (alarm,) = _cuff(engine, {"sbp": 210.0}, 0)
    (latched,) = _cuff(engine, {"sbp": 120.0}, 300)
    assert latched.state is AlarmState.LATCHED and latched.ended_at is None
    assert [a.id for a in engine.active()] == [alarm.id]
    (ended,) = engine.acknowledge(alarm.id, "nurse1", T0 + 400)
    assert ended.state is AlarmState.ENDED and ended.ended_at == T0 + 400
    assert engine.active() == []


def test_latched_alarm_becomes_active_again_if_the_condition_recurs() -> None:
    """A recurring condition re-activates the latched alarm rather than opening another."""
    engine = _engine(latch_high=True)
    (alarm,) = _cuff(engine, {"sbp": 210.0}, 0)
    _cuff(engine, {"sbp": 120.0}, 300)
    (again,) = _cuff(engine, {"sbp": 205.0}, 600)
    assert (again.id, again.state) == (alarm.id, AlarmState.ACTIVE)


@pytest.mark.parametrize("latch", [False, True])
def test_medium_and_acknowledged_alarms_never_latch(latch: bool) -> None:
    """Only unacknowledged high alarms latch; medium ones end when their condition clears."""
    engine = _engine(latch_high=latch)
    (medium,) = _cuff(engine, {"sbp": 185.0}, 0)
    (high,) = _cuff(engine, {"map": 50.0}, 0)
    engine.acknowledge(high.id, "n", T0 + 1)
    ended = _cuff(engine, {"sbp": 120.0, "map": 90.0}, 300)
    assert sorted(a.state for a in ended) == ["ended", "ended"]


def test_unacknowledged_alarms_escalate_after_their_delay() -> None:
    """Escalation (server time): high unacknowledged 60 s, medium 180 s; low never."""
    engine = _engine()
    engine.set_session("bed-1", 1, "infusion", {"sbp": 100.0}, None)
    (high,) = _cuff(engine, {"map": 50.0}, 0)
    (medium,) = _cuff(engine, {"dbp": 112.0}, 0)
    (low,) = _cuff(engine, {"sbp": 130.0}, 0)
    assert _phys(engine.tick(T0 + 59)) == []
    (esc,) = _phys(engine.tick(T0 + 60))
    assert (esc.id, esc.escalated, esc.priority) == (high.id, True, Priority.HIGH)
    assert _phys(engine.tick(T0 + 179)) == []
    (esc2,) = _phys(engine.tick(T0 + 180))
    assert (esc2.id, esc2.escalated, esc2.priority) == (medium.id, True, Priority.MEDIUM)
    assert _phys(engine.tick(T0 + 10_000)) == []
    assert not engine.get(low.id).escalated  # type: ignore[union-attr]


def test_acknowledged_alarms_do_not_escalate() -> None:
    """Escalation is for alarms nobody acknowledged."""
    engine = _engine()
    (high,) = _cuff(engine, {"map": 50.0}, 0)
    engine.acknowledge(high.id, "n", T0 + 30)
    assert _phys(engine.tick(T0 + 120)) == []


def test_audio_pause_is_per_bed_keeps_the_visual_and_expires() -> None:
    """§4: pausing audio never hides the alarm nor silences another bed's or a later alarm."""
    engine = _engine()
    (a1,) = _cuff(engine, {"sbp": 190.0}, 0, bed="bed-1")
    (a2,) = _cuff(engine, {"sbp": 190.0}, 0, bed="bed-2")
    (paused,) = engine.pause_audio("bed-1", T0 + 10)
    assert (paused.id, paused.state, paused.audio_paused_until) == (
        a1.id,
        AlarmState.ACTIVE,
        T0 + 130,
    )
    assert engine.get(a2.id).audio_paused_until is None  # type: ignore[union-attr]
    (later,) = _cuff(engine, {"map": 50.0}, 20, bed="bed-1")
    assert later.audio_paused_until is None
    assert engine.audio_paused_until("bed-1", T0 + 20) == T0 + 130
    resumed = [a for a in engine.tick(T0 + 130) if a.id == a1.id]
    assert (
        resumed and resumed[0].audio_paused_until is None and resumed[0].state is AlarmState.ACTIVE
    )
    assert engine.audio_paused_until("bed-1", T0 + 130) is None


@pytest.mark.parametrize(
    ("pressed_at", "seconds", "repeats"),
    [
        (T0 + 1, 120, True),  # a double-tap: the end would move 1 s
        (T0 + 4.9, 120, True),
        (T0 + 5, 120, False),  # the end moves 5 s: a press of its own
        (T0 + 60, 120, False),  # a minute in: re-arms
        (T0 + 1, 30, True),  # a shorter press never shortens the pause in force
        (T0 + 121, 120, False),  # the first pause has expired
    ],
)
def test_a_pause_press_that_barely_moves_the_pause_end_only_repeats_it(
    pressed_at: float, seconds: float, repeats: bool
) -> None:
    """docs/api.md Repeats and races: a press moving the end by under PAUSE_REPEAT_S repeats."""
    engine = _engine()
    engine.pause_audio("bed-1", T0, 120)
    assert engine.pause_repeats("bed-1", pressed_at, seconds) is repeats
    assert engine.pause_repeats("bed-2", pressed_at, seconds) is False


def test_audio_pause_length_is_bounded() -> None:
    """The clinic sets the longest audio pause; zero or negative is not a pause."""
    engine = _engine()
    with pytest.raises(ValueError):
        engine.pause_audio("bed-1", T0, 301)
    with pytest.raises(ValueError):
        engine.pause_audio("bed-1", T0, 0)
    assert engine.pause_audio("bed-1", T0, 60) == []
    assert engine.audio_paused_until("bed-1") == T0 + 60


# --- technical alarms --------------------------------------------------------------------------


def test_silent_device_raises_a_technical_alarm_within_10_s_and_ends_when_data_resumes() -> None:
    """Contract: nothing for 10 s -> technical alarm, signal 'device', on the device's bed."""
    engine = _engine()
    engine.device_seen("bed-1", "dev-1", T0)
    assert engine.tick(T0 + 9.9) == []
    (alarm,) = engine.tick(T0 + 10)
    assert (alarm.kind, alarm.signal, alarm.bed_id, alarm.device_id) == (
        "technical",
        "device",
        "bed-1",
        "dev-1",
    )
    assert alarm.started_at == T0 + 10
    assert engine.tick(T0 + 20) == []
    (ended,) = engine.device_seen("bed-1", "dev-1", T0 + 25)
    assert (ended.id, ended.state, ended.ended_at) == (alarm.id, AlarmState.ENDED, T0 + 25)


def test_no_data_alarm_start_does_not_depend_on_tick_rate() -> None:
    """The alarm starts when the silence reached 10 s, however late the tick comes."""
    engine = _engine()
    engine.device_seen("bed-1", "dev-1", T0)
    (alarm,) = engine.tick(T0 + 47)
    assert alarm.started_at == T0 + 10


def test_readings_count_as_device_activity() -> None:
    """A device sending readings is not silent (server receive time)."""
    engine = _engine()
    _feed(engine, {"hr": 70.0}, range(0, 30))
    assert [a for a in engine.tick(T0 + 35) if a.signal == "device"] == []


def test_device_that_stops_sending_spo2_raises_no_spo2_value() -> None:
    """§4 technical: probe off (no SpO2 value) while the device still sends other values."""
    engine = _engine()
    _feed(engine, {"spo2": 97.0, "hr": 70.0}, range(0, 10))
    _feed(engine, {"hr": 70.0}, range(10, 40))
    assert engine.tick(T0 + 38) == []
    (alarm,) = engine.tick(T0 + 39)
    assert (alarm.kind, alarm.signal, alarm.condition) == (
        "technical",
        "spo2",
        "no SpO2 value from dev-1 for 30 s",
    )
    (ended,) = _feed(engine, {"spo2": 97.0}, [45])
    assert ended.id == alarm.id and ended.state is AlarmState.ENDED


def test_stale_cuff_during_infusion() -> None:
    """No cuff pressure for 15 min during the infusion is a technical alarm; a cuff ends it."""
    engine = _engine()
    engine.set_session("bed-1", 1, "infusion", None, None, now=T0)
    assert engine.tick(T0 + 899) == []
    (alarm,) = engine.tick(T0 + 900)
    assert (alarm.kind, alarm.signal, alarm.priority) == (AlarmKind.TECHNICAL, "nibp", Priority.LOW)
    (ended,) = _cuff(engine, {"sbp": 120.0, "dbp": 80.0, "map": 93.0}, 950)
    assert ended.id == alarm.id and ended.state is AlarmState.ENDED
    engine.remove_device("bed-1", "dev-1", T0 + 950)  # the cuff's device: not this rule
    assert engine.tick(T0 + 950 + 899) == []
    (again,) = engine.tick(T0 + 950 + 900)
    ended2 = engine.set_session("bed-1", 1, "recovery", None, None, now=T0 + 2000)
    assert [(a.id, a.state) for a in ended2] == [(again.id, "ended")]


def test_stale_cuff_not_judged_outside_its_phases() -> None:
    """Without a session, or in baseline, a missing cuff is no alarm."""
    engine = _engine()
    engine.set_session("bed-1", 1, "baseline", None, None, now=T0)
    assert engine.tick(T0 + 5000) == []


def test_repeated_rejected_frames_raise_a_low_technical_artefact_alarm() -> None:
    """Contract: rejections count toward the device's artefact technical alarm."""
    engine = _engine()
    assert engine.on_artefact("bed-1", "dev-1", "invalid_value", T0) == []
    assert engine.on_artefact("bed-1", "dev-1", "invalid_value", T0 + 30) == []
    (alarm,) = engine.on_artefact("bed-1", "dev-1", "inconsistent_cuff", T0 + 59)
    assert (alarm.kind, alarm.signal, alarm.priority) == (
        AlarmKind.TECHNICAL,
        "artefact",
        Priority.LOW,
    )
    assert all(a.kind is AlarmKind.TECHNICAL for a in engine.active())
    assert [a for a in engine.tick(T0 + 118) if a.signal == "artefact"] == []
    ended = [a for a in engine.tick(T0 + 119) if a.signal == "artefact"]
    assert [(a.id, a.state) for a in ended] == [(alarm.id, "ended")]


def test_rejections_spread_beyond_the_window_raise_nothing() -> None:
    """Three rejections more than 60 s apart are not an artefact burst."""
    engine = _engine()
    for s in (0, 61, 122):
        assert engine.on_artefact("bed-1", "dev-1", "invalid_value", T0 + s) == []


# --- restart and removal -----------------------------------------------------------------------


def test_restore_rebuilds_live_alarms_that_then_end_normally() -> None:
    """After a restart the stored open alarms are live again and end by the same rules."""
    first = _engine()
    first.device_seen("bed-1", "dev-2", T0)
    (phys,) = _feed(first, {"spo2": 88.0}, range(16))
    first.acknowledge(phys.id, "n", T0 + 16)
    tech = [a for a in first.tick(T0 + 20) if a.signal == "device"]
    stored = first.active()

    second = _engine()
    second.restore(stored)
    assert [(a.id, a.state) for a in second.active()] == [(a.id, a.state) for a in stored]
    (ended,) = _feed(second, {"spo2": 97.0}, [30])
    assert (ended.id, ended.state) == (phys.id, AlarmState.ENDED)
    (back,) = second.device_seen("bed-1", "dev-2", T0 + 40)
    assert (back.id, back.state) == (tech[0].id, AlarmState.ENDED)


def test_forget_bed_and_remove_device_end_their_alarms() -> None:
    """A bed or device leaving monitoring ends its alarms instead of leaving them open."""
    engine = _engine()
    engine.device_seen("bed-2", "dev-9", T0)
    engine.tick(T0 + 11)
    (removed,) = engine.remove_device("bed-2", "dev-9", T0 + 12)
    assert removed.state is AlarmState.ENDED
    assert engine.tick(T0 + 100) == []
    _cuff(engine, {"sbp": 190.0}, 0)
    (gone,) = engine.forget_bed("bed-1", T0 + 5)
    assert gone.state is AlarmState.ENDED and engine.active() == []


def test_reading_type_is_the_model_reading() -> None:
    """The engine consumes monitor.core.model.Reading as stored by the server."""
    r = Reading("d", 1, T0, T0, {"hr": 70.0}, bed_id="b")
    assert _engine().on_reading(r) == []


# --- a late reading is judged by what was in force at its own time -------------------------


def test_a_late_reading_is_judged_by_the_session_and_limits_of_its_own_time() -> None:
    """docs/reliability.md: a backlog measured during session 1 (its override SpO2 < 88) and
    judged after session 2 began (clinic limit 90) raises nothing, and an alarm it does
    raise belongs to session 1."""
    engine = _engine()
    engine.set_session(
        "bed-1", 1, "baseline", None, {"spo2": {"low": {"medium": 88}}}, now=T0, since=T0
    )
    engine.set_session("bed-1", None, None, None, None, now=T0 + 100, since=T0 + 100)
    engine.set_session("bed-1", 2, "baseline", None, None, now=T0 + 200, since=T0 + 200)
    # SpO2 89 measured in session 1, arriving during session 2: fine under 1's override.
    assert _feed(engine, {"spo2": 89.0}, range(10, 40)) == []
    # SpO2 86 measured in session 1: below even the override, alarmed as session 1's.
    (alarm,) = _feed(engine, {"spo2": 86.0}, range(40, 60))
    assert alarm.session_id == 1 and alarm.condition == "spo2 < 88"
    (ended,) = _feed(engine, {"spo2": 97.0}, [60])
    assert ended.id == alarm.id and ended.ended_at is not None
    # The same 89 measured now, in session 2, is judged by session 2's limits.
    (now_alarm,) = _feed(engine, {"spo2": 89.0}, range(300, 320))
    assert now_alarm.session_id == 2 and now_alarm.condition == "spo2 < 90"


def test_a_reading_between_two_sessions_belongs_to_neither() -> None:
    """docs/reliability.md: a reading measured after one session ended and before the next
    began raises its alarm on the bed alone (no session)."""
    engine = _engine()
    engine.set_session("bed-1", 1, "baseline", None, None, now=T0, since=T0)
    engine.set_session("bed-1", None, None, None, None, now=T0 + 100, since=T0 + 100)
    engine.set_session("bed-1", 2, "baseline", None, None, now=T0 + 500, since=T0 + 500)
    (alarm,) = _feed(engine, {"spo2": 84.0}, range(200, 220))
    assert alarm.session_id is None


# --- types: enums in the model, the same strings on the wire -----------------------------------


def test_an_alarm_built_from_strings_holds_enums_and_refuses_unknown_ones() -> None:
    """docs/alarms.md (engine API): a stored row's strings become AlarmKind, Priority and
    AlarmState; an unknown value is an error, not a silently wrong alarm."""
    alarm = Alarm("a", "bed-1", "spo2", "physiological", "high", "spo2 < 85", T0, "latched")  # type: ignore[arg-type]
    assert (type(alarm.kind), type(alarm.priority), type(alarm.state)) == (
        AlarmKind,
        Priority,
        AlarmState,
    )
    with pytest.raises(ValueError):
        Alarm("a", "bed-1", "spo2", "physiological", "urgent", "spo2 < 85", T0, "active")  # type: ignore[arg-type]


def test_the_feed_and_api_shape_of_an_alarm_carries_plain_strings() -> None:
    """docs/protocol.md (feed ``alarm``): the enums leave as the same strings as before."""
    engine = _engine()
    (alarm,) = _feed(engine, {"spo2": 88.0}, range(16))
    shown = alarm_json(alarm)
    assert [(shown[k], type(shown[k])) for k in ("kind", "priority", "state")] == [
        ("physiological", str),
        ("medium", str),
        ("active", str),
    ]
    assert '"kind":"physiological","priority":"medium"' in alarm_message(alarm)


def test_restore_puts_an_alarm_back_by_its_direction_not_its_condition_text() -> None:
    """docs/alarms.md (engine API): the direction is data; condition text is for people."""
    first = _engine()
    (alarm,) = _feed(first, {"spo2": 88.0}, range(16))
    assert alarm.direction is Direction.LOW and "direction" not in alarm.detail
    alarm.condition = "SpO2 falling"  # no "<" in it: nothing to parse a side from
    second = _engine()
    second.restore([alarm])
    (ended,) = _feed(second, {"spo2": 97.0}, [30])
    assert (ended.id, ended.state) == (alarm.id, AlarmState.ENDED)
    alarm.direction = None
    with pytest.raises(ValueError, match="direction"):
        _engine().restore([alarm])
