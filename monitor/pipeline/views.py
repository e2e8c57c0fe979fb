"""The JSON views the API and the feed answer with (sessions, beds, limits). Translation only:
no rule is decided here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.alarms.config import ClinicConfig
from monitor.clinical import rules as pm
from monitor.clinical import session as session_model
from monitor.clinical.protocols import DEFAULT_SERIES, Protocol
from monitor.core.model import PRIORITY_RANK, Alarm, Reading, to_rfc3339
from monitor.pipeline.caches import Caches
from monitor.pipeline.health import Health, record_notice
from monitor.records.store import SessionEventRow, SessionRow, Store
from monitor.wire import feed

# The continuous signals a discharge criterion reads (their last value in the session).
_DISCHARGE_SIGNALS = ("hr", "spo2")


@dataclass(frozen=True, slots=True)
class ProtocolInputs:
    """What the protocol model judges a session from: its protocol (None: a session opened
    before protocols, or whose protocol the clinic no longer has), its events, and the
    readings of its span that any rule reads (cuff BPs and the last HR and SpO2)."""

    protocol: Protocol | None
    opened_at: float
    events: list[pm.SessionEvent]
    readings: list[Reading]
    baseline: dict[str, float] | None


def _needs_readings(p: Protocol) -> bool:
    d = p.discharge
    return bool(
        p.predose_bp is not None
        or p.checkpoints
        or d.bp is not None
        or d.spo2_above is not None
        or d.hr is not None
    )


def _satisfier_json(s: pm.Satisfier | None) -> dict[str, Any] | None:
    if s is None:
        return None
    if s.event_id is not None or s.device_id is None:
        return {
            "type": "observation",
            "event_id": s.event_id,
            "at": to_rfc3339(s.at),
            "values": dict(s.values),
        }
    return {
        "type": "reading",
        "device_id": s.device_id,
        "seq": s.seq,
        "ts": to_rfc3339(s.at),
        "values": dict(s.values),
    }


def record_problem_json(problem: session_model.RecordProblem | None) -> dict[str, Any] | None:
    """``record_problem`` of the session and bed views: the first stored event that does not
    fit the history before it (docs/reliability.md), or None when the record is possible."""
    if problem is None:
        return None
    return {
        "event_id": problem.event_id,
        "type": problem.type,
        "at": to_rfc3339(problem.at),
        "message": problem.reason,
    }


def protocol_json(status: pm.ProtocolStatus | None) -> dict[str, Any]:
    """The ``checklist``, ``checkpoints`` and ``discharge`` of the session view."""
    if status is None:
        return {
            "checklist": [],
            "checkpoints": [],
            "discharge": {"eligible": True, "eligible_at": None, "blocked_by": []},
        }
    d = status.discharge
    return {
        "checklist": [
            {"id": i.id, "label": i.label, "kind": i.kind.value, "value": i.value, "done": i.done}
            for i in status.checklist
        ],
        "checkpoints": [
            {
                "id": c.id,
                "kind": c.kind.value,
                "due_at": to_rfc3339(c.due_at),
                "status": c.status.value,
                "done_at": to_rfc3339(c.done_at),
                "checkpoint": c.checkpoint,
                "window_start": to_rfc3339(c.window_start),
                "window_end": to_rfc3339(c.window_end),
                "late": c.late,
                "satisfied_by": _satisfier_json(c.satisfied_by),
            }
            for c in status.checkpoints
        ],
        "discharge": {
            "eligible": d.eligible,
            "eligible_at": to_rfc3339(d.eligible_at),
            "blocked_by": [b.value for b in d.blocked_by],
        },
    }


class Views:
    def __init__(
        self,
        store: Store,
        caches: Caches,
        config: ClinicConfig,
        active_alarms: Callable[[], list[Alarm]],
        clock: Callable[[], float],
        health: Health | None = None,
    ) -> None:
        self.store = store
        self.health = health
        self.caches = caches
        self.config = config
        self.active_alarms = active_alarms
        self.clock = clock

    def protocol_of(self, row: SessionRow) -> Protocol | None:
        pid = row.get("protocol")
        return self.config.protocols.get(pid) if pid else None

    async def protocol_inputs(
        self, row: SessionRow, events: Sequence[SessionEventRow]
    ) -> ProtocolInputs:
        """The session's inputs to the protocol model, from the store."""
        protocol = self.protocol_of(row)
        readings: list[Reading] = []
        if protocol is not None and _needs_readings(protocol):
            readings = await self.store.readings(session_id=row["id"], source="nibp", limit=20_000)
            span = session_model.membership_span(
                row["bed_id"], row["opened_at"], row["ended_at"], None
            )
            have = {(r.device_id, r.seq) for r in readings}
            latest = await self.store.latest_values(row["bed_id"], _DISCHARGE_SIGNALS)
            for sig in _DISCHARGE_SIGNALS:
                r = latest.get(sig)
                if r is not None and span.holds(r.ts) and (r.device_id, r.seq) not in have:
                    have.add((r.device_id, r.seq))
                    readings.append(r)
        return ProtocolInputs(
            protocol=protocol,
            opened_at=row["opened_at"],
            events=[pm.SessionEvent(e["type"], e["at"], e["data"], e["id"]) for e in events],
            readings=readings,
            baseline=row["baseline"],
        )

    def protocol_status(self, inputs: ProtocolInputs, now: float) -> pm.ProtocolStatus | None:
        if inputs.protocol is None:
            return None
        return pm.status(
            inputs.protocol, inputs.opened_at, inputs.events, inputs.readings, inputs.baseline, now
        )

    async def course_position(self, row: SessionRow) -> dict[str, Any] | None:
        """``{"n", "planned"}``: the session's number in its patient's course and the series its
        protocol plans ("Infusion 3 of 6", docs/course.md); None without a patient_id."""
        patient_id = row.get("patient_id")
        if not patient_id:
            return None
        protocol = self.protocol_of(row)
        planned = protocol.series if protocol is not None else DEFAULT_SERIES
        n = await self.store.course_number(patient_id, row["opened_at"], row["id"])
        return {"n": n, "planned": planned}

    async def session_json(self, row: SessionRow) -> dict[str, Any]:
        events = await self.store.session_events(row["id"])
        # Tolerant: an impossible stored history is shown up to its last event that fit, with
        # the offending one named, instead of failing this view and every view built on it.
        folded = session_model.fold(
            (e["id"], e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
        )
        state = folded.state
        if self.health is not None:
            self.health.record(row["id"], record_notice(row["bed_id"], row["id"], folded.problem))
        now = self.clock()
        return {
            "id": row["id"],
            "bed": row["bed_id"],
            "patient_label": row["patient_label"],
            "patient_id": row.get("patient_id"),
            "course": await self.course_position(row),
            "age": row["age"],
            "phase": row["phase"],
            "opened_at": to_rfc3339(row["opened_at"]),
            "ended_at": to_rfc3339(row["ended_at"]),
            "infusion_elapsed_s": round(session_model.infusion_elapsed(state, now), 1),
            "infusion_planned_s": row["infusion_planned_s"],
            "infusion_running": state.running,
            "infusion_started_at": to_rfc3339(state.infusion_started_at),
            "infusion_stopped_at": to_rfc3339(state.infusion_stopped_at),
            "baseline": row["baseline"],
            "limit_overrides": row["limit_overrides"],
            "protocol": row.get("protocol"),
            "record_problem": record_problem_json(folded.problem),
            # Bumped by every change to the session: a client tells two views apart by it
            # (the panel keys its commands with it, docs/api.md "Idempotency-Key").
            "version": row.get("version", 0),
            **protocol_json(self.protocol_status(await self.protocol_inputs(row, events), now)),
            "events": [
                {
                    "id": e["id"],
                    "type": e["type"],
                    "at": to_rfc3339(e["at"]),
                    "recorded_at": to_rfc3339(e["recorded_at"]),
                    "by": e["by"],
                    "data": e["data"],
                }
                for e in events
            ],
        }

    def limits_json(self, row: SessionRow) -> dict[str, Any]:
        config = self.config
        phase = row["phase"] if row["phase"] != "ended" else None
        overrides = config.session_overrides(row.get("protocol"), phase, row["limit_overrides"])
        in_force = config.limits_for(phase, overrides)
        return {
            "session_id": row["id"],
            "phase": row["phase"],
            "limits": {sig: sl.model_dump(exclude_none=True) for sig, sl in in_force.items()},
            "overrides": row["limit_overrides"] or {},
            "override_bounds": {k: list(v) for k, v in config.override_bounds.items()},
            "delays": config.delays,
            "hysteresis": config.hysteresis,
            "baseline": row["baseline"],
        }

    async def beds_json(self) -> list[dict[str, Any]]:
        now = self.clock()
        beds = await self.store.list_beds()
        by_bed: dict[str, list[Alarm]] = {}
        for a in self.active_alarms():
            by_bed.setdefault(a.bed_id, []).append(a)
        out = []
        caches = self.caches
        for bed in beds:
            bed_id = bed["id"]
            session = caches.open_sessions.get(bed_id)
            session_body = None
            if session is not None:
                row = await self.store.session_row(session.id)
                if row is not None:
                    session_body = await self.session_json(row)
            latest = {
                sig: {
                    "value": r.values[sig],
                    "ts": to_rfc3339(r.ts),
                    "age_s": round(now - r.ts, 1),
                    "device_id": r.device_id,
                    "source": r.source,
                }
                for sig, r in caches.latest.get(bed_id, {}).items()
            }
            alarms = sorted(
                by_bed.get(bed_id, []),
                key=lambda a: (-PRIORITY_RANK[a.priority], a.started_at),
            )
            out.append(
                {
                    "id": bed_id,
                    "label": bed["label"],
                    "devices": bed["devices"],
                    "session": session_body,
                    # The bed is flagged with its open session's record (null when fine).
                    "record_problem": (
                        session_body["record_problem"] if session_body is not None else None
                    ),
                    "latest": latest,
                    "alarms": [feed.alarm_json(a) for a in alarms],
                    "devices_status": {
                        d: {
                            "last_seen": to_rfc3339(caches.last_seen.get(d)),
                            "age_s": (
                                round(now - caches.last_seen[d], 1)
                                if d in caches.last_seen
                                else None
                            ),
                        }
                        for d in bed["devices"]
                    },
                }
            )
        return out
