"""Checkpoints and their alarms (rules 3 and 7 of monitor.clinical.rules; docs/protocols.md).

Rules:
3. One is due ``offset_min`` after its anchor (rule 2, monitor.clinical.rules.common), on time
   from ``window_min`` before to ``window_min`` after. With ``every_min`` it repeats while its
   phase (``within``) lasts; the occurrences shown are those due so far and the next one.
   Status, at ``now``: ``done`` once satisfied, else ``upcoming`` (anchor not yet, or before
   the window), ``due`` (in the window) or ``overdue`` (past it). A ``bp`` checkpoint is
   satisfied by the earliest cuff reading (``source: nibp`` with sbp and dbp) whose device
   ``ts`` is at or after the window opens; ``moaas``/``cadss`` by the earliest observation of
   that scale at or after it. One after the window still does it, marked late.
7. An overdue checkpoint raises one low-priority technical alarm (``signal: checkpoint``)
   with the deterministic id ``{bed}.checkpoint.{checkpoint id}.{due ms}``; it ends when the
   checkpoint is no longer overdue (done, or the session ended).

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from monitor.alarms.lifecycle import Event, State, apply, next_state, snapshot
from monitor.clinical.protocols import Checkpoint, CheckpointKind, Protocol
from monitor.clinical.rules.common import (
    CheckpointStatus,
    Satisfier,
    SessionEvent,
    Status,
    anchors,
    cuff_bps,
    observations,
)
from monitor.clinical.session import phase_spans
from monitor.core.model import Alarm, AlarmKind, Priority, Reading

SIGNAL_CHECKPOINT: Final = "checkpoint"
CHECKPOINT_PRIORITY: Final = Priority.LOW
# Observation keys that satisfy each observed checkpoint kind.
SCALE_KEYS: Final[Mapping[CheckpointKind, tuple[str, ...]]] = {
    CheckpointKind.MOAAS: ("moaas",),
    CheckpointKind.CADSS: ("cadss6", "cadss"),
}
# A repeating checkpoint never lists more occurrences than this (a runaway phase).
MAX_OCCURRENCES: Final = 500


def _phase_window(
    opened_at: float, events: Sequence[SessionEvent], phase: str
) -> tuple[float | None, float | None]:
    """When the phase began and ended (None: not begun / not ended)."""
    spans = phase_spans(opened_at, [(e.type, e.at) for e in events])
    start = end = None
    for i, (since, p) in enumerate(spans):
        if p.value == phase and start is None:
            start = since
            end = spans[i + 1][0] if i + 1 < len(spans) else None
    return start, end


def _due_times(
    cp: Checkpoint,
    anchor_at: float | None,
    opened_at: float,
    events: Sequence[SessionEvent],
    now: float,
) -> list[tuple[str, float | None]]:
    if anchor_at is None:
        return [(cp.id if cp.every_min is None else f"{cp.id}.1", None)]
    first = anchor_at + cp.offset_min * 60
    if cp.every_min is None or cp.within is None:
        return [(cp.id, first)]
    start, end = _phase_window(opened_at, events, cp.within)
    if start is None:
        return [(f"{cp.id}.1", None)]
    every = cp.every_min * 60
    out: list[tuple[str, float | None]] = []
    k = 0
    while len(out) < MAX_OCCURRENCES:
        due = first + k * every
        k += 1
        if due < start:
            continue
        if end is not None and due >= end:
            break
        out.append((f"{cp.id}.{len(out) + 1}", due))
        if due > now:
            break  # the next one is shown; later ones are not yet
    return out


def checkpoints(
    protocol: Protocol,
    opened_at: float,
    events: Sequence[SessionEvent],
    readings: Iterable[Reading],
    now: float,
) -> tuple[CheckpointStatus, ...]:
    at = anchors(opened_at, events)
    bps = [
        Satisfier(at=r.ts, values=dict(r.values), device_id=r.device_id, seq=r.seq)
        for r in cuff_bps(readings)
    ]
    out: list[CheckpointStatus] = []
    for cp in protocol.checkpoints:
        candidates = (
            bps if cp.kind is CheckpointKind.BP else observations(events, SCALE_KEYS[cp.kind])
        )
        window = cp.window_min * 60
        for occ_id, due in _due_times(cp, at.get(cp.anchor), opened_at, events, now):
            if due is None:
                out.append(
                    CheckpointStatus(occ_id, cp.id, cp.kind, None, None, None, Status.UPCOMING)
                )
                continue
            opens, closes = due - window, due + window
            by = next((s for s in candidates if s.at >= opens), None)
            if by is not None:
                status = Status.DONE
            elif now < opens:
                status = Status.UPCOMING
            elif now <= closes:
                status = Status.DUE
            else:
                status = Status.OVERDUE
            out.append(
                CheckpointStatus(
                    occ_id,
                    cp.id,
                    cp.kind,
                    due,
                    opens,
                    closes,
                    status,
                    done_at=by.at if by is not None else None,
                    late=by is not None and by.at > closes,
                    satisfied_by=by,
                )
            )
    return tuple(out)


# --- checkpoint alarms (rule 7) --------------------------------------------------------------


def checkpoint_alarm_id(bed_id: str, cp: CheckpointStatus) -> str:
    assert cp.due_at is not None
    return f"{bed_id}.{SIGNAL_CHECKPOINT}.{cp.id}.{int(round(cp.due_at * 1000))}"


def checkpoint_alarms(
    bed_id: str,
    session_id: int | None,
    statuses: Iterable[CheckpointStatus],
    live: Mapping[str, Alarm],
    now: float,
) -> list[Alarm]:
    """The checkpoint alarms of one bed to raise and to end at ``now`` (server clock), given
    its live ones (``live`` by id, left as they are: the changes are copies). An ended session passes no
    statuses: its alarms end."""
    wanted = {checkpoint_alarm_id(bed_id, cp): cp for cp in statuses if cp.status is Status.OVERDUE}
    changes: list[Alarm] = []
    for alarm_id, cp in wanted.items():
        if alarm_id in live:
            continue
        assert cp.window_end is not None and cp.due_at is not None
        changes.append(
            Alarm(
                id=alarm_id,
                bed_id=bed_id,
                signal=SIGNAL_CHECKPOINT,
                kind=AlarmKind.TECHNICAL,
                priority=CHECKPOINT_PRIORITY,
                condition=f"{cp.kind.value} check {cp.id} overdue",
                started_at=cp.window_end,
                state=next_state(State.PENDING, Event.DELAY_ELAPSED),
                session_id=session_id,
                detail={"alerted_at": now, "checkpoint": cp.id, "due_at": cp.due_at},
            )
        )
    for alarm_id, alarm in live.items():
        if alarm_id not in wanted and alarm.state != State.ENDED:
            changes.append(apply(snapshot(alarm), Event.CLEAR, now))
    return changes
