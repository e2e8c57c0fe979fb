"""The alarm lifecycle: the one transition table (in the style of h11's ``_state.py``).

Every change of an alarm's state goes through ``TRANSITIONS`` below; nothing else in Vigil
assigns ``Alarm.state``. The rules, after IEC 60601-1-8 and the clinic reference:

1. INACTIVE -> PENDING when the condition starts to hold; PENDING -> INACTIVE when it stops
   before its condition delay has passed. Pending conditions are not alarms: they live only in
   the engine's condition tracker and are never stored or shown.
2. PENDING -> ACTIVE once the condition has held for its delay (DELAY_ELAPSED). Only now does
   an ``Alarm`` exist, with ``started_at`` = the moment of that decision (device time).
3. One alarm per (bed, signal, direction): a worse condition on the same signal does not open
   a second alarm but RAISEs the priority of the existing one (medium -> high). A priority
   never falls during an alarm; the condition text names the worst condition reached.
4. ACTIVE -> ACKNOWLEDGED by a user (ACK). Acknowledging changes nothing but the state and the
   acknowledgement fields: it never lowers a priority and never ends the alarm; an
   acknowledged alarm stays visible until its condition clears.
5. A priority RAISE re-alerts: ACKNOWLEDGED -> ACTIVE, the earlier acknowledgement moves into
   ``detail["acks"]``, and any audio pause of the alarm is cancelled.
6. CLEAR (condition back inside its limit by the hysteresis margin, and, for a continuous
   signal with an off-delay, kept clear in every reading for that off-delay): ACTIVE or
   ACKNOWLEDGED -> ENDED. CLEAR_LATCHING is the same event for an alarm that latches (high
   priority, physiological, clinic setting ``latch_high``, not yet acknowledged): ACTIVE ->
   LATCHED. ``detail["cleared_at"]`` is when the condition was first clear, ``ended_at`` when
   the off-delay elapsed (the decision).
6a. Off-delay: while the condition is clear but the off-delay has not elapsed, no event
   happens; the alarm stays as it is. If the condition comes back within the off-delay (any
   reading not clear by the margin), the clear run is forgotten: it is the same alarm, same
   id, same acknowledgement, no re-alert. Like the condition delay, the clear run lives only
   in the engine's tracker and a gap in the readings restarts it. Latching applies once the
   off-delay has elapsed (a latched alarm's condition has been clear that long); escalation
   runs on through the off-delay, since the alarm is still shown and, if unacknowledged,
   still sounding.
7. LATCHED stays shown until ACK (-> ENDED), or the condition RECURs (-> ACTIVE, same alarm).
8. ESCALATE marks an alarm nobody acknowledged in time (``escalated``); it changes no state
   and no priority, and only ACTIVE or LATCHED (unacknowledged) alarms escalate.
9. PAUSE_AUDIO / AUDIO_RESUMED set and clear ``audio_paused_until`` of one alarm: audio pause
   never changes the state, so it never hides the visual signal; the engine pauses only the
   alarms of the bed asked for, that exist at that moment.
10. RETIRE ends a live alarm because its bed or device left monitoring (the bed was emptied,
    the device removed): whatever its state, it becomes ENDED.
11. ENDED is final: any event on an ended alarm is an error.
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Final

from monitor.core.model import PRIORITY_RANK, Alarm, AlarmState, Priority

# The states live in monitor.core.model (``Alarm.state`` is typed by them); the table's name for them.
State = AlarmState


class Event(StrEnum):
    HOLD = "hold"  # condition starts to hold (delay starts)
    RELEASE = "release"  # condition stops holding before the delay passed
    DELAY_ELAPSED = "delay_elapsed"  # condition held for its delay: the alarm exists
    RAISE = "raise"  # a worse priority's condition held for its delay
    ACK = "ack"
    CLEAR = "clear"
    CLEAR_LATCHING = "clear_latching"
    RECUR = "recur"  # condition holds again (after its delay) while latched
    ESCALATE = "escalate"
    PAUSE_AUDIO = "pause_audio"
    AUDIO_RESUMED = "audio_resumed"
    RETIRE = "retire"  # bed or device no longer monitored


class LifecycleError(Exception):
    """An event that the lifecycle does not allow in the alarm's current state."""


S, E = State, Event

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    # before an alarm exists (engine's condition tracker)
    (S.INACTIVE, E.HOLD): S.PENDING,
    (S.INACTIVE, E.DELAY_ELAPSED): S.ACTIVE,  # zero delay (cuff readings, naive replay)
    (S.PENDING, E.HOLD): S.PENDING,
    (S.PENDING, E.RELEASE): S.INACTIVE,
    (S.PENDING, E.DELAY_ELAPSED): S.ACTIVE,
    # an existing alarm
    (S.ACTIVE, E.RAISE): S.ACTIVE,
    (S.ACTIVE, E.ACK): S.ACKNOWLEDGED,
    (S.ACTIVE, E.CLEAR): S.ENDED,
    (S.ACTIVE, E.CLEAR_LATCHING): S.LATCHED,
    (S.ACTIVE, E.ESCALATE): S.ACTIVE,
    (S.ACTIVE, E.PAUSE_AUDIO): S.ACTIVE,
    (S.ACTIVE, E.AUDIO_RESUMED): S.ACTIVE,
    (S.ACKNOWLEDGED, E.RAISE): S.ACTIVE,
    (S.ACKNOWLEDGED, E.ACK): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.CLEAR): S.ENDED,
    (S.ACKNOWLEDGED, E.CLEAR_LATCHING): S.ENDED,  # acknowledged alarms never latch
    (S.ACKNOWLEDGED, E.PAUSE_AUDIO): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.AUDIO_RESUMED): S.ACKNOWLEDGED,
    (S.LATCHED, E.ACK): S.ENDED,
    (S.LATCHED, E.RECUR): S.ACTIVE,
    (S.LATCHED, E.RAISE): S.ACTIVE,
    (S.LATCHED, E.ESCALATE): S.LATCHED,
    (S.LATCHED, E.PAUSE_AUDIO): S.LATCHED,
    (S.LATCHED, E.AUDIO_RESUMED): S.LATCHED,
    (S.ACTIVE, E.RETIRE): S.ENDED,
    (S.ACKNOWLEDGED, E.RETIRE): S.ENDED,
    (S.LATCHED, E.RETIRE): S.ENDED,
}

# States in which an alarm is shown (not ended) and states that sound (unacknowledged).
LIVE_STATES: Final = frozenset({S.ACTIVE, S.ACKNOWLEDGED, S.LATCHED})
UNACKNOWLEDGED_STATES: Final = frozenset({S.ACTIVE, S.LATCHED})


def next_state(state: State, event: Event) -> State:
    """The table lookup; raises LifecycleError for a pair the rules do not allow."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise LifecycleError(f"{event.value} is not allowed in state {state}") from None


def apply(
    alarm: Alarm,
    event: Event,
    at: float,
    *,
    user: str | None = None,
    priority: Priority | None = None,
    condition: str | None = None,
    value: float | None = None,
    alerted_at: float | None = None,
    until: float | None = None,
    cleared_at: float | None = None,
) -> Alarm:
    """Apply one event to an existing alarm in place (state and the fields it implies).

    ``at`` is the time of the event: device time for condition events (RAISE, CLEAR, RECUR),
    server time for user and clock events (ACK, ESCALATE, PAUSE_AUDIO, AUDIO_RESUMED).
    ``alerted_at`` (server time) restarts the escalation clock on a re-alert.
    ``cleared_at`` (CLEAR, CLEAR_LATCHING): when the condition was first clear, if earlier
    than ``at`` (an off-delay elapsed in between).
    """
    new = next_state(alarm.state, event)
    if event in (E.RAISE, E.RECUR):
        if priority is not None and PRIORITY_RANK[priority] > PRIORITY_RANK[alarm.priority]:
            alarm.priority = priority
            if condition is not None:
                alarm.condition = condition
            if value is not None:
                alarm.value = value
        if alarm.acknowledged_at is not None:
            earlier = alarm.detail.get("acks")
            acks = list(earlier) if isinstance(earlier, list) else []
            acks.append({"at": alarm.acknowledged_at, "by": alarm.acknowledged_by})
            alarm.detail["acks"] = acks
            alarm.acknowledged_at = None
            alarm.acknowledged_by = None
        alarm.audio_paused_until = None
        alarm.detail.pop("cleared_at", None)
        if alerted_at is not None:
            alarm.detail["alerted_at"] = alerted_at
    elif event is E.ACK:
        if alarm.acknowledged_at is None:
            alarm.acknowledged_at = at
            alarm.acknowledged_by = user
        if new is S.ENDED:
            alarm.ended_at = at
        alarm.audio_paused_until = None
    elif event is E.RETIRE:
        alarm.ended_at = at
        alarm.audio_paused_until = None
    elif event in (E.CLEAR, E.CLEAR_LATCHING):
        alarm.detail["cleared_at"] = at if cleared_at is None else cleared_at
        if new is S.ENDED:
            alarm.ended_at = at
            alarm.audio_paused_until = None
    elif event is E.ESCALATE:
        alarm.escalated = True
    elif event is E.PAUSE_AUDIO:
        alarm.audio_paused_until = until
    elif event is E.AUDIO_RESUMED:
        alarm.audio_paused_until = None
    alarm.state = new
    return alarm


def snapshot(alarm: Alarm) -> Alarm:
    """A fresh copy for the caller to store or publish; the engine keeps its own."""
    return copy.deepcopy(alarm)
