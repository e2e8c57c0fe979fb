"""The session model: a pure state machine over a session's events.

Rules:
- Phases run baseline -> infusion -> recovery -> ended. ``end`` is allowed from any open
  phase (a patient may leave before the infusion starts); nothing is allowed once ended.
- Within infusion the timer runs or is paused: pause only while running, resume only while
  paused; ``infusion_stop`` from either moves to recovery.
- ``observation``, ``checklist``, ``discharge_request`` and ``dose`` are allowed in every open phase
  and change nothing but the record (their rules are the protocol's: monitor.clinical.rules).
- An event may not be dated before the previous phase event: the timer would run backwards.
- Infusion elapsed time is the sum of the running spans, measured at ``now``.
- Membership: a reading belongs to the session of its bed whose span holds its device ``ts``,
  whenever it arrives. A session's span is ``opened_at <= ts < end``, where ``end`` is the
  ``at`` of its ``end`` event (backdated or not) or, if sooner, the next admission to the same
  bed (an ``end`` dated ahead may not overlap the next patient). A reading outside every span
  belongs to the bed only (docs/reliability.md, "A reading belongs to the session of its
  measurement time").
- The baseline is the median, per signal, of the readings measured in the baseline phase
  (admission to ``infusion_start``), rounded to 0.1.
- A stored history that breaks these rules (written by an older version, edited by hand,
  restored from a backup) is read tolerantly by ``fold`` and ``phase_spans``: the state up to
  the last event that fit, and the first event that did not named as the record's problem.
  Readers never raise on it; only a new event is refused (``apply``). docs/reliability.md,
  "An impossible session record is isolated".

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from monitor.core.model import SIGNALS, Phase

RECORD_EVENTS: Final = frozenset({"observation", "checklist", "discharge_request", "dose"})
EVENT_TYPES: Final = (
    frozenset({"infusion_start", "infusion_pause", "infusion_resume", "infusion_stop", "end"})
    | RECORD_EVENTS
)
PHASE_EVENTS: Final = EVENT_TYPES - RECORD_EVENTS
# A stored event as the tolerant readers take it: (id, type, at); the id names the offending
# event of an impossible history (None when the caller has none).
StoredEvent: TypeAlias = tuple[int | None, str, float]


@dataclass(frozen=True, slots=True)
class SessionState:
    phase: Phase = Phase.BASELINE
    running: bool = False  # infusion timer running
    elapsed_s: float = 0.0  # completed running spans
    running_since: float | None = None
    last_phase_event_at: float | None = None
    infusion_started_at: float | None = None
    infusion_stopped_at: float | None = None
    ended_at: float | None = None


class TransitionError(ValueError):
    """The event does not fit the session's phase; the reason is for the nurse."""


# (phase, running, event) -> (new phase, new running)
_TABLE: Final[dict[tuple[Phase, bool, str], tuple[Phase, bool]]] = {
    (Phase.BASELINE, False, "infusion_start"): (Phase.INFUSION, True),
    (Phase.INFUSION, True, "infusion_pause"): (Phase.INFUSION, False),
    (Phase.INFUSION, False, "infusion_resume"): (Phase.INFUSION, True),
    (Phase.INFUSION, True, "infusion_stop"): (Phase.RECOVERY, False),
    (Phase.INFUSION, False, "infusion_stop"): (Phase.RECOVERY, False),
    (Phase.BASELINE, False, "end"): (Phase.ENDED, False),
    (Phase.INFUSION, True, "end"): (Phase.ENDED, False),
    (Phase.INFUSION, False, "end"): (Phase.ENDED, False),
    (Phase.RECOVERY, False, "end"): (Phase.ENDED, False),
}


def apply(state: SessionState, event_type: str, at: float) -> SessionState:
    """The state after ``event_type`` at ``at``; raises TransitionError when it does not fit."""
    if event_type not in EVENT_TYPES:
        raise TransitionError(f"unknown event type {event_type!r}")
    if state.phase is Phase.ENDED:
        raise TransitionError("the session has ended")
    if event_type in RECORD_EVENTS:
        return state
    if state.last_phase_event_at is not None and at < state.last_phase_event_at:
        raise TransitionError("event time is before the session's previous phase event")
    target = _TABLE.get((state.phase, state.running, event_type))
    if target is None:
        timer = "running" if state.running else "paused"
        where = (
            f"{state.phase.value} ({timer})" if state.phase is Phase.INFUSION else state.phase.value
        )
        raise TransitionError(f"{event_type} does not fit a session in {where}")
    phase, running = target
    elapsed = state.elapsed_s
    if state.running and state.running_since is not None:
        elapsed += at - state.running_since
    return SessionState(
        phase=phase,
        running=running,
        elapsed_s=elapsed,
        running_since=at if running else None,
        last_phase_event_at=at,
        infusion_started_at=at if event_type == "infusion_start" else state.infusion_started_at,
        infusion_stopped_at=at if event_type == "infusion_stop" else state.infusion_stopped_at,
        ended_at=at if event_type == "end" else state.ended_at,
    )


def replay(events: Iterable[tuple[str, float]]) -> SessionState:
    """Rebuild a session's state from its stored (type, at) events, in order."""
    state = SessionState()
    for event_type, at in events:
        state = apply(state, event_type, at)
    return state


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """The first stored event that does not fit the history before it."""

    event_id: int | None
    type: str
    at: float
    reason: str  # the TransitionError's reason


@dataclass(frozen=True, slots=True)
class Folded:
    """A stored history read tolerantly: the state after the last event that fit, and the
    first event that did not (None: the history is possible)."""

    state: SessionState
    problem: RecordProblem | None = None


def fold(events: Iterable[StoredEvent]) -> Folded:
    """Rebuild a session's state from its stored (id, type, at) events, in order, stopping at
    the first that does not fit: what came after it cannot be trusted either (its meaning
    depends on the event that broke the rules). Never raises."""
    state = SessionState()
    for event_id, event_type, at in events:
        try:
            state = apply(state, event_type, at)
        except TransitionError as e:
            return Folded(state, RecordProblem(event_id, event_type, at, str(e)))
    return Folded(state)


def infusion_elapsed(state: SessionState, now: float) -> float:
    if state.running and state.running_since is not None:
        return state.elapsed_s + max(0.0, now - state.running_since)
    return state.elapsed_s


def phase_spans(opened_at: float, events: Iterable[tuple[str, float]]) -> list[tuple[float, Phase]]:
    """The phase in force from each time on (device time of the session's own events): from
    ``opened_at`` baseline, then each phase change at its event's ``at``; ``ended`` last.

    Tolerant like ``fold``: an impossible stored history gives the spans up to the event that
    does not fit, and the phase then in force lasts (``fold_spans`` names that event)."""
    return fold_spans(opened_at, ((None, t, at) for t, at in events))[0]


def fold_spans(
    opened_at: float, events: Iterable[StoredEvent]
) -> tuple[list[tuple[float, Phase]], RecordProblem | None]:
    """``phase_spans`` of stored (id, type, at) events, with the record's problem if any."""
    state = SessionState()
    spans = [(opened_at, state.phase)]
    for event_id, event_type, at in events:
        if event_type not in PHASE_EVENTS:
            continue
        try:
            state = apply(state, event_type, at)
        except TransitionError as e:
            return spans, RecordProblem(event_id, event_type, at, str(e))
        if state.phase is not spans[-1][1]:
            spans.append((at, state.phase))
    return spans, None


@dataclass(frozen=True, slots=True)
class Span:
    """The device times whose readings belong to one session: ``start <= ts < end``."""

    bed_id: str
    start: float
    end: float | None  # None: open-ended (the session is open and no one was admitted since)

    def holds(self, ts: float) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)


def membership_span(
    bed_id: str, opened_at: float, ended_at: float | None, next_opened_at: float | None
) -> Span:
    """The span of a session opened at ``opened_at`` and ended at ``ended_at`` (its ``end``
    event's ``at``), given when the bed's next session was opened (None: not yet).

    The edge is half-open, so a reading at the very instant one session ends and the next
    opens belongs to the next only. An ``end`` dated before admission gives an empty span.
    """
    ends = [t for t in (ended_at, next_opened_at) if t is not None]
    return Span(bed_id, opened_at, min(ends) if ends else None)


def baseline(values: Iterable[Mapping[str, float]]) -> dict[str, float] | None:
    """The baseline from the baseline phase's readings (their ``values``): per signal the
    median, rounded to 0.1; None when no reading carries any signal.

    The caller hands in exactly the readings of the session's span measured before
    ``infusion_start``; which readings those are is the store's one selection.
    """
    by_signal: dict[str, list[float]] = {sig: [] for sig in SIGNALS}
    for v in values:
        for sig, x in v.items():
            if sig in by_signal:
                by_signal[sig].append(x)
    out = {sig: round(statistics.median(xs), 1) for sig, xs in by_signal.items() if xs}
    return out or None


# A record event repeated by the same user this soon after the first is a double click or a
# client's resend, not a second observation (docs/api.md, "Repeats and races").
REPEAT_WINDOW_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A stored session event as the repeat rule reads it: who recorded it and when."""

    id: int
    type: str
    at: float
    data: Mapping[str, object] | None
    by: str | None
    recorded_at: float


def repeat_of(
    stored: Iterable[RecordedEvent],
    event_type: str,
    data: Mapping[str, object] | None,
    by: str | None,
    now: float,
    at: float | None = None,
    derived: frozenset[str] = frozenset(),
) -> int | None:
    """The id of the stored event that a record event of ``event_type`` with ``data`` from
    ``by`` received at ``now`` only repeats, else None.

    A repeat: the session's latest stored event of that type was recorded by the same user
    less than :data:`REPEAT_WINDOW_S` before ``now``, with the same data and, when the
    request dates the event itself (``at``), the same time: two devices of a dose entered
    late, one after the other, are two events. The monitor adds keys to some data as it
    stores them (a questionnaire's total, a dose's figures): ``derived`` names those, and a
    stored key in it that the request did not send is not a difference. Phase events are
    never repeats here: their own rule refuses a second one.
    """
    if event_type not in RECORD_EVENTS:
        return None
    latest = None
    for e in stored:
        if e.type == event_type:
            latest = e
    if latest is None or latest.by != by or not 0 <= now - latest.recorded_at < REPEAT_WINDOW_S:
        return None
    if at is not None and at != latest.at:
        return None
    sent = dict(data or {})
    held = dict(latest.data or {})
    if any(k not in held or held[k] != v for k, v in sent.items()):
        return None
    if any(k not in sent and k not in derived for k in held):
        return None
    return latest.id
