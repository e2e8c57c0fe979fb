"""The alarm engine: pure, single-threaded, time always an argument.

No asyncio, no I/O, no clock reads. Two clocks, never mixed within a rule:
- device time (``Reading.ts``) judges every physiological rule, so a burst of late readings
  is judged as if it had arrived live and a replay at any speed raises the same alarms
  (those rules are monitor.alarms.readings', against the levels of monitor.alarms.levels);
- server time (``Reading.received_at``, ``device_seen``/``on_artefact``/``tick``'s argument)
  judges the technical rules (no data, no SpO2, stale cuff, artefact), escalation and audio
  pause, because they are about what the monitor receives and when a person must react.

Every method returns the alarms that changed, as fresh copies the caller may store and
publish. State changes of an alarm go through ``lifecycle.apply`` (the one transition table);
what the engine remembers of beds, devices and live alarms is monitor.alarms.tracking's.

Rules judged here, on server time (docs/alarms.md):
1. No data: a device silent (no frame, no heartbeat) for ``no_data.timeout_s`` raises one
   alarm, started when the timeout elapsed; any frame from it ends the alarm.
2. No SpO2: a device that has sent SpO2 and sends none for ``no_spo2.timeout_s`` (and is not
   silent altogether) raises one; a new session on the bed stops expecting SpO2.
3. Artefact: ``count`` rejected frames within ``window_s`` raise one; it ends ``window_s``
   after the last rejection.
4. Stale cuff: in a phase the protocol or the clinic watches, no cuff reading for the time
   they give raises one; a cuff reading ends it, as does a phase that is not watched.
5. Escalation: an unacknowledged alarm not acknowledged within its priority's time escalates.
6. Audio pause: pausing a bed pauses its unacknowledged alarms that exist now; a press that
   would move the pause end by less than ``PAUSE_REPEAT_S`` only repeats the pause in force.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

from monitor.alarms.config import ClinicConfig, load_config
from monitor.alarms.levels import Level, Levels, build_levels
from monitor.alarms.lifecycle import (
    LIVE_STATES,
    UNACKNOWLEDGED_STATES,
    Event,
    State,
    apply,
    snapshot,
)
from monitor.alarms.readings import RATE_SIGNAL, RATE_SOURCES, SIGNAL_RATE, ReadingJudge
from monitor.alarms.tracking import (
    PHYSIOLOGICAL,
    REGIME_HORIZON_S,
    TECHNICAL,
    BedState,
    DeviceState,
    Ledger,
    Regime,
    Track,
    ms,
    new_alarm,
)
from monitor.core.model import (
    CUFF_SIGNALS,
    PRIORITY_RANK,
    Alarm,
    Reading,
)

# Technical alarm signals (the technical source, as the contract's ``signal`` field).
SIGNAL_DEVICE: Final = "device"
SIGNAL_ARTEFACT: Final = "artefact"
SIGNAL_NIBP: Final = "nibp"  # stale cuff pressure
# "no SpO2 value" is a technical alarm on signal "spo2" (kind technical).
# A pause press that would move the bed's pause end by less than this is the same press again
# (a double-tap, two nurses at one moment): it changes nothing (docs/api.md, "Repeats and
# races"). Far below any pause a clinic configures (audio_pause_s, 120 s by default).
PAUSE_REPEAT_S: Final = 5.0

# Names callers import from here, defined beside it (levels, readings, tracking).
__all__ = [
    "PAUSE_REPEAT_S",
    "PHYSIOLOGICAL",
    "RATE_SIGNAL",
    "RATE_SOURCES",
    "SIGNAL_ARTEFACT",
    "SIGNAL_DEVICE",
    "SIGNAL_NIBP",
    "SIGNAL_RATE",
    "TECHNICAL",
    "AlarmEngine",
    "Level",
    "Levels",
    "UnknownAlarm",
    "build_levels",
]


class UnknownAlarm(KeyError):
    """No live alarm has this id (never raised, or already ended)."""


class AlarmEngine:
    """Alarm conditions, their delays and the alarm lifecycle for every bed."""

    def __init__(self, config: ClinicConfig | None = None) -> None:
        self.config = config if config is not None else load_config(None)
        self._beds: dict[str, BedState] = {}
        self._devices: dict[tuple[str, str], DeviceState] = {}
        # The live alarms and where each is held, to let go of it when it ends.
        self._ledger = Ledger()
        self._readings = ReadingJudge(self.config, self._ledger)
        self._now: float | None = None  # last server time seen

    # --- state of beds and devices ---

    def _bed(self, bed_id: str) -> BedState:
        bed = self._beds.get(bed_id)
        if bed is None:
            levels = build_levels(self.config)
            bed = BedState(bed_id, levels=levels, default_levels=levels)
            self._beds[bed_id] = bed
        return bed

    def _device(self, bed_id: str, device_id: str) -> DeviceState:
        key = (bed_id, device_id)
        dev = self._devices.get(key)
        if dev is None:
            dev = DeviceState(
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
                        changes.append(self._ledger.end(dev.no_spo2, Event.CLEAR, at))
        bed.stale_after_s = stale_cuff_s
        if phase != bed.phase:
            bed.cuff_ref = now
            if self._stale_after(phase, stale_cuff_s) is None and bed.stale is not None:
                changes.append(self._ledger.end(bed.stale, Event.CLEAR, at))
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
            kept.append(Regime(start, session_id, phase, levels))
            bed.regimes = kept
        return changes

    def discard_bed(self, bed_id: str) -> None:
        """Drop a bed's state without ending its alarms (they stay as stored), before the bed
        is rebuilt from the stored record or handed to another instance."""
        for alarm in [a for a in self._ledger.live.values() if a.bed_id == bed_id]:
            self._ledger.drop(alarm.id)
        self._beds.pop(bed_id, None)
        for key in [k for k in self._devices if k[0] == bed_id]:
            del self._devices[key]

    def limits(self, bed_id: str) -> Levels:
        """Conditions in force on a bed (for display and the limits endpoint)."""
        return dict(self._bed(bed_id).levels)

    # --- alarm bookkeeping ---

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
                changes.append(self._ledger.end(bed.stale, Event.CLEAR, reading.received_at))
        changes.extend(self._readings.judge_reading(bed, reading))
        return changes

    def _activity(
        self, bed_id: str, device_id: str, at: float, *, spo2: bool = False
    ) -> list[Alarm]:
        self._seen_now(at)
        dev = self._device(bed_id, device_id)
        dev.last_seen = at if dev.last_seen is None else max(dev.last_seen, at)
        changes: list[Alarm] = []
        if dev.no_data is not None:
            changes.append(self._ledger.end(dev.no_data, Event.CLEAR, at))
        if spo2:
            dev.last_spo2 = at if dev.last_spo2 is None else max(dev.last_spo2, at)
            if dev.no_spo2 is not None:
                changes.append(self._ledger.end(dev.no_spo2, Event.CLEAR, at))
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
            alarm = new_alarm(
                alarm_id=f"{bed_id}.artefact.{device_id}.{ms(at)}",
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
            changes.append(self._ledger.register(alarm, dev, "artefact"))
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
                alarm = new_alarm(
                    alarm_id=f"{dev.bed_id}.device.{dev.device_id}.{ms(start)}",
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
                changes.append(self._ledger.register(alarm, dev, "no_data"))
            if (
                dev.no_spo2 is None
                and dev.no_data is None
                and dev.last_spo2 is not None
                and now - dev.last_spo2 >= tech.no_spo2.timeout_s
            ):
                start = dev.last_spo2 + tech.no_spo2.timeout_s
                alarm = new_alarm(
                    alarm_id=f"{dev.bed_id}.spo2.missing.{dev.device_id}.{ms(start)}",
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
                changes.append(self._ledger.register(alarm, dev, "no_spo2"))
            if dev.artefact is not None:
                last = dev.rejections[-1] if dev.rejections else dev.artefact.started_at
                if now - last >= tech.artefact.window_s:
                    changes.append(
                        self._ledger.end(dev.artefact, Event.CLEAR, last + tech.artefact.window_s)
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
                alarm = new_alarm(
                    alarm_id=f"{bed.bed_id}.nibp.stale.{ms(start)}",
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
                changes.append(self._ledger.register(alarm, bed, "stale"))
        for alarm in list(self._ledger.live.values()):
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
        alarm = self._ledger.live.get(alarm_id)
        if alarm is None:
            raise UnknownAlarm(alarm_id)
        self._seen_now(now)
        if alarm.state == State.ACKNOWLEDGED:
            return []
        apply(alarm, Event.ACK, now, user=user)
        if alarm.state == State.ENDED:
            self._ledger.release(alarm)
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
        for alarm in self._ledger.live.values():
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
        alarms = [a for a in self._ledger.live.values() if bed_id is None or a.bed_id == bed_id]
        alarms.sort(key=lambda a: (-PRIORITY_RANK[a.priority], a.started_at, a.id))
        return [snapshot(a) for a in alarms]

    def get(self, alarm_id: str) -> Alarm | None:
        alarm = self._ledger.live.get(alarm_id)
        return snapshot(alarm) if alarm is not None else None

    def restore(self, alarms: Iterable[Alarm]) -> None:
        """Rebuild after a restart from stored alarms that have not ended. Delays restart:
        a restored condition tracker knows the alarm, not the readings before the restart."""
        for stored in alarms:
            if stored.ended_at is not None or stored.state not in LIVE_STATES:
                continue
            if stored.id in self._ledger.live:
                continue
            alarm = snapshot(stored)
            bed = self._bed(alarm.bed_id)
            if alarm.kind is PHYSIOLOGICAL:
                if alarm.direction is None:
                    # Every physiological alarm is raised with its direction (and stored with
                    # it): one without cannot be put back on the tracker it belongs to.
                    raise ValueError(f"alarm {alarm.id}: a physiological alarm needs a direction")
                key = (alarm.signal, alarm.direction)
                track = bed.tracks.setdefault(key, Track())
                context = alarm.detail.get("context")
                if isinstance(context, dict):
                    track.context = {
                        str(k): float(v) for k, v in context.items() if isinstance(v, int | float)
                    }
                self._ledger.register(alarm, track, "alarm")
                continue
            device_id = alarm.device_id or ""
            if alarm.signal == SIGNAL_NIBP:
                self._ledger.register(alarm, bed, "stale")
            elif alarm.signal == SIGNAL_DEVICE:
                self._ledger.register(alarm, self._device(alarm.bed_id, device_id), "no_data")
            elif alarm.signal == SIGNAL_ARTEFACT:
                self._ledger.register(alarm, self._device(alarm.bed_id, device_id), "artefact")
            elif alarm.signal == SIGNAL_RATE:
                self._ledger.register(alarm, bed.rate, "alarm")
            else:
                self._ledger.register(alarm, self._device(alarm.bed_id, device_id), "no_spo2")

    def forget_bed(self, bed_id: str, now: float) -> list[Alarm]:
        """The bed leaves monitoring: its live alarms end (RETIRE) and its state is dropped."""
        changes = [
            self._ledger.end(a, Event.RETIRE, now)
            for a in list(self._ledger.live.values())
            if a.bed_id == bed_id
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
            self._ledger.end(a, Event.RETIRE, now)
            for a in (dev.no_data, dev.no_spo2, dev.artefact)
            if a is not None
        ]
