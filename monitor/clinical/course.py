"""A patient's course: their sessions in order with each one's summary (pure; docs/course.md).

Rule 1: a patient's course is the sessions of one ``patient_id``, oldest admission first
        (ties by session id); ``n`` numbers them from 1. A label is never matched.
Rule 2: a session's ``alarms`` counts its high and medium physiological alarms; technical
        and low-priority ones (a checkpoint reminder, a loose probe) are not how it went.
Rule 3: ``scores`` hold the totals of the last PHQ-9 and GAD-7 recorded in the session
        (monitor.clinical.scores); ``responder`` applies the clinic's rule to the PHQ-9 against the
        course's first PHQ-9, null without a PHQ-9 in that session.
Rule 4: ``checkpoints_missed`` counts the protocol's checkpoints that are overdue or were done
        late: a session is judged by the checkpoints it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.clinical import rules as pm
from monitor.clinical.scores import Responder, responds, session_scores
from monitor.core.model import Alarm, AlarmKind, Priority, to_rfc3339

COUNTED_PRIORITIES: Final = frozenset({Priority.HIGH, Priority.MEDIUM})


@dataclass(frozen=True)
class SessionMaterial:
    """What the course needs of one session, as the store and the protocol model give it."""

    row: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]
    extremes: Mapping[str, float | None]
    alarms: Sequence[Alarm]
    protocol_status: pm.ProtocolStatus | None = None
    series: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def counted_alarms(alarms: Iterable[Alarm]) -> int:
    """Rule 2."""
    return sum(
        1 for a in alarms if a.kind is AlarmKind.PHYSIOLOGICAL and a.priority in COUNTED_PRIORITIES
    )


def checkpoints_missed(status: pm.ProtocolStatus | None) -> int:
    """Rule 4."""
    if status is None:
        return 0
    return sum(1 for c in status.checkpoints if c.status is pm.Status.OVERDUE or c.late)


def dose_mg(events: Iterable[Mapping[str, Any]]) -> float | None:
    """The total mg given in the session's dose events, None when it recorded none."""
    doses = [
        float(e["data"]["total_mg"])
        for e in events
        if e.get("type") == "dose"
        and isinstance((e.get("data") or {}).get("total_mg"), int | float)
    ]
    return round(sum(doses), 3) if doses else None


def _observations(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any] | None]:
    return [e.get("data") for e in events if e.get("type") == "observation"]


def course(patient_id: str, sessions: Sequence[SessionMaterial], rule: Responder) -> dict[str, Any]:
    """``GET /api/patients/{patient_id}`` (docs/api.md, docs/course.md); ``sessions`` in the
    store's course order (rule 1)."""
    out: list[dict[str, Any]] = []
    first_phq9: int | None = None
    for n, s in enumerate(sessions, start=1):
        row = s.row
        scores = session_scores(_observations(s.events))
        phq9 = scores.get("phq9")
        if first_phq9 is None and phq9 is not None:
            first_phq9 = phq9
        ex = s.extremes
        out.append(
            {
                "id": row["id"],
                "n": n,
                "planned": s.series,
                "protocol": row.get("protocol"),
                "patient_label": row.get("patient_label"),
                "bed": row.get("bed_id"),
                "started_at": to_rfc3339(row["opened_at"]),
                "ended_at": to_rfc3339(row.get("ended_at")),
                "scores": scores,
                "responder": responds(rule, first_phq9, phq9),
                "peak": {k: ex.get(k) for k in ("sbp", "dbp", "hr")},
                "min": {"spo2": ex.get("spo2")},
                "alarms": counted_alarms(s.alarms),
                "checkpoints_missed": checkpoints_missed(s.protocol_status),
                "dose_mg": dose_mg(s.events),
                "report": f"/api/sessions/{row['id']}/report",
                **s.extra,
            }
        )
    return {
        "patient_id": patient_id,
        "responder_rule": rule.model_dump(),
        "sessions": out,
    }
