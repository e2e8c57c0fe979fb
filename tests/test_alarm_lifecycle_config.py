"""The lifecycle transition table and the clinic configuration (docs/alarms.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.alarms import ConfigError, Event, LifecycleError, State, load_config, parse_config
from monitor.alarms.config import DEFAULT_CONFIG_PATH
from monitor.alarms.lifecycle import TRANSITIONS, apply, next_state
from monitor.core.model import Alarm, AlarmKind, AlarmState, Priority

TABLE = [
    (State.INACTIVE, Event.HOLD, State.PENDING),
    (State.PENDING, Event.RELEASE, State.INACTIVE),
    (State.PENDING, Event.DELAY_ELAPSED, State.ACTIVE),
    (State.ACTIVE, Event.ACK, State.ACKNOWLEDGED),
    (State.ACTIVE, Event.CLEAR, State.ENDED),
    (State.ACTIVE, Event.CLEAR_LATCHING, State.LATCHED),
    (State.ACKNOWLEDGED, Event.CLEAR_LATCHING, State.ENDED),
    (State.ACKNOWLEDGED, Event.RAISE, State.ACTIVE),
    (State.LATCHED, Event.ACK, State.ENDED),
    (State.LATCHED, Event.RECUR, State.ACTIVE),
]


@pytest.mark.parametrize(("state", "event", "after"), TABLE)
def test_lifecycle_table_transitions(state: State, event: Event, after: State) -> None:
    """The rules at the top of lifecycle.py, one row each."""
    assert next_state(state, event) is after


@pytest.mark.parametrize("event", list(Event))
def test_ended_is_final(event: Event) -> None:
    """Rule 11: nothing happens to an ended alarm."""
    with pytest.raises(LifecycleError):
        next_state(State.ENDED, event)


def test_acknowledged_alarms_do_not_escalate_and_nothing_lowers_priority() -> None:
    """Rule 8: only unacknowledged alarms escalate; no event in the table lowers a priority."""
    with pytest.raises(LifecycleError):
        next_state(State.ACKNOWLEDGED, Event.ESCALATE)
    alarm = Alarm(
        "a",
        "b",
        "spo2",
        AlarmKind.PHYSIOLOGICAL,
        Priority.HIGH,
        "spo2 < 85",
        0.0,
        AlarmState.ACTIVE,
    )
    apply(alarm, Event.RAISE, 1.0, priority=Priority.MEDIUM, condition="spo2 < 90")
    assert (alarm.priority, alarm.condition) == (Priority.HIGH, "spo2 < 85")
    apply(alarm, Event.ACK, 2.0, user="n")
    assert alarm.priority is Priority.HIGH and alarm.state is AlarmState.ACKNOWLEDGED


def test_every_state_in_the_table_is_a_known_state() -> None:
    """The table only names states and events of the enums (no string typos)."""
    assert all(isinstance(s, State) and isinstance(e, Event) for s, e in TRANSITIONS)
    assert all(isinstance(t, State) for t in TRANSITIONS.values())


def test_default_config_ships_the_reference_defaults() -> None:
    """§3 table, hysteresis, relative rules; §4 audio pause 120 s; contract: 10 s no-data."""
    cfg = load_config(None)
    limits = cfg.limits_for(None)
    assert limits["spo2"].low is not None and limits["spo2"].low.by_priority() == {
        "medium": 90,
        "high": 85,
    }
    assert limits["sbp"].high is not None and limits["sbp"].high.inclusive
    assert (cfg.delay("spo2", "medium"), cfg.delay("spo2", "high")) == (15, 10)
    assert (cfg.delay("hr", "medium"), cfg.delay("hr", "high")) == (30, 10)
    assert (cfg.delay("rr", "medium"), cfg.delay("rr", "high")) == (30, 15)
    assert cfg.delay("sbp", "high") == 0
    assert cfg.margin("spo2") == 2 and cfg.margin("hr") == 5 and cfg.margin("map") == 5
    assert {(r.signal, r.above_pct, r.priority) for r in cfg.relative} == {
        ("sbp", 25, "low"),
        ("hr", 30, "low"),
    }
    assert cfg.audio_pause_s == 120 and cfg.latch_high is False
    assert cfg.technical.no_data.timeout_s == 10
    assert (cfg.escalation.high_s, cfg.escalation.medium_s) == (60, 180)
    assert cfg.technical.stale_cuff.after_s == 900


def test_default_config_file_cites_its_sources() -> None:
    """The shipped YAML says where its numbers come from."""
    text = DEFAULT_CONFIG_PATH.read_text()
    assert "Welch 2011" in text and "IEC 60601-1-8" in text


def _with(**changes: object) -> dict[str, object]:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"limits": {"spo2": {"low": {"medium": 85, "high": 90}}}}, "beyond"),
        ({"limits": {"temp": {"high": {"medium": 38}}}}, "unknown signal"),
        ({"delays": {"sbp": {"medium": 10}}}, "continuous"),
        ({"phases": {"induction": {}}}, "unknown phase"),
        ({"phases": {"infusion": {"delays": {}}}}, "only 'limits'"),
        ({"phases": {"infusion": {"limits": {"hr": {"high": {"medium": 150}}}}}}, "beyond"),
        ({"audio_pause_s": 600}, "audio_pause_max_s"),
        ({"latching": True}, "Extra inputs"),
        ({"relative": [{"signal": "sbp", "above_pct": 0}]}, "greater than 0"),
    ],
)
def test_bad_clinic_configs_are_refused_with_a_reason(
    changes: dict[str, object], message: str
) -> None:
    """A clinic's typo must stop the monitor from starting, not silently change alarms."""
    with pytest.raises(ConfigError, match=message):
        parse_config(_with(**changes))


def test_config_file_round_trip(tmp_path: Path) -> None:
    """--config FILE / VIGIL_CLINIC_CONFIG: a clinic's own file is read and validated."""
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(_with(latch_high=True, audio_pause_s=60)))
    cfg = load_config(path)
    assert cfg.latch_high and cfg.audio_pause_s == 60
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError):
        load_config(path)
