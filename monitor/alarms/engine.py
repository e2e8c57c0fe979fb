"""The alarm engine: pure, single-threaded, time always an argument.

No asyncio, no I/O, no clock reads. Two clocks, never mixed within a rule:
- device time (``Reading.ts``) judges every physiological rule, so a burst of late readings
  is judged as if it had arrived live and a replay at any speed raises the same alarms;
- server time (``Reading.received_at``, ``device_seen``/``on_artefact``/``tick``'s argument)
  judges the technical rules (no data, no SpO2, stale cuff, artefact), escalation and audio
  pause, because they are about what the monitor receives and when a person must react.

Every method returns the alarms that changed, as fresh copies the caller may store and
publish. State changes of an alarm go through ``lifecycle.apply`` (the one transition table).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.alarms.config import DIRECTIONS, PHASES, ClinicConfig, load_config
from monitor.alarms.lifecycle import (
    LIVE_STATES,
    UNACKNOWLEDGED_STATES,
    Event,
    State,
    apply,
    next_state,
    snapshot,
)
from monitor.core.model import (
    CONTINUOUS_SIGNALS,
    CUFF_SIGNALS,
    PRIORITY_RANK,
    SIGNALS,
    Alarm,
    AlarmKind,
    Direction,
    Priority,
    Reading,
)

PHYSIOLOGICAL: Final = AlarmKind.PHYSIOLOGICAL
TECHNICAL: Final = AlarmKind.TECHNICAL
# Technical alarm signals (the technical source, as the contract's ``signal`` field).
SIGNAL_DEVICE: Final = "device"
SIGNAL_ARTEFACT: Final = "artefact"
SIGNAL_NIBP: Final = "nibp"  # stale cuff pressure
SIGNAL_RATE: Final = "rate"  # HR and pulse rate disagree (judged on device time)
RATE_SIGNAL: Final = "hr"  # the rate alarms' signal, whichever source they judge
RATE_SOURCES: Final = frozenset({"hr", "pr"})  # never judged directly: through _rate_source
RR_SIGNAL: Final = "rr"
DISAGREE_TEXT: Final = "HR and pulse disagree: check leads and probe"
# A pause press that would move the bed's pause end by less than this is the same press again
# (a double-tap, two nurses at one moment): it changes nothing (docs/api.md, "Repeats and
# races"). Far below any pause a clinic configures (audio_pause_s, 120 s by default).
PAUSE_REPEAT_S: Final = 5.0
# "no SpO2 value" is a technical alarm on signal "spo2" (kind technical).


class UnknownAlarm(KeyError):
    """No live alarm has this id (never raised, or already ended)."""


@dataclass(frozen=True)
class Level:
    """One alarm condition of one direction of one signal, at one priority."""

    priority: Priority
    threshold: float
    inclusive: bool
    delay: float
    label: str  # the human condition, e.g. "spo2 < 90"

    def beyond(self, direction: Direction, value: float, margin: float = 0.0) -> bool:
        """Whether ``value`` is beyond this limit; ``margin`` widens it (hysteresis)."""
        if direction == Direction.LOW:
            t = self.threshold + margin
            return value <= t if self.inclusive else value < t
        t = self.threshold - margin
        return value >= t if self.inclusive else value > t


def _op(direction: Direction, inclusive: bool) -> str:
    return ("<" if direction == Direction.LOW else ">") + ("=" if inclusive else "")


# Every condition in force on a bed, by (signal, direction), least severe first.
Levels = dict[tuple[str, Direction], list[Level]]


def build_levels(
    config: ClinicConfig,
    phase: str | None = None,
    baseline: Mapping[str, float] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Levels:
    """Every condition in force, by (signal, direction), least severe first."""
    limits = config.limits_for(phase if phase in PHASES else None, overrides)
    levels: Levels = {}
    for signal, sl in limits.items():
        for direction in DIRECTIONS:
            th = sl.direction(direction)
            if th is None:
                continue
            for priority, thr in th.by_priority().items():
                levels.setdefault((signal, direction), []).append(
                    Level(
                        priority=priority,
                        threshold=thr,
                        inclusive=th.inclusive,
                        delay=config.delay(signal, priority),
                        label=f"{signal} {_op(direction, th.inclusive)} {thr:g}",
                    )
                )
    for rule in config.relative:
        base = (baseline or {}).get(rule.signal)
        if base is None or not math.isfinite(base) or base <= 0:
            continue
        thr = round(base * (1 + rule.above_pct / 100.0), 1)
        if rule.signal in CONTINUOUS_SIGNALS:
            delay = (
                rule.delay_s
                if rule.delay_s is not None
                else config.delay(rule.signal, Priority.MEDIUM)
            )
        else:
            delay = 0.0  # cuff values are judged per reading
        levels.setdefault((rule.signal, Direction.HIGH), []).append(
            Level(
                priority=rule.priority,
                threshold=thr,
                inclusive=False,
                delay=delay,
                label=(f"{rule.signal} > {thr:g} (baseline {base:g} +{rule.above_pct:g}%)"),
            )
        )
    for group in levels.values():
        group.sort(key=lambda lv: PRIORITY_RANK[lv.priority])
    return levels


def _ms(t: float) -> int:
    return int(round(t * 1000))


# How far back (device time) a bed remembers the limits that were in force, so a late reading
# is judged by the session and phase of its own time. Backlogs older than this are judged by
# the oldest regime kept.
REGIME_HORIZON_S: Final = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class _Regime:
    """What was in force on a bed from ``since`` (device time) until the next regime."""

    since: float
    session_id: int | None
    phase: str | None
    levels: Levels


@dataclass
class _Track:
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
class _Disagreement:
    """HR vs pulse rate on one bed (device time)."""

    onset: float | None = None  # first paired reading apart by more than the margin
    agree_since: float | None = None  # first paired reading back within it, while alarmed
    last_ts: float | None = None
    alarm: Alarm | None = None


@dataclass
class _Bed:
    bed_id: str
    session_id: int | None = None
    phase: str | None = None
    baseline: dict[str, float] | None = None
    overrides: dict[str, Any] | None = None
    levels: Levels = field(default_factory=dict)
    tracks: dict[tuple[str, Direction], _Track] = field(default_factory=dict)
    last_cuff: float | None = None  # server time of the last cuff reading
    cuff_ref: float | None = None  # server time the stale-cuff phase began
    stale: Alarm | None = None
    # The session protocol's stale-cuff time for the current phase (None: the clinic's rule).
    stale_after_s: float | None = None
    audio_paused_until: float | None = None
    # Latest value of each continuous signal on this bed: signal -> (device time, value).
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)
    rate: _Disagreement = field(default_factory=_Disagreement)
    regimes: list[_Regime] = field(default_factory=list)  # oldest first
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
class _Device:
    bed_id: str
    device_id: str
    last_seen: float | None = None
    last_spo2: float | None = None
    rejections: deque[float] = field(default_factory=deque)
    no_data: Alarm | None = None
    no_spo2: Alarm | None = None
    artefact: Alarm | None = None


class AlarmEngine:
    """Alarm conditions, their delays and the alarm lifecycle for every bed."""

    def __init__(self, config: ClinicConfig | None = None) -> None:
        self.config = config if config is not None else load_config(None)
        self._beds: dict[str, _Bed] = {}
        self._devices: dict[tuple[str, str], _Device] = {}
        self._live: dict[str, Alarm] = {}
        # Where each live alarm is held, to let go of it when it ends.
        self._holders: dict[str, tuple[object, str]] = {}
        self._now: float | None = None  # last server time seen

    # --- state of beds and devices ---

    def _bed(self, bed_id: str) -> _Bed:
        bed = self._beds.get(bed_id)
        if bed is None:
            levels = build_levels(self.config)
            bed = _Bed(bed_id, levels=levels, default_levels=levels)
            self._beds[bed_id] = bed
        return bed

    def _device(self, bed_id: str, device_id: str) -> _Device:
        key = (bed_id, device_id)
        dev = self._devices.get(key)
        if dev is None:
            dev = _Device(
                bed_id, device_id, rejections=deque(maxlen=self.config.technical.artefact.count)
            )
            self._devices[key] = dev
        return dev

    def _seen_now(self, at: float) -> None:
        self._now = at if self._now is None else max(self._now, at)

    def set_session(
        self,
        bed_id: str,
        session_id: int | None,
        phase: str | None,
        baseline: Mapping[str, float] | None,
        overrides: Mapping[str, Any] | None,
        *,
        now: float | None = None,
        since: float | None = None,
        stale_cuff_s: float | None = None,
    ) -> list[Alarm]:
        """The bed's session, phase, baseline and per-session overrides (limits change at once;
        alarms follow at the next reading). Raises ConfigError for overrides out of bounds.

        ``stale_cuff_s``: the session protocol's stale-cuff time for this phase, which watches
        the cuff in that phase whatever the clinic's ``technical.stale_cuff.phases``; None
        leaves the clinic's rule in force (docs/protocols.md).

        ``since`` is the device time from which this holds (the session event's own time);
        readings measured before it are judged by what was in force at their time. A regime
        given with an earlier ``since`` than later ones replaces them (a backdated event)."""
        bed = self._bed(bed_id)
        levels = build_levels(self.config, phase, baseline, overrides)
        changes: list[Alarm] = []
        at = now if now is not None else self._now
        if session_id != bed.session_id:
            # A new patient: stop expecting SpO2 just because the last patient had a probe.
            for dev in self._devices.values():
                if dev.bed_id == bed_id:
                    dev.last_spo2 = None
                    if dev.no_spo2 is not None:
                        changes.append(self._end(dev.no_spo2, Event.CLEAR, at))
        bed.stale_after_s = stale_cuff_s
        if phase != bed.phase:
            bed.cuff_ref = now
            if self._stale_after(phase, stale_cuff_s) is None and bed.stale is not None:
                changes.append(self._end(bed.stale, Event.CLEAR, at))
        bed.session_id = session_id
        bed.phase = phase
        bed.baseline = dict(baseline) if baseline else None
        bed.overrides = dict(overrides) if overrides else None
        bed.levels = levels
        start = since if since is not None else at
        if start is not None:
            kept = [r for r in bed.regimes if r.since < start]
            horizon = start - REGIME_HORIZON_S
            while len(kept) > 1 and kept[1].since <= horizon:
                kept.pop(0)
            kept.append(_Regime(start, session_id, phase, levels))
            bed.regimes = kept
        return changes

    def discard_bed(self, bed_id: str) -> None:
        """Drop a bed's state without ending its alarms (they stay as stored), before the bed
        is rebuilt from the stored record or handed to another instance."""
        for alarm in [a for a in self._live.values() if a.bed_id == bed_id]:
            self._live.pop(alarm.id, None)
            self._holders.pop(alarm.id, None)
        self._beds.pop(bed_id, None)
        for key in [k for k in self._devices if k[0] == bed_id]:
            del self._devices[key]

    def limits(self, bed_id: str) -> Levels:
        """Conditions in force on a bed (for display and the limits endpoint)."""
        return dict(self._bed(bed_id).levels)

    # --- alarm bookkeeping ---

    def _register(self, alarm: Alarm, holder: object, attr: str) -> Alarm:
        setattr(holder, attr, alarm)
        self._live[alarm.id] = alarm
        self._holders[alarm.id] = (holder, attr)
        return snapshot(alarm)

    def _release(self, alarm: Alarm) -> None:
        self._live.pop(alarm.id, None)
        holder = self._holders.pop(alarm.id, None)
        if holder is not None and getattr(holder[0], holder[1]) is alarm:
            setattr(holder[0], holder[1], None)

    def _end(
        self, alarm: Alarm, event: Event, at: float | None, *, cleared_at: float | None = None
    ) -> Alarm:
        apply(alarm, event, at if at is not None else alarm.started_at, cleared_at=cleared_at)
        if alarm.state == State.ENDED:
            self._release(alarm)
        return snapshot(alarm)

    def _new(
        self,
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

    # --- physiological rules (device time) ---

    def on_reading(self, reading: Reading) -> list[Alarm]:
        """Judge one stored reading (``bed_id`` set) and note its device's activity."""
        if reading.bed_id is None:
            raise ValueError("reading.bed_id must be set")
        bed = self._bed(reading.bed_id)
        changes = self._activity(
            reading.bed_id, reading.device_id, reading.received_at, spo2="spo2" in reading.values
        )
        if any(k in CUFF_SIGNALS for k in reading.values):
            bed.last_cuff = (
                reading.received_at
                if bed.last_cuff is None
                else max(bed.last_cuff, reading.received_at)
            )
            if bed.stale is not None:
                changes.append(self._end(bed.stale, Event.CLEAR, reading.received_at))
        # The session and limits of the reading's own time: a late reading is judged as if live.
        session_id, in_force = bed.regime_at(reading.ts)
        values: dict[str, float] = {}
        for signal in SIGNALS:
            raw = reading.values.get(signal)
            if raw is not None and math.isfinite(value := float(raw)):
                values[signal] = value
        source = self._rate_source(bed, values, reading.ts)
        for signal in CONTINUOUS_SIGNALS & values.keys():
            seen = bed.latest.get(signal)
            if seen is None or reading.ts >= seen[0]:
                bed.latest[signal] = (reading.ts, values[signal])
        judged = {k: v for k, v in values.items() if k not in RATE_SOURCES}
        if source is not None:
            judged[RATE_SIGNAL] = values[source]
        for signal in (s for s in SIGNALS if s in judged):
            for direction in DIRECTIONS:
                key = (signal, direction)
                levels = in_force.get(key, [])
                track = bed.tracks.get(key)
                if not levels and (track is None or track.alarm is None):
                    continue
                if track is None:
                    track = bed.tracks[key] = _Track()
                changed = self._judge(
                    bed,
                    signal,
                    direction,
                    levels,
                    track,
                    judged[signal],
                    reading,
                    session_id,
                    source=source if signal == RATE_SIGNAL else signal,
                )
                if changed is not None:
                    changes.append(changed)
        if values.keys() & RATE_SOURCES:
            changed = self._disagreement(bed, reading, session_id)
            if changed is not None:
                changes.append(changed)
        return changes

    def _rate_source(self, bed: _Bed, values: Mapping[str, float], ts: float) -> str | None:
        """The rate this reading's rate alarms judge: the first configured source, unless a
        source listed before it is present on the bed (so two devices never interleave in one
        tracker). None: this reading carries no rate to judge."""
        gap = self.config.continuous_max_gap_s
        for src in self.config.rate.sources:
            if src in values:
                return src
            seen = bed.latest.get(src)
            if seen is not None and 0 <= ts - seen[0] <= gap:
                return None  # a preferred source is present: the lesser one is not judged
        return None

    def _present(self, bed: _Bed, signal: str, ts: float) -> float | None:
        """The bed's latest value of a continuous signal if measured within the gap of ``ts``."""
        seen = bed.latest.get(signal)
        if seen is None or abs(ts - seen[0]) > self.config.continuous_max_gap_s:
            return None
        return seen[1]

    def _context(self, bed: _Bed, ts: float) -> dict[str, float]:
        out: dict[str, float] = {}
        spo2 = self._present(bed, "spo2", ts)
        if spo2 is not None:
            out["spo2"] = spo2
        for src in self.config.rate.sources:
            rate = self._present(bed, src, ts)
            if rate is not None:
                out["rate"] = rate
                break
        return out

    def _weigh(
        self, bed: _Bed, track: _Track, best: Level, ts: float, onset: float
    ) -> tuple[Priority, str, str | None]:
        """Respiration rule: (priority, condition text, reason) of a low-RR condition. The
        impedance RR alone falling keeps its alarm at ``alone_priority``; SpO2 falling, HR
        changing or the condition lasting give it the priority its limits give."""
        rule = self.config.respiration
        ref = track.context or {}
        now = self._context(bed, ts)
        if "spo2" not in now or "spo2" not in ref:
            return best.priority, best.label, None  # nothing to weigh it by: face value
        reasons: list[str] = []
        spo2_levels = bed.regime_at(ts)[1].get(
            ("spo2", Direction.LOW), []
        )  # the limits of that time
        if ref["spo2"] - now["spo2"] >= rule.spo2_drop:
            reasons.append(f"SpO2 fell {ref['spo2']:g} to {now['spo2']:g}")
        elif any(lv.beyond(Direction.LOW, now["spo2"]) for lv in spo2_levels):
            reasons.append(f"SpO2 {now['spo2']:g}")
        if "rate" in now and "rate" in ref and abs(now["rate"] - ref["rate"]) >= rule.hr_change:
            reasons.append(f"HR {ref['rate']:g} to {now['rate']:g}")
        if ts - onset >= rule.duration_s:
            reasons.append(f"for {ts - onset:g} s")
        if reasons:
            reason = ", ".join(reasons)
            return best.priority, f"{best.label} ({reason})", reason
        if PRIORITY_RANK[best.priority] <= PRIORITY_RANK[rule.alone_priority]:
            return best.priority, best.label, None
        return rule.alone_priority, f"{best.label} (RR alone: SpO2 and HR steady)", "alone"

    def _judge(
        self,
        bed: _Bed,
        signal: str,
        direction: Direction,
        levels: list[Level],
        track: _Track,
        value: float,
        reading: Reading,
        session_id: int | None,
        *,
        source: str | None = None,
    ) -> Alarm | None:
        ts = reading.ts
        restart = False
        if signal in CONTINUOUS_SIGNALS:
            # Continuous signals: the condition must hold in every reading for the delay.
            # Older or repeated readings cannot extend or break a run already judged.
            if track.last_ts is not None and ts <= track.last_ts:
                return None
            restart = track.last_ts is None or ts - track.last_ts > self.config.continuous_max_gap_s
            track.last_ts = ts
            onsets: dict[str, float] = {}
            for lv in levels:
                if lv.beyond(direction, value):
                    prev = track.onsets.get(lv.label)
                    onsets[lv.label] = ts if prev is None or restart else prev
            if onsets and not track.onsets:
                track.context = self._context(bed, ts)  # what else the patient showed then
            track.onsets = onsets
            met = [lv for lv in levels if lv.label in onsets and ts - onsets[lv.label] >= lv.delay]
        else:
            # Cuff signals: each reading judged on its own, no delay, never interpolated.
            track.onsets = {}
            met = [lv for lv in levels if lv.beyond(direction, value)]
        best = max(met, key=lambda lv: PRIORITY_RANK[lv.priority]) if met else None
        alarm = track.alarm
        want: tuple[Priority, str, str | None] | None = None
        if best is not None:
            label = best.label
            if source is not None and source != signal:
                label = source + label[len(signal) :]  # "pr > 120": the rate judged was the pulse
            want = (best.priority, label, None)
            if (
                signal == RR_SIGNAL
                and direction is Direction.LOW
                and self.config.respiration.enabled
            ):
                onset = alarm.detail.get("onset") if alarm is not None else None
                if not isinstance(onset, int | float):
                    onset = min(track.onsets.values(), default=ts)
                want = self._weigh(bed, track, best, ts, float(onset))

        if alarm is None:
            if best is None or want is None:
                if track.onsets:
                    track.state = next_state(track.state, Event.HOLD)
                elif track.state is State.PENDING:
                    track.state = next_state(track.state, Event.RELEASE)
                return None
            track.state = State.INACTIVE  # the tracker's part is over: an alarm exists now
            track.clear_since = None
            detail: dict[str, object] = {
                "onset": track.onsets.get(best.label, ts),
                "limit": best.label,  # the limit met (condition may add why, or the source)
            }
            if source is not None and source != signal:
                detail["source"] = source
            if want[2] is not None:
                detail["weighed"] = want[2]
            if signal == RR_SIGNAL and direction is Direction.LOW and track.context:
                detail["context"] = dict(track.context)  # kept across a restart (restore)
            alarm = self._new(
                alarm_id=f"{bed.bed_id}.{signal}.{direction}.{_ms(ts)}",
                bed_id=bed.bed_id,
                signal=signal,
                kind=PHYSIOLOGICAL,
                priority=want[0],
                condition=want[1],
                started_at=ts,
                alerted_at=reading.received_at,
                device_id=reading.device_id,
                session_id=session_id,
                value=value,
                detail=detail,
                direction=direction,
            )
            return self._register(alarm, track, "alarm")

        if best is not None and want is not None:
            track.clear_since = None  # the condition holds: any clear run is over
            # A latched alarm whose condition is back recurs; an open one rises to a worse level.
            rises = PRIORITY_RANK[want[0]] > PRIORITY_RANK[alarm.priority]
            if alarm.state == State.LATCHED or rises:
                if want[2] is not None:
                    alarm.detail["weighed"] = want[2]
                if rises:
                    alarm.detail["limit"] = best.label
                apply(
                    alarm,
                    Event.RECUR if alarm.state == State.LATCHED else Event.RAISE,
                    ts,
                    priority=want[0],
                    condition=want[1],
                    value=value,
                    alerted_at=reading.received_at,
                )
                return snapshot(alarm)
        if alarm.state == State.LATCHED:
            return None
        margin = self.config.margin(signal)
        if any(lv.beyond(direction, value, margin) for lv in levels):
            track.clear_since = None  # not clear: the off-delay starts again at the next clear
            return None
        # Off-delay: the condition must stay clear (with hysteresis) this long before the
        # alarm ends; a recurrence within it is the same alarm, with its acknowledgement.
        if track.clear_since is None or restart:
            track.clear_since = ts
        if ts - track.clear_since < self.config.off_delay(signal):
            return None
        cleared_at = track.clear_since
        track.clear_since = None
        latches = (
            self.config.latch_high
            and alarm.priority is Priority.HIGH
            and alarm.kind == PHYSIOLOGICAL
            and alarm.state == State.ACTIVE
        )
        return self._end(
            alarm, Event.CLEAR_LATCHING if latches else Event.CLEAR, ts, cleared_at=cleared_at
        )

    def _disagreement(self, bed: _Bed, reading: Reading, session_id: int | None) -> Alarm | None:
        """HR and pulse rate apart beyond the margin, sustained: a technical alarm (device
        time, like the physiological rules, because it compares measurements)."""
        rule = self.config.rate.disagreement
        d = bed.rate
        ts = reading.ts
        if d.last_ts is not None and ts <= d.last_ts:
            return None
        restart = d.last_ts is None or ts - d.last_ts > self.config.continuous_max_gap_s
        d.last_ts = ts
        hr = self._present(bed, "hr", ts)
        pr = self._present(bed, "pr", ts)
        if hr is None or pr is None:
            # Nothing left to compare (a lead or the probe is off: its own alarms say so).
            d.onset = d.agree_since = None
            if d.alarm is not None:
                return self._end(d.alarm, Event.CLEAR, ts)
            return None
        if abs(hr - pr) > rule.margin:
            d.agree_since = None
            if d.onset is None or restart:
                d.onset = ts
            if d.alarm is None and ts - d.onset >= rule.delay_s:
                alarm = self._new(
                    alarm_id=f"{bed.bed_id}.rate.disagree.{_ms(ts)}",
                    bed_id=bed.bed_id,
                    signal=SIGNAL_RATE,
                    kind=TECHNICAL,
                    priority=rule.priority,
                    condition=DISAGREE_TEXT,
                    started_at=ts,
                    alerted_at=reading.received_at,
                    device_id=None,
                    session_id=session_id,
                    value=abs(hr - pr),
                    detail={"onset": d.onset, "hr": hr, "pr": pr, "margin": rule.margin},
                )
                return self._register(alarm, d, "alarm")
            return None
        d.onset = None
        if d.alarm is None or ts <= d.alarm.started_at:
            return None  # (a restored alarm is not ended by readings from before it began)
        if d.agree_since is None or restart:
            d.agree_since = ts
        if ts - d.agree_since < rule.clear_s:
            return None
        cleared_at, d.agree_since = d.agree_since, None
        return self._end(d.alarm, Event.CLEAR, ts, cleared_at=cleared_at)

    # --- technical rules (server time) ---

    def _activity(
        self, bed_id: str, device_id: str, at: float, *, spo2: bool = False
    ) -> list[Alarm]:
        self._seen_now(at)
        dev = self._device(bed_id, device_id)
        dev.last_seen = at if dev.last_seen is None else max(dev.last_seen, at)
        changes: list[Alarm] = []
        if dev.no_data is not None:
            changes.append(self._end(dev.no_data, Event.CLEAR, at))
        if spo2:
            dev.last_spo2 = at if dev.last_spo2 is None else max(dev.last_spo2, at)
            if dev.no_spo2 is not None:
                changes.append(self._end(dev.no_spo2, Event.CLEAR, at))
        return changes

    def device_seen(self, bed_id: str, device_id: str, at: float) -> list[Alarm]:
        """Any frame or heartbeat from a device (server time): ends its no-data alarm."""
        return self._activity(bed_id, device_id, at)

    def on_artefact(self, bed_id: str, device_id: str, code: str, at: float) -> list[Alarm]:
        """A rejected frame (server time). Raises the technical artefact alarm when ``count``
        rejections fall within ``window_s``; never a physiological alarm."""
        changes = self._activity(bed_id, device_id, at)
        rule = self.config.technical.artefact
        dev = self._device(bed_id, device_id)
        dev.rejections.append(at)
        if dev.artefact is not None:
            dev.artefact.detail["last_code"] = code
            return changes
        if len(dev.rejections) >= rule.count and at - dev.rejections[0] <= rule.window_s:
            alarm = self._new(
                alarm_id=f"{bed_id}.artefact.{device_id}.{_ms(at)}",
                bed_id=bed_id,
                signal=SIGNAL_ARTEFACT,
                kind=TECHNICAL,
                priority=rule.priority,
                condition=f"{rule.count} rejected frames from {device_id} within {rule.window_s:g} s",
                started_at=at,
                alerted_at=at,
                device_id=device_id,
                session_id=self._bed(bed_id).session_id,
                detail={"last_code": code},
            )
            changes.append(self._register(alarm, dev, "artefact"))
        return changes

    def _stale_after(self, phase: str | None, protocol_s: float | None) -> float | None:
        """Seconds without a cuff reading that raise the stale-cuff alarm in ``phase``: the
        protocol's time for it if any, else the clinic's rule; None when the cuff is not
        watched then (no session, or a phase neither names)."""
        if phase is None:
            return None
        if protocol_s is not None:
            return protocol_s
        rule = self.config.technical.stale_cuff
        return rule.after_s if phase in rule.phases else None

    def tick(self, now: float) -> list[Alarm]:
        """Server clock: technical timeouts, escalation and audio-pause expiry."""
        self._seen_now(now)
        tech = self.config.technical
        changes: list[Alarm] = []
        for dev in self._devices.values():
            session_id = self._bed(dev.bed_id).session_id
            if (
                dev.no_data is None
                and dev.last_seen is not None
                and now - dev.last_seen >= tech.no_data.timeout_s
            ):
                start = dev.last_seen + tech.no_data.timeout_s
                alarm = self._new(
                    alarm_id=f"{dev.bed_id}.device.{dev.device_id}.{_ms(start)}",
                    bed_id=dev.bed_id,
                    signal=SIGNAL_DEVICE,
                    kind=TECHNICAL,
                    priority=tech.no_data.priority,
                    condition=f"no data from {dev.device_id} for {tech.no_data.timeout_s:g} s",
                    started_at=start,
                    alerted_at=now,
                    device_id=dev.device_id,
                    session_id=session_id,
                )
                changes.append(self._register(alarm, dev, "no_data"))
            if (
                dev.no_spo2 is None
                and dev.no_data is None
                and dev.last_spo2 is not None
                and now - dev.last_spo2 >= tech.no_spo2.timeout_s
            ):
                start = dev.last_spo2 + tech.no_spo2.timeout_s
                alarm = self._new(
                    alarm_id=f"{dev.bed_id}.spo2.missing.{dev.device_id}.{_ms(start)}",
                    bed_id=dev.bed_id,
                    signal="spo2",
                    kind=TECHNICAL,
                    priority=tech.no_spo2.priority,
                    condition=f"no SpO2 value from {dev.device_id} for {tech.no_spo2.timeout_s:g} s",
                    started_at=start,
                    alerted_at=now,
                    device_id=dev.device_id,
                    session_id=session_id,
                )
                changes.append(self._register(alarm, dev, "no_spo2"))
            if dev.artefact is not None:
                last = dev.rejections[-1] if dev.rejections else dev.artefact.started_at
                if now - last >= tech.artefact.window_s:
                    changes.append(
                        self._end(dev.artefact, Event.CLEAR, last + tech.artefact.window_s)
                    )
        stale = tech.stale_cuff
        for bed in self._beds.values():
            after_s = self._stale_after(bed.phase, bed.stale_after_s)
            if after_s is None:
                continue
            if bed.cuff_ref is None:
                bed.cuff_ref = now
            ref = bed.cuff_ref if bed.last_cuff is None else max(bed.cuff_ref, bed.last_cuff)
            if bed.stale is None and now - ref >= after_s:
                start = ref + after_s
                alarm = self._new(
                    alarm_id=f"{bed.bed_id}.nibp.stale.{_ms(start)}",
                    bed_id=bed.bed_id,
                    signal=SIGNAL_NIBP,
                    kind=TECHNICAL,
                    priority=stale.priority,
                    condition=f"no cuff pressure for {after_s / 60:g} min",
                    started_at=start,
                    alerted_at=now,
                    device_id=None,
                    session_id=bed.session_id,
                )
                changes.append(self._register(alarm, bed, "stale"))
        for alarm in list(self._live.values()):
            changed = False
            after = self.config.escalation.after(alarm.priority)
            alerted = alarm.detail.get("alerted_at")
            if (
                after is not None
                and not alarm.escalated
                and alarm.state in UNACKNOWLEDGED_STATES
                and isinstance(alerted, int | float)
                and now - alerted >= after
            ):
                apply(alarm, Event.ESCALATE, now)
                changed = True
            if alarm.audio_paused_until is not None and now >= alarm.audio_paused_until:
                apply(alarm, Event.AUDIO_RESUMED, now)
                changed = True
            if changed:
                changes.append(snapshot(alarm))
        for bed in self._beds.values():
            if bed.audio_paused_until is not None and now >= bed.audio_paused_until:
                bed.audio_paused_until = None
        return changes

    # --- people ---

    def acknowledge(self, alarm_id: str, user: str, now: float) -> list[Alarm]:
        """A user acknowledges a live alarm; raises UnknownAlarm when no live alarm has the id."""
        alarm = self._live.get(alarm_id)
        if alarm is None:
            raise UnknownAlarm(alarm_id)
        self._seen_now(now)
        if alarm.state == State.ACKNOWLEDGED:
            return []
        apply(alarm, Event.ACK, now, user=user)
        if alarm.state == State.ENDED:
            self._release(alarm)
        return [snapshot(alarm)]

    def pause_audio(self, bed_id: str, now: float, seconds: float | None = None) -> list[Alarm]:
        """Pause the sound of this bed's unacknowledged alarms that exist now (never another
        bed's, never alarms that start later); the visual signal stays."""
        secs = self.config.audio_pause_s if seconds is None else float(seconds)
        if not 0 < secs <= self.config.audio_pause_max_s:
            raise ValueError(f"seconds must be within 0..{self.config.audio_pause_max_s:g}")
        self._seen_now(now)
        until = now + secs
        self._bed(bed_id).audio_paused_until = until
        changes: list[Alarm] = []
        for alarm in self._live.values():
            if alarm.bed_id == bed_id and alarm.state in UNACKNOWLEDGED_STATES:
                apply(alarm, Event.PAUSE_AUDIO, now, until=until)
                changes.append(snapshot(alarm))
        return changes

    def pause_repeats(self, bed_id: str, now: float, seconds: float | None = None) -> bool:
        """Whether pausing the bed now would only repeat the pause in force: it would end
        less than PAUSE_REPEAT_S later than the present one."""
        current = self.audio_paused_until(bed_id, now)
        if current is None:
            return False
        secs = self.config.audio_pause_s if seconds is None else float(seconds)
        return now + secs - current < PAUSE_REPEAT_S

    def audio_paused_until(self, bed_id: str, now: float | None = None) -> float | None:
        until = self._bed(bed_id).audio_paused_until
        if until is not None and now is not None and now >= until:
            return None
        return until

    # --- queries and restart ---

    def active(self, bed_id: str | None = None) -> list[Alarm]:
        """Live (not ended) alarms, worst first."""
        alarms = [a for a in self._live.values() if bed_id is None or a.bed_id == bed_id]
        alarms.sort(key=lambda a: (-PRIORITY_RANK[a.priority], a.started_at, a.id))
        return [snapshot(a) for a in alarms]

    def get(self, alarm_id: str) -> Alarm | None:
        alarm = self._live.get(alarm_id)
        return snapshot(alarm) if alarm is not None else None

    def restore(self, alarms: Iterable[Alarm]) -> None:
        """Rebuild after a restart from stored alarms that have not ended. Delays restart:
        a restored condition tracker knows the alarm, not the readings before the restart."""
        for stored in alarms:
            if stored.ended_at is not None or stored.state not in LIVE_STATES:
                continue
            if stored.id in self._live:
                continue
            alarm = snapshot(stored)
            bed = self._bed(alarm.bed_id)
            if alarm.kind is PHYSIOLOGICAL:
                if alarm.direction is None:
                    # Every physiological alarm is raised with its direction (and stored with
                    # it): one without cannot be put back on the tracker it belongs to.
                    raise ValueError(f"alarm {alarm.id}: a physiological alarm needs a direction")
                key = (alarm.signal, alarm.direction)
                track = bed.tracks.setdefault(key, _Track())
                context = alarm.detail.get("context")
                if isinstance(context, dict):
                    track.context = {
                        str(k): float(v) for k, v in context.items() if isinstance(v, int | float)
                    }
                self._register(alarm, track, "alarm")
                continue
            device_id = alarm.device_id or ""
            if alarm.signal == SIGNAL_NIBP:
                self._register(alarm, bed, "stale")
            elif alarm.signal == SIGNAL_DEVICE:
                self._register(alarm, self._device(alarm.bed_id, device_id), "no_data")
            elif alarm.signal == SIGNAL_ARTEFACT:
                self._register(alarm, self._device(alarm.bed_id, device_id), "artefact")
            elif alarm.signal == SIGNAL_RATE:
                self._register(alarm, bed.rate, "alarm")
            else:
                self._register(alarm, self._device(alarm.bed_id, device_id), "no_spo2")

    def forget_bed(self, bed_id: str, now: float) -> list[Alarm]:
        """The bed leaves monitoring: its live alarms end (RETIRE) and its state is dropped."""
        changes = [
            self._end(a, Event.RETIRE, now) for a in list(self._live.values()) if a.bed_id == bed_id
        ]
        self._beds.pop(bed_id, None)
        for key in [k for k in self._devices if k[0] == bed_id]:
            del self._devices[key]
        return changes

    def remove_device(self, bed_id: str, device_id: str, now: float) -> list[Alarm]:
        """A device is revoked or moved: its technical alarms end and it is no longer watched."""
        dev = self._devices.pop((bed_id, device_id), None)
        if dev is None:
            return []
        return [
            self._end(a, Event.RETIRE, now)
            for a in (dev.no_data, dev.no_spo2, dev.artefact)
            if a is not None
        ]
