"""What the alarm engine remembers of each bed and device, and of its live alarms.

Rules (docs/alarms.md; monitor.alarms.lifecycle states the alarms' own):
1. A bed remembers the regimes (session, phase, limits) of the last ``REGIME_HORIZON_S``
   (device time) and the one in force when that began, so a late reading is judged by the
   session and phase of its own time; one older than every regime kept is judged as outside
   any session.
2. Each (bed, signal, direction) has one condition tracker: while no alarm exists it is
   INACTIVE or PENDING (its onsets per level); once an alarm exists it holds it, with the
   off-delay's clear run and, for the respiration rule, what SpO2 and HR were at the onset.
3. Every live alarm is held in exactly one place (a tracker, a bed or a device) and in the
   ledger; when it ends the ledger lets go of it in both (``Ledger.end``).
4. A new alarm is ACTIVE from the moment it is decided (``new_alarm``); its id is
   deterministic from the bed, the rule and its start in milliseconds (``ms``).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.alarms.levels import Levels
from monitor.alarms.lifecycle import Event, State, apply, next_state, snapshot
from monitor.core.model import Alarm, AlarmKind, Direction, Priority

# The alarm kinds, as the engine's parts name them.
PHYSIOLOGICAL: Final = AlarmKind.PHYSIOLOGICAL
TECHNICAL: Final = AlarmKind.TECHNICAL


def ms(t: float) -> int:
    """A time in whole milliseconds, as alarm ids carry it."""
    return int(round(t * 1000))


# How far back (device time) a bed remembers the limits that were in force, so a late reading
# is judged by the session and phase of its own time. Backlogs older than this are judged by
# the oldest regime kept.
REGIME_HORIZON_S: Final = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Regime:
    """What was in force on a bed from ``since`` (device time) until the next regime."""

    since: float
    session_id: int | None
    phase: str | None
    levels: Levels


@dataclass
class Track:
    """Condition tracker of one (bed, signal, direction)."""

    state: State = State.INACTIVE  # INACTIVE or PENDING while no alarm exists
    onsets: dict[str, float] = field(default_factory=dict)  # level label -> device time
    last_ts: float | None = None
    alarm: Alarm | None = None
    # Off-delay: device time of the first reading of the current clear run of the alarm.
    clear_since: float | None = None
    # Respiration rule: what SpO2 and HR were when this condition began.
    context: dict[str, float] | None = None


@dataclass
class Disagreement:
    """HR vs pulse rate on one bed (device time)."""

    onset: float | None = None  # first paired reading apart by more than the margin
    agree_since: float | None = None  # first paired reading back within it, while alarmed
    last_ts: float | None = None
    alarm: Alarm | None = None


@dataclass
class BedState:
    bed_id: str
    session_id: int | None = None
    phase: str | None = None
    baseline: dict[str, float] | None = None
    overrides: dict[str, Any] | None = None
    levels: Levels = field(default_factory=dict)
    tracks: dict[tuple[str, Direction], Track] = field(default_factory=dict)
    last_cuff: float | None = None  # server time of the last cuff reading
    cuff_ref: float | None = None  # server time the stale-cuff phase began
    stale: Alarm | None = None
    # The session protocol's stale-cuff time for the current phase (None: the clinic's rule).
    stale_after_s: float | None = None
    audio_paused_until: float | None = None
    # Latest value of each continuous signal on this bed: signal -> (device time, value).
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)
    rate: Disagreement = field(default_factory=Disagreement)
    regimes: list[Regime] = field(default_factory=list)  # oldest first
    default_levels: Levels = field(default_factory=dict)

    def regime_at(self, ts: float) -> tuple[int | None, Levels]:
        """The session and limits in force at device time ``ts``."""
        rs = self.regimes
        if not rs or ts >= rs[-1].since:
            return self.session_id, self.levels
        i = bisect_right([r.since for r in rs], ts) - 1
        if i < 0:
            # Before every regime this bed remembers: outside any session.
            return None, self.default_levels
        return rs[i].session_id, rs[i].levels


@dataclass
class DeviceState:
    bed_id: str
    device_id: str
    last_seen: float | None = None
    last_spo2: float | None = None
    rejections: deque[float] = field(default_factory=deque)
    no_data: Alarm | None = None
    no_spo2: Alarm | None = None
    artefact: Alarm | None = None


class Ledger:
    """The live alarms by id, and where each is held, to let go of it when it ends."""

    def __init__(self) -> None:
        self.live: dict[str, Alarm] = {}
        self.holders: dict[str, tuple[object, str]] = {}

    def register(self, alarm: Alarm, holder: object, attr: str) -> Alarm:
        """Hold a new (or restored) live alarm at ``holder.attr``; a copy to publish."""
        setattr(holder, attr, alarm)
        self.live[alarm.id] = alarm
        self.holders[alarm.id] = (holder, attr)
        return snapshot(alarm)

    def drop(self, alarm_id: str) -> None:
        """Forget a live alarm without ending it (its bed is rebuilt or handed over)."""
        self.live.pop(alarm_id, None)
        self.holders.pop(alarm_id, None)

    def release(self, alarm: Alarm) -> None:
        """Let go of an ended alarm, in the ledger and where it was held."""
        self.live.pop(alarm.id, None)
        holder = self.holders.pop(alarm.id, None)
        if holder is not None and getattr(holder[0], holder[1]) is alarm:
            setattr(holder[0], holder[1], None)

    def end(
        self, alarm: Alarm, event: Event, at: float | None, *, cleared_at: float | None = None
    ) -> Alarm:
        """Apply an ending event (CLEAR, CLEAR_LATCHING, RETIRE); let go of it if it ended."""
        apply(alarm, event, at if at is not None else alarm.started_at, cleared_at=cleared_at)
        if alarm.state == State.ENDED:
            self.release(alarm)
        return snapshot(alarm)


def new_alarm(
    *,
    alarm_id: str,
    bed_id: str,
    signal: str,
    kind: AlarmKind,
    priority: Priority,
    condition: str,
    started_at: float,
    alerted_at: float,
    device_id: str | None,
    session_id: int | None,
    value: float | None = None,
    detail: dict[str, object] | None = None,
    direction: Direction | None = None,
) -> Alarm:
    state = next_state(State.PENDING, Event.DELAY_ELAPSED)
    return Alarm(
        id=alarm_id,
        bed_id=bed_id,
        signal=signal,
        kind=kind,
        priority=priority,
        condition=condition,
        started_at=started_at,
        state=state,
        session_id=session_id,
        device_id=device_id,
        value=value,
        detail={"alerted_at": alerted_at, **(detail or {})},
        direction=direction,
    )
