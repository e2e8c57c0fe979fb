"""The pure session model (docs/protocol.md: sessions, their events and phases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.clinical.session import (
    EVENT_TYPES,
    PHASE_EVENTS,
    Folded,
    RecordedEvent,
    RecordProblem,
    SessionState,
    TransitionError,
    apply,
    baseline,
    fold,
    fold_spans,
    infusion_elapsed,
    membership_span,
    phase_spans,
    repeat_of,
    replay,
)
from monitor.core.model import Phase
from tests.strategies import possible_histories, stored_histories


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


def test_a_span_runs_from_admission_to_the_end_event_half_open() -> None:
    """A session holds device times from its opened_at up to, not including, its end's at
    (docs/reliability.md, "A reading belongs to the session of its measurement time")."""
    span = membership_span("bed-1", 100.0, 200.0, None)
    assert [span.holds(t) for t in (99.999, 100.0, 150.0, 199.999, 200.0)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert membership_span("bed-1", 100.0, None, None).holds(1e9)


def test_the_next_admission_ends_a_span_whose_end_is_dated_later() -> None:
    """An end dated ahead of the next admission does not make two patients share a time."""
    span = membership_span("bed-1", 100.0, 250.0, 220.0)
    assert span.end == 220.0 and not span.holds(230.0)
    assert membership_span("bed-1", 100.0, None, 220.0).end == 220.0


def test_an_end_dated_before_admission_holds_nothing() -> None:
    """A session ended before it was opened has an empty span, not a reversed one."""
    span = membership_span("bed-1", 100.0, 90.0, None)
    assert not any(span.holds(t) for t in (80.0, 90.0, 95.0, 100.0, 110.0))


@given(
    st.lists(
        st.tuples(st.floats(0, 1e4), st.one_of(st.none(), st.floats(-100, 2e3))),
        min_size=1,
        max_size=8,
    ),
    st.floats(-100, 2e4),
)
def test_a_device_time_belongs_to_at_most_one_session_of_a_bed(
    sessions: list[tuple[float, float | None]], ts: float
) -> None:
    """However the ends are dated, the spans of one bed's sessions never overlap."""
    opened = sorted(o for o, _ in sessions)
    spans = []
    for i, (o, (_, length)) in enumerate(zip(opened, sessions, strict=True)):
        nxt = opened[i + 1] if i + 1 < len(opened) else None
        spans.append(membership_span("bed-1", o, None if length is None else o + length, nxt))
    assert sum(span.holds(ts) for span in spans) <= 1


def test_baseline_is_the_median_per_signal_rounded_to_a_tenth() -> None:
    """The baseline phase's median per signal (docs/reliability.md), a signal never measured
    left out; no readings, no baseline."""
    rows = [{"hr": 70.0, "spo2": 97.0}, {"hr": 75.0}, {"hr": 72.0, "sbp": 121.0}, {"hr": 71.0}]
    assert baseline(rows) == {"hr": 71.5, "spo2": 97.0, "sbp": 121.0}
    assert baseline([{"rr": 14.04}, {"rr": 14.0}]) == {"rr": 14.0}
    assert baseline([]) is None


@pytest.mark.parametrize(
    ("events", "phase", "running", "problem"),
    [
        (
            [(1, "infusion_start", 10), (2, "infusion_start", 20)],
            Phase.INFUSION,
            True,
            RecordProblem(
                2,
                "infusion_start",
                20,
                "infusion_start does not fit a session in infusion (running)",
            ),
        ),
        (
            [(1, "infusion_start", 10), (2, "infusion_resume", 20), (3, "infusion_stop", 30)],
            Phase.INFUSION,
            True,
            RecordProblem(
                2,
                "infusion_resume",
                20,
                "infusion_resume does not fit a session in infusion (running)",
            ),
        ),
        (
            [(1, "end", 10), (2, "infusion_start", 20)],
            Phase.ENDED,
            False,
            RecordProblem(2, "infusion_start", 20, "the session has ended"),
        ),
        (
            [(7, "infusion_start", 50), (8, "infusion_stop", 40)],
            Phase.INFUSION,
            True,
            RecordProblem(
                8, "infusion_stop", 40, "event time is before the session's previous phase event"
            ),
        ),
        (
            [(1, "infusion_teleport", 10)],
            Phase.BASELINE,
            False,
            RecordProblem(1, "infusion_teleport", 10, "unknown event type 'infusion_teleport'"),
        ),
        ([(1, "infusion_start", 10), (2, "infusion_stop", 20)], Phase.RECOVERY, False, None),
    ],
)
def test_fold_keeps_the_state_up_to_the_last_event_that_fit_and_names_the_first_that_did_not(
    events: list[tuple[int, str, float]], phase: Phase, running: bool, problem: RecordProblem | None
) -> None:
    """An impossible stored history is read, not refused: its state up to the offending event,
    that event named (docs/reliability.md, "An impossible session record is isolated")."""
    folded = fold(events)
    assert folded.state.phase is phase and folded.state.running is running
    assert folded.problem == problem


def test_nothing_after_the_offending_event_is_folded() -> None:
    """Events after the first that does not fit are not trusted: their meaning rests on it."""
    folded = fold([(1, "infusion_start", 10), (2, "infusion_start", 20), (3, "infusion_stop", 30)])
    assert folded.state.phase is Phase.INFUSION and folded.state.infusion_stopped_at is None
    assert folded.problem is not None and folded.problem.event_id == 2


def test_phase_spans_stop_at_the_offending_event() -> None:
    """The phases in force are those of the events up to the offending one; the last lasts."""
    events = [
        (1, "infusion_start", 100),
        (2, "observation", 150),
        (3, "infusion_resume", 200),
        (4, "infusion_stop", 300),
    ]
    spans, problem = fold_spans(0, events)
    assert spans == [(0, Phase.BASELINE), (100, Phase.INFUSION)]
    assert problem is not None and problem.event_id == 3
    assert phase_spans(0, [(t, at) for _, t, at in events]) == spans


@given(stored_histories())
def test_fold_never_raises_whatever_the_store_holds(
    events: list[tuple[int | None, str, float]],
) -> None:
    """Any stored history folds to a state and at most one named problem, spans likewise."""
    folded = fold(events)
    assert isinstance(folded, Folded)
    spans, problem = fold_spans(0.0, events)
    assert spans[0] == (0.0, Phase.BASELINE)
    if problem is not None:
        assert (problem.event_id, problem.type, problem.at) in events
    phase_events = [e for e in events if e[1] in PHASE_EVENTS]
    assert (fold(phase_events).problem is None) == (problem is None)


@given(possible_histories())
def test_on_a_possible_history_fold_equals_replay(
    events: list[tuple[int | None, str, float]],
) -> None:
    """A history the API could have written folds exactly as replay rebuilds it, no problem."""
    folded = fold(events)
    assert folded.problem is None
    assert folded.state == replay((t, at) for _, t, at in events)
    assert fold_spans(0.0, events) == (phase_spans(0.0, [(t, at) for _, t, at in events]), None)


def _stored(
    event_id: int,
    event_type: str,
    data: dict[str, object] | None,
    *,
    at: float = 100.0,
    by: str = "nurse",
    recorded_at: float = 100.0,
) -> RecordedEvent:
    return RecordedEvent(event_id, event_type, at, data, by, recorded_at)


def test_a_record_event_repeating_the_latest_within_ten_seconds_is_a_repeat() -> None:
    """docs/api.md, "Repeats and races": same type, data and user, recorded < 10 s before."""
    held = [_stored(1, "observation", {"moaas": 3}), _stored(2, "observation", {"moaas": 4})]
    assert repeat_of(held, "observation", {"moaas": 4}, "nurse", 109.9) == 2
    # Only the latest of its type counts, and only within the window, from the same user.
    assert repeat_of(held, "observation", {"moaas": 3}, "nurse", 101) is None
    assert repeat_of(held, "observation", {"moaas": 4}, "nurse", 110) is None
    assert repeat_of(held, "observation", {"moaas": 4}, "charge", 101) is None
    assert repeat_of(held, "observation", {"moaas": 4, "note": "x"}, "nurse", 101) is None
    assert repeat_of(held, "observation", {}, "nurse", 101) is None


def test_a_repeat_ignores_what_the_monitor_adds_and_honours_a_given_time() -> None:
    """docs/api.md, "Repeats and races": computed keys are not compared; an event dated
    by the request is a repeat only at the same time; phase events are never repeats."""
    dose = {"lot": "L1", "drug": "esketamine", "total_mg": 28, "device": 1}
    held = [_stored(5, "dose", dose, at=90.0)]
    figures = frozenset({"drug", "total_mg", "device"})
    assert repeat_of(held, "dose", {"lot": "L1"}, "nurse", 101, derived=figures) == 5
    assert repeat_of(held, "dose", {"lot": "L1"}, "nurse", 101) is None
    assert repeat_of(held, "dose", {"lot": "L1"}, "nurse", 101, 90.0, figures) == 5
    assert repeat_of(held, "dose", {"lot": "L1"}, "nurse", 101, 95.0, figures) is None
    assert (
        repeat_of([_stored(6, "infusion_start", None)], "infusion_start", None, "nurse", 101)
        is None
    )
