"""The rules judged on each reading, on device time: limits, respiration, HR against pulse.

Rules (docs/alarms.md; the lifecycle's own are monitor.alarms.lifecycle's):
1. Device time (``Reading.ts``) judges every rule here, so a burst of late readings is judged
   as if it had arrived live and a replay at any speed raises the same alarms.
2. A continuous signal's condition must hold in every reading for its level's delay; an
   older or repeated reading neither extends nor breaks a run already judged, and a gap
   longer than ``continuous_max_gap_s`` restarts it. A cuff value is judged on its own, no
   delay, never interpolated. The worst level met is the alarm's priority (one alarm per
   bed, signal and direction; a worse level RAISEs it).
3. The rate alarms judge the first configured rate source present (``_rate_source``): a
   lesser source is not judged while a preferred one was seen within the gap, so two devices
   never interleave in one tracker. The condition names the source judged (``pr > 120``).
4. Respiration: a low-RR condition with SpO2 and HR steady is held at ``alone_priority``;
   SpO2 falling (or beyond its limit), HR changing or the condition lasting gives it the
   priority its limits give, and the condition says why (``_weigh``).
5. An alarm ends once its condition has stayed clear by the hysteresis margin for the
   off-delay; a high-priority physiological alarm latches when the clinic says so.
6. HR and pulse rate apart by more than the margin for the delay raise a technical alarm
   (``signal: rate``); it ends once they have agreed for ``clear_s``.

Pure: no clock, no I/O. Alarms are held in the engine's ledger (monitor.alarms.tracking).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from monitor.alarms.config import DIRECTIONS, ClinicConfig
from monitor.alarms.levels import Level
from monitor.alarms.lifecycle import Event, State, apply, next_state, snapshot
from monitor.alarms.tracking import (
    PHYSIOLOGICAL,
    TECHNICAL,
    BedState,
    Ledger,
    Track,
    ms,
    new_alarm,
)
from monitor.core.model import (
    CONTINUOUS_SIGNALS,
    PRIORITY_RANK,
    SIGNALS,
    Alarm,
    Direction,
    Priority,
    Reading,
)

SIGNAL_RATE: Final = "rate"  # HR and pulse rate disagree (a technical alarm's signal)
RATE_SIGNAL: Final = "hr"  # the rate alarms' signal, whichever source they judge
RATE_SOURCES: Final = frozenset({"hr", "pr"})  # never judged directly: through _rate_source
RR_SIGNAL: Final = "rr"
DISAGREE_TEXT: Final = "HR and pulse disagree: check leads and probe"


class ReadingJudge:
    """The per-reading rules of the alarm engine (monitor.alarms.engine), over its state."""

    def __init__(self, config: ClinicConfig, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger

    def judge_reading(self, bed: BedState, reading: Reading) -> list[Alarm]:
        """The alarms one stored reading raises, changes or ends on its bed (device time)."""
        changes: list[Alarm] = []
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
                    track = bed.tracks[key] = Track()
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

    def _rate_source(self, bed: BedState, values: Mapping[str, float], ts: float) -> str | None:
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

    def _present(self, bed: BedState, signal: str, ts: float) -> float | None:
        """The bed's latest value of a continuous signal if measured within the gap of ``ts``."""
        seen = bed.latest.get(signal)
        if seen is None or abs(ts - seen[0]) > self.config.continuous_max_gap_s:
            return None
        return seen[1]

    def _context(self, bed: BedState, ts: float) -> dict[str, float]:
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
        self, bed: BedState, track: Track, best: Level, ts: float, onset: float
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
        bed: BedState,
        signal: str,
        direction: Direction,
        levels: list[Level],
        track: Track,
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
            alarm = new_alarm(
                alarm_id=f"{bed.bed_id}.{signal}.{direction}.{ms(ts)}",
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
            return self.ledger.register(alarm, track, "alarm")

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
        return self.ledger.end(
            alarm, Event.CLEAR_LATCHING if latches else Event.CLEAR, ts, cleared_at=cleared_at
        )

    def _disagreement(
        self, bed: BedState, reading: Reading, session_id: int | None
    ) -> Alarm | None:
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
                return self.ledger.end(d.alarm, Event.CLEAR, ts)
            return None
        if abs(hr - pr) > rule.margin:
            d.agree_since = None
            if d.onset is None or restart:
                d.onset = ts
            if d.alarm is None and ts - d.onset >= rule.delay_s:
                alarm = new_alarm(
                    alarm_id=f"{bed.bed_id}.rate.disagree.{ms(ts)}",
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
                return self.ledger.register(alarm, d, "alarm")
            return None
        d.onset = None
        if d.alarm is None or ts <= d.alarm.started_at:
            return None  # (a restored alarm is not ended by readings from before it began)
        if d.agree_since is None or restart:
            d.agree_since = ts
        if ts - d.agree_since < rule.clear_s:
            return None
        cleared_at, d.agree_since = d.agree_since, None
        return self.ledger.end(d.alarm, Event.CLEAR, ts, cleared_at=cleared_at)

    # --- technical rules (server time) ---
