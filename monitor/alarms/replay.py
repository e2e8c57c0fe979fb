"""Rebuilding one bed's alarm state from its stored record, pure (rule 3 of
monitor.pipeline.alarm_loop): the caller reads the record and stores what changed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from monitor.alarms.engine import RATE_SIGNAL, RATE_SOURCES, SIGNAL_RATE, AlarmEngine
from monitor.clinical import rules as pm
from monitor.clinical import session as session_model
from monitor.core.model import Alarm, AlarmKind, Phase, Reading


class SessionRegime(TypedDict):
    """What the replay reads of a stored session: the keys of the records layer's session
    row it needs (that row has these and more, so it is one)."""

    id: int
    opened_at: float
    ended_at: float | None
    baseline: dict[str, float] | None
    limit_overrides: dict[str, Any] | None
    protocol: str | None


@dataclass(frozen=True, slots=True)
class Record:
    """What the store holds of one bed over a replay horizon."""

    sessions: list[tuple[SessionRegime, list[session_model.StoredEvent]]]  # row, its events
    open_alarms: list[Alarm]
    recent_alarms: list[Alarm]
    readings: list[Reading]
    # A watched open session's events and cuff readings, when the store read them with the
    # record (a rebuild of many beds at once); None: not read, the checkpoints read them.
    watched_events: list[pm.SessionEvent] | None = None
    cuff: list[Reading] | None = None


def replay(
    engine: AlarmEngine,
    bed_id: str,
    record: Record,
    *,
    now: float,
    last_seen: Mapping[str, float],
    seen_now: bool,
) -> tuple[list[Alarm], set[tuple[str, int]]]:
    """Rule 3: rebuild one bed of ``engine`` from ``record``. ``last_seen`` names the
    bed's devices in service with their last sign of life known besides the readings (0 if
    none). Returns the alarm changes and the (device, seq) of the readings replayed."""
    engine.discard_bed(bed_id)
    changed: list[Alarm] = []
    open_session: SessionRegime | None = None
    for row, events in sorted(record.sessions, key=lambda s: s[0]["opened_at"]):
        # An impossible history gives the phases up to its offending event (rule 8).
        for since, phase in session_model.fold_spans(row["opened_at"], events)[0]:
            if phase is Phase.ENDED:
                changed += engine.set_session(bed_id, None, None, None, None, now=now, since=since)
            else:
                changed += engine.set_session(
                    bed_id,
                    row["id"],
                    phase.value,
                    row["baseline"],
                    engine.config.session_overrides(
                        row.get("protocol"), phase.value, row["limit_overrides"]
                    ),
                    now=now,
                    since=since,
                    stale_cuff_s=engine.config.stale_cuff_s(row.get("protocol"), phase.value),
                )
        if row["ended_at"] is None:
            open_session = row
    if open_session is None and record.sessions:
        # No session is open, so every one has ended: the filter only tells mypy so.
        last_end = max(e for r, _ in record.sessions if (e := r["ended_at"]) is not None)
        changed += engine.set_session(bed_id, None, None, None, None, now=now, since=last_end)
    # The HR/pulse disagreement alarm is judged on device time like the physiological ones:
    # restored before the replay, so the replay continues it instead of raising a second one.
    physio = [
        a
        for a in record.open_alarms
        if a.kind == AlarmKind.PHYSIOLOGICAL or a.signal == SIGNAL_RATE
    ]
    # Checkpoint alarms are the protocol's, held beside the engine (rule 7).
    technical = [
        a for a in record.open_alarms if a not in physio and a.signal != pm.SIGNAL_CHECKPOINT
    ]
    # Per signal, the device time up to which stored alarms already account for readings.
    cut: dict[str, float] = {}
    for a in record.recent_alarms:
        if a.kind != AlarmKind.PHYSIOLOGICAL:
            continue
        mark = a.started_at if a.ended_at is None else max(a.started_at, a.ended_at)
        cut[a.signal] = max(cut.get(a.signal, mark), mark)
    engine.restore(physio)
    replayed: set[tuple[str, int]] = set()
    seen: dict[str, float] = {}
    for r in record.readings:
        replayed.add((r.device_id, r.seq))
        seen[r.device_id] = max(seen.get(r.device_id, 0.0), r.received_at)
        # hr and pr both feed the rate alarm (signal hr): a cut on it holds for both.
        values = {
            k: v
            for k, v in r.values.items()
            if r.ts > cut.get(RATE_SIGNAL if k in RATE_SOURCES else k, float("-inf"))
        }
        if values:
            changed += engine.on_reading(dataclasses.replace(r, values=values))
    engine.restore(technical)
    for dev in seen.keys() - last_seen.keys():
        # Readings of a device no longer in service: it is not watched for silence.
        changed += engine.remove_device(bed_id, dev, now)
    for dev, known in last_seen.items():
        at = max(known, seen.get(dev, 0.0))
        if at <= 0:
            continue
        if seen_now:
            # After a restart the silence clock restarts now: a restart is not evidence the
            # device is quiet, and a device still silent raises its alarm after the timeout.
            changed += engine.device_seen(bed_id, dev, now)
            continue
        no_data = [a for a in technical if a.signal == "device" and a.device_id == dev]
        # A device silent since its no-data alarm began must not end it by replay.
        if all(at > a.started_at for a in no_data):
            changed += engine.device_seen(bed_id, dev, at)
    return changed, replayed
