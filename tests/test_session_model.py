"""The pure session model (contract: sessions and their events; clinical.md §1 phases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Phase
from monitor.session import (
    EVENT_TYPES,
    SessionState,
    TransitionError,
    apply,
    infusion_elapsed,
    replay,
)


def test_full_session_walks_the_phases() -> None:
    """baseline -> infusion -> recovery -> ended, in that order."""
    s = replay([("infusion_start", 100), ("infusion_stop", 2500), ("end", 4300)])
    assert s.phase is Phase.ENDED and s.ended_at == 4300
    assert s.infusion_started_at == 100 and s.infusion_stopped_at == 2500


def test_pause_stops_the_infusion_timer() -> None:
    """Elapsed infusion time counts only the running spans."""
    s = replay([("infusion_start", 0), ("infusion_pause", 600), ("infusion_resume", 900)])
    assert infusion_elapsed(s, 1000) == pytest.approx(700)
    s = apply(s, "infusion_stop", 1200)
    assert s.phase is Phase.RECOVERY
    assert infusion_elapsed(s, 9999) == pytest.approx(900)


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        ([], "infusion_pause"),
        ([], "infusion_stop"),
        ([("infusion_start", 1)], "infusion_start"),
        ([("infusion_start", 1)], "infusion_resume"),
        ([("infusion_start", 1), ("infusion_pause", 2)], "infusion_pause"),
        ([("infusion_start", 1), ("infusion_stop", 2)], "infusion_start"),
        ([("end", 1)], "observation"),
        ([("end", 1)], "end"),
    ],
)
def test_events_that_do_not_fit_the_phase_are_refused(
    events: list[tuple[str, float]], bad: str
) -> None:
    """An event that does not fit the phase gets a reason (the API answers 409)."""
    with pytest.raises(TransitionError):
        apply(replay(events), bad, 10)


def test_event_dated_before_previous_phase_event_is_refused() -> None:
    """The infusion timer may never run backwards."""
    s = replay([("infusion_start", 100)])
    with pytest.raises(TransitionError, match="before"):
        apply(s, "infusion_stop", 50)


def test_observation_changes_nothing_but_the_record() -> None:
    """Observations are allowed in every open phase and keep the state."""
    s = replay([("infusion_start", 100)])
    assert apply(s, "observation", 200) == s


@given(st.lists(st.tuples(st.sampled_from(sorted(EVENT_TYPES)), st.floats(0, 1e5)), max_size=30))
def test_elapsed_is_never_negative_and_never_exceeds_wall_time(
    events: list[tuple[str, float]],
) -> None:
    """Whatever a panel sends, the timer stays between zero and the time since the start."""
    s = SessionState()
    for kind, at in sorted(events, key=lambda e: e[1]):
        try:
            s = apply(s, kind, at)
        except TransitionError:
            continue
    now = 2e5
    e = infusion_elapsed(s, now)
    assert e >= 0
    if s.infusion_started_at is not None:
        assert e <= now - s.infusion_started_at + 1e-6
