"""Test factories: small builders for the model's plain values. Append, never rewrite."""

from __future__ import annotations

from monitor.clinical.protocols import Protocol
from monitor.clinical.rules import SessionEvent
from monitor.core.model import Alarm, AlarmKind, AlarmState, Priority, Reading

T0 = 1_790_000_000.0  # a fixed epoch (2026-09-21) so tests never read the clock


def make_reading(
    values: dict[str, float] | None = None,
    *,
    ts: float = T0,
    seq: int = 1,
    device_id: str = "dev-1",
    bed_id: str | None = "bed-1",
    source: str | None = None,
    received_at: float | None = None,
) -> Reading:
    vals = values if values is not None else {"hr": 72.0, "spo2": 98.0, "rr": 14.0}
    if source is None and any(k in ("sbp", "dbp", "map") for k in vals):
        source = "nibp"
    return Reading(
        device_id=device_id,
        seq=seq,
        ts=ts,
        received_at=ts if received_at is None else received_at,
        values=vals,
        source=source,
        bed_id=bed_id,
    )


def make_alarm(
    *,
    alarm_id: str = "a-1",
    bed_id: str = "bed-1",
    signal: str = "spo2",
    priority: Priority = Priority.HIGH,
    condition: str = "low",
    started_at: float = T0,
    detail: dict[str, object] | None = None,
) -> Alarm:
    """An active physiological alarm, as the engine raises one."""
    return Alarm(
        id=alarm_id,
        bed_id=bed_id,
        signal=signal,
        kind=AlarmKind.PHYSIOLOGICAL,
        priority=priority,
        condition=condition,
        started_at=started_at,
        state=AlarmState.ACTIVE,
        detail=dict(detail or {}),
    )


def make_session_json(
    *,
    session_id: int = 1,
    bed: str = "bed-1",
    patient_label: str = "Patient A",
    opened_at: float = T0,
    phase_events: list[tuple[str, float]] | None = None,
    observations: list[tuple[float, dict[str, object]]] | None = None,
    baseline: dict[str, float] | None = None,
    by: str = "nurse",
) -> dict[str, object]:
    """A session as GET /api/sessions/{id} shows it (RFC 3339 times), for report tests.

    ``phase_events`` are (type, seconds after opening); ``observations`` (seconds, data).
    """
    from monitor.core.model import to_rfc3339

    timed = [(at, kind, {}) for kind, at in (phase_events or [])]
    timed += [(at, "observation", data) for at, data in (observations or [])]
    timed.sort(key=lambda e: e[0])
    events = [
        {
            "id": i,
            "type": kind,
            "at": to_rfc3339(opened_at + at),
            "recorded_at": to_rfc3339(opened_at + at),
            "by": by,
            "data": data,
        }
        for i, (at, kind, data) in enumerate(timed, start=1)
    ]
    ended = next((opened_at + at for kind, at in (phase_events or []) if kind == "end"), None)
    return {
        "id": session_id,
        "bed": bed,
        "patient_label": patient_label,
        "age": None,
        "phase": "ended" if ended is not None else "baseline",
        "opened_at": to_rfc3339(opened_at),
        "ended_at": to_rfc3339(ended),
        "infusion_planned_s": None,
        "baseline": baseline,
        "events": events,
    }


# One checklist item of each kind, for protocols built in tests.
TEST_CHECKLIST: list[dict[str, str]] = [
    {"id": "consent", "label": "Consent", "kind": "confirm"},
    {"id": "escort", "label": "Escort", "kind": "confirm"},
    {"id": "weight_kg", "label": "Weight", "kind": "number"},
    {"id": "last_food", "label": "Last food", "kind": "time"},
    {"id": "medications", "label": "Medications", "kind": "text"},
]


def make_protocol(**changes: object) -> Protocol:
    """A protocol with short offsets for the protocol model's tests (docs/protocols.md)."""
    body: dict[str, object] = {
        "id": "test",
        "label": "Test protocol",
        "checklist": TEST_CHECKLIST,
        "predose_bp": {"required": True, "sbp": 140, "dbp": 90},
        "checkpoints": [
            {
                "id": "bp-10",
                "kind": "bp",
                "anchor": "infusion_start",
                "offset_min": 10,
                "window_min": 2,
            },
            {
                "id": "bp-rep",
                "kind": "bp",
                "anchor": "infusion_start",
                "offset_min": 5,
                "window_min": 1,
                "every_min": 5,
                "within": "infusion",
            },
            {
                "id": "moaas-stop",
                "kind": "moaas",
                "anchor": "infusion_stop",
                "offset_min": 5,
                "window_min": 2,
            },
        ],
        "discharge": {
            "after": {"anchor": "infusion_start", "min": 30},
            "bp": {"sbp": [90, 140], "dbp": [50, 90], "within_pct_of_baseline": 20},
            "spo2_above": 92,
            "hr": [50, 110],
            "moaas": 5,
            "escort_item": "escort",
        },
    }
    body.update(changes)
    return Protocol.model_validate(body)


# The shipped esketamine protocol's pre-dose checklist, every answer given, none a concern.
ESKETAMINE_CHECKLIST: dict[str, object] = {
    "consent": True,
    "escort": True,
    "last_food": "2026-09-21T06:00:00Z",
    "last_liquids": "2026-09-21T08:00:00Z",
    "benzodiazepines": "no",
    "sedative_hypnotics": "no",
    "psychostimulants": "no",
    "maois": "no",
}

FULL_CHECKLIST: dict[str, object] = {
    "consent": True,
    "escort": True,
    "weight_kg": 72.5,
    "last_food": "2026-09-21T06:00:00Z",
    "medications": "none",
}


def make_event(
    event_type: str,
    at: float,
    data: dict[str, object] | None = None,
    *,
    event_id: int | None = None,
) -> SessionEvent:
    """A stored session event for the protocol model (``at`` in epoch seconds)."""
    return SessionEvent(type=event_type, at=at, data=data, id=event_id)


def make_cuff(
    sbp: float, dbp: float, *, ts: float, seq: int = 1, device_id: str = "dev-1"
) -> Reading:
    """A cuff reading (``source: nibp``) of systolic/diastolic."""
    return make_reading(
        {"sbp": sbp, "dbp": dbp, "map": round((sbp + 2 * dbp) / 3, 1)},
        ts=ts,
        seq=seq,
        device_id=device_id,
        source="nibp",
    )


def make_protocol_session_json(
    protocol: Protocol,
    events: list[tuple[str, float, dict[str, object] | None, str]],
    readings: list[Reading],
    *,
    now: float,
    session_id: int = 1,
    opened_at: float = T0,
) -> dict[str, object]:
    """A protocol session as GET /api/sessions/{id} shows it, judged by the real protocol
    model at ``now``: ``events`` are (type, seconds after opening, data, by)."""
    from monitor.clinical.rules import status
    from monitor.core.model import to_rfc3339
    from monitor.pipeline.views import protocol_json

    model_events = [
        SessionEvent(type=t, at=opened_at + at, data=data, id=i)
        for i, (t, at, data, _) in enumerate(events, start=1)
    ]
    ended = next((opened_at + at for t, at, _, _ in events if t == "end"), None)
    return {
        **make_session_json(session_id=session_id, opened_at=opened_at),
        "phase": "ended" if ended is not None else "infusion",
        "ended_at": to_rfc3339(ended),
        "protocol": protocol.id,
        **protocol_json(status(protocol, opened_at, model_events, readings, None, now)),
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "at": to_rfc3339(e.at),
                "recorded_at": to_rfc3339(e.at),
                "by": by,
                "data": e.data,
            }
            for e, (_, _, _, by) in zip(model_events, events, strict=True)
        ],
    }


# An esketamine session whose REMS monitoring record is complete (docs/course.md): the
# shipped protocol's checklist, a pre-dose cuff BP, two 28 mg devices of one lot 5 min apart,
# the 40-minute cuff BP, the REMS answers, the nurse's discharge request with its cuff BP,
# and the end just over 2 h after the first device. Offsets are seconds after admission.
REMS_CHECKLIST: dict[str, object] = {
    "consent": True,
    "escort": True,
    "last_food": "2026-09-21T06:00:00Z",
    "last_liquids": "2026-09-21T07:30:00Z",
    "benzodiazepines": "no",
    "sedative_hypnotics": "no",
    "psychostimulants": "yes: methylphenidate",
    "maois": "no",
}
REMS_EVENTS: list[tuple[str, float, dict[str, object] | None]] = [
    ("checklist", 60, REMS_CHECKLIST),
    ("infusion_start", 300, None),
    ("dose", 310, {"lot": "LOT-42A"}),
    ("dose", 620, {"lot": "LOT-42A"}),
    ("observation", 2700, {"moaas": 4, "cadss6": 6}),
    ("observation", 3000, {"sedation": True, "dissociation": True}),
    ("observation", 3010, {"respiratory_depression": False, "serious_adverse_event": False}),
    ("observation", 3020, {"adverse_event": "nausea, resolved without treatment"}),
    ("infusion_stop", 700, None),
    ("observation", 7500, {"moaas": 5}),
    ("discharge_request", 7600, None),
    ("end", 7800, None),
]
# (offset, sbp, dbp): pre-dose, about 40 min after dosing starts, before leaving.
REMS_CUFFS: list[tuple[float, float, float]] = [(120, 128, 82), (2700, 138, 88), (7660, 124, 80)]


def rems_session(
    opened_at: float = T0,
    *,
    drop_events: set[int] | None = None,
    drop_cuffs: set[int] | None = None,
) -> tuple[list[SessionEvent], list[Reading]]:
    """The complete esketamine session above as the protocol model's events (doses completed
    as the monitor stores them) and cuff readings, without the ones at the indexes given."""
    events: list[SessionEvent] = []
    device = 0
    for i, (kind, offset, data) in enumerate(sorted(REMS_EVENTS, key=lambda e: e[1])):
        if i in (drop_events or set()):
            continue
        stored = dict(data) if data is not None else None
        if kind == "dose":
            device += 1
            stored = {
                **(data or {}),
                "drug": "esketamine",
                "route": "intranasal",
                "total_mg": 28.0,
                "device": device,
                "cumulative_mg": 28.0 * device,
            }
        events.append(make_event(kind, opened_at + offset, stored, event_id=i + 1))
    cuffs = [
        make_cuff(sbp, dbp, ts=opened_at + offset, seq=i + 1)
        for i, (offset, sbp, dbp) in enumerate(REMS_CUFFS)
        if i not in (drop_cuffs or set())
    ]
    return events, cuffs


# Intranasal esketamine: 28 mg devices at least 5 min apart, at most three (docs/protocols.md).
IN_DOSING = make_protocol(
    dosing={
        "drug": "esketamine",
        "route": "intranasal",
        "device_mg": 28,
        "device_interval_min": 5,
        "max_devices": 3,
    }
)


def store_impossible_events(
    db_url: str, session_id: int, events: list[tuple[str, float]]
) -> list[int]:
    """Write session events straight into the store, past every check of the API: the kind of
    history an older version, a hand edit or a restored backup leaves (docs/reliability.md,
    "An impossible session record is isolated"). Their ids, in order."""
    from monitor.records.migrate import make_sync_engine
    from monitor.records.schema import session_events

    engine = make_sync_engine(db_url)
    ids: list[int] = []
    try:
        with engine.begin() as conn:
            for kind, at in events:
                row = conn.execute(
                    session_events.insert()
                    .values(session_id=session_id, type=kind, at=at, recorded_at=at, by="restore")
                    .returning(session_events.c.id)
                ).one()
                ids.append(int(row.id))
    finally:
        engine.dispose()
    return ids
