"""The session use cases: admit a patient, record a session event, change a session's limits.

Each reads the session (with its ``version``) and what it judges, judges with the pure core
(monitor.clinical.session, monitor.clinical.rules), and stores the change with the audit entries in
one transaction guarded by that version; a command that lost a race is judged again from a
fresh read (monitor.usecases). Admission is guarded by the database's one-open-session-per-bed
index instead: there is no session row to hold a version yet. docs/api.md, "Repeats and
races", lists what each answers to a repeat and to the loser of a race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ValidationError

from monitor.alarms.config import check_consistent
from monitor.clinical import rules as pm
from monitor.clinical import scores
from monitor.clinical import session as session_model
from monitor.clinical.protocols import Protocol
from monitor.core.errors import ErrorCode
from monitor.core.model import Phase, parse_rfc3339
from monitor.records.store import Conflict as StoreConflict
from monitor.records.store import NotFound as StoreNotFound
from monitor.records.store import SessionEventRow, SessionRow
from monitor.usecases import Actor, Conflict, Forbidden, Invalid, NotFound, Stale, retried

if TYPE_CHECKING:
    from monitor.pipeline.service import Monitor
    from monitor.pipeline.views import ProtocolInputs

# 60 minutes at most is the clinic range; the planned time is what the panel's timer counts to.
DEFAULT_PLANNED_S: Final = 40 * 60

# An event may be dated up to this far ahead of the monitor's clock (clocks disagree a little).
MAX_AHEAD_S: Final = 300.0

# Keys the monitor adds to a record event's data as it stores it (monitor.clinical.session.repeat_of).
_DERIVED: Final[dict[str, frozenset[str]]] = {
    "observation": frozenset(f"{s.value}_total" for s in scores.Scale),
    "dose": pm.DOSE_FIGURES,
}

AuditEntries = list[tuple[str, dict[str, Any]]]
DataModel = type[BaseModel]


@dataclass(frozen=True, slots=True)
class Admission:
    """POST /api/sessions as the use case takes it (the body's fields, checked for shape)."""

    bed: str
    patient_label: str
    patient_id: str | None = None
    age: int | None = None
    baseline: dict[str, float] | None = None
    infusion_planned_min: int | None = None
    protocol: str | None = None  # None: the clinic's default protocol
    at: str | None = None  # RFC 3339; None: now


@dataclass(frozen=True, slots=True)
class EventCommand:
    """One session event as the use case takes it: its type (monitor.clinical.session.EVENT_TYPES),
    the data as the client sent it and its own time, if it gives one."""

    type: str
    data: dict[str, Any] | None = None
    at: str | None = None  # RFC 3339; None: now
    # The model a protocol rule reads this type's data with (monitor.edges.api.bodies.EVENT_DATA).
    data_model: DataModel | None = None


# --- admit ------------------------------------------------------------------------------


async def admit(monitor: Monitor, actor: Actor, cmd: Admission) -> dict[str, Any]:
    """Open a session on a bed; its JSON. At most one open session per bed: the unique
    ``open_bed`` index decides between simultaneous admissions, the others get
    ``bed_occupied``, as they would arriving second."""
    store = monitor.store
    # The bed first: a body's values are judged only for a bed that exists (404 before 422).
    if not await store.bed_exists(cmd.bed):
        raise NotFound(ErrorCode.NOT_FOUND, f"no bed {cmd.bed!r}")
    config = monitor.engine.config
    protocol = config.protocol(cmd.protocol)
    if protocol is None:
        raise Invalid(
            ["body", "protocol"], f"no such protocol (one of {', '.join(config.protocols)})"
        )
    planned = (
        cmd.infusion_planned_min * 60
        if cmd.infusion_planned_min
        else protocol.planned_infusion_s() or DEFAULT_PLANNED_S
    )
    given = _time(cmd.at, "at")
    now = monitor.clock()
    opened_at = now if given is None else given
    if opened_at > now + MAX_AHEAD_S:
        raise Invalid(["body", "at"], "is in the future")
    if opened_at < now:
        # An open session first: the same answer as the index gives a simultaneous admission.
        if await store.session_rows(bed_id=cmd.bed, open_only=True, limit=1):
            raise _occupied(cmd.bed)
        last = await store.session_rows(bed_id=cmd.bed, limit=1)
        if last and opened_at < (last[0]["ended_at"] or last[0]["opened_at"]):
            raise Conflict(ErrorCode.CONFLICT, "at is before the bed's previous session ended")
    try:
        sid = await store.create_session(
            bed_id=cmd.bed,
            patient_label=cmd.patient_label,
            patient_id=cmd.patient_id,
            age=cmd.age,
            baseline=cmd.baseline,
            planned_s=planned,
            now=now,
            by=actor.name,
            protocol=protocol.id,
            opened_at=opened_at,
        )
    except StoreNotFound as e:
        raise NotFound(ErrorCode.NOT_FOUND, str(e)) from None
    except StoreConflict:
        raise _occupied(cmd.bed) from None
    return await monitor.session_changed(sid)


def _time(value: str | None, name: str) -> float | None:
    """A command's RFC 3339 time, parsed where the use case judges it: after the checks
    that come first (the bed or session must exist: 404 before 422)."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise Invalid(
            ["body", name], "must be an RFC 3339 timestamp with a UTC offset", "datetime_parsing"
        ) from None


def _occupied(bed: str) -> Conflict:
    return Conflict(ErrorCode.BED_OCCUPIED, f"bed {bed} already has an open session")


# --- session events -----------------------------------------------------------------------


async def add_event(
    monitor: Monitor, actor: Actor, session_id: int, cmd: EventCommand
) -> dict[str, Any]:
    """Record one session event (a phase event or a record event); the session's JSON.

    Judged on the session as stored: the phase rule (monitor.clinical.session), a plain repeat of a
    record event (``duplicate_event``), the protocol's gates (monitor.clinical.rules); stored
    with its audit entries only if the session did not change since it was read."""

    async def attempt() -> dict[str, Any]:
        await _add_event_once(monitor, actor, session_id, cmd)
        return await monitor.session_changed(session_id)

    return await retried(attempt, "the session")


async def _add_event_once(
    monitor: Monitor, actor: Actor, session_id: int, cmd: EventCommand
) -> None:
    store = monitor.store
    row = await _session_row(monitor, session_id)
    given = _time(cmd.at, "at")
    now = monitor.clock()
    at = now if given is None else given
    if at > now + MAX_AHEAD_S:
        raise Invalid(["body", "at"], "is in the future")
    # After the row: every event the row's version covers is in this read.
    events = await store.session_events(session_id)
    state = _fold(events)
    try:
        new_state = session_model.apply(state, cmd.type, at)
    except session_model.TransitionError as e:
        code = (
            ErrorCode.SESSION_ENDED if state.phase is Phase.ENDED else ErrorCode.EVENT_NOT_ALLOWED
        )
        raise Conflict(code, str(e)) from None
    # The protocol's refusals first: a second device too soon is device_interval whether or
    # not it repeats the first; what the protocol allows is then stored once.
    data, audit = await _protocol_gates(monitor, row, events, cmd, at, actor.role)
    repeated = session_model.repeat_of(
        (
            session_model.RecordedEvent(
                e["id"], e["type"], e["at"], e["data"], e["by"], e["recorded_at"]
            )
            for e in events
        ),
        cmd.type,
        cmd.data,
        actor.name,
        now,
        given,
        _DERIVED.get(cmd.type, frozenset()),
    )
    if repeated is not None:
        raise Conflict(
            ErrorCode.DUPLICATE_EVENT,
            f"the same {cmd.type} was recorded moments ago; it is stored once",
            event_id=repeated,
        )
    baseline = None
    if cmd.type == "infusion_start" and not row["baseline"]:
        # The baseline phase's own readings set the reference for the relative limits.
        baseline = await monitor.baseline_from_readings(session_id, at)
    stored = await store.add_session_event(
        session_id,
        expected_version=row["version"],
        event_type=cmd.type,
        at=at,
        now=now,
        by=actor.name,
        data=data,
        new_phase=new_state.phase.value,
        baseline=baseline,
        audit=audit,
    )
    if stored is None:
        raise Stale


async def _session_row(monitor: Monitor, session_id: int) -> SessionRow:
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise NotFound(ErrorCode.NOT_FOUND, "no such session")
    return row


def _fold(events: Sequence[SessionEventRow]) -> session_model.SessionState:
    """The session's state from its stored phase events; ``record_needs_attention`` naming
    the first event that does not fit (a history stored before the guard, or by hand): no new
    event is judged on a history the phase rule cannot read."""
    state = session_model.SessionState()
    for e in events:
        if e["type"] not in session_model.PHASE_EVENTS:
            continue
        try:
            state = session_model.apply(state, e["type"], e["at"])
        except session_model.TransitionError as err:
            raise Conflict(
                ErrorCode.RECORD_NEEDS_ATTENTION,
                f"the session's stored event {e['id']} ({e['type']}) does not fit the events "
                f"before it ({err}); the record needs a person's attention before more is "
                "recorded",
                event_id=e["id"],
                event_type=e["type"],
            ) from None
    return state


def _refused(refusal: pm.Refusal, message: str) -> Conflict:
    # Times stay epoch seconds here; the edge writes them as it writes every time.
    return Conflict(refusal.code.value, message, **refusal.detail)


async def _protocol_gates(
    monitor: Monitor,
    row: SessionRow,
    events: list[SessionEventRow],
    cmd: EventCommand,
    at: float,
    role: str,
) -> tuple[dict[str, Any] | None, AuditEntries]:
    """The session protocol's word on one event (the rules are monitor.clinical.rules's):
    the data to store and the audit entries of any override; raises the refusal."""
    data = cmd.data
    if cmd.data_model is not None and data is not None:
        try:
            cmd.data_model.model_validate(data)
        except ValidationError as e:
            raise Invalid(["body", "data"], str(e).splitlines()[0]) from None
    if cmd.type == "observation":
        # Questionnaire totals are the monitor's sum of the validated items (monitor.clinical.scores).
        return scores.with_totals(data), []
    if cmd.type not in ("checklist", "infusion_start", "end", "dose"):
        return data, []
    inputs = await monitor.views.protocol_inputs(row, events)
    protocol = inputs.protocol
    if cmd.type == "checklist":
        if protocol is None:
            raise Invalid(["body", "type"], "this session runs no protocol")
        try:
            return pm.parse_checklist(protocol, data), []
        except pm.ChecklistError as e:
            raise Invalid(["body", "data"], str(e)) from None
    if protocol is None:
        return data, []
    if cmd.type == "dose":
        return _dose(protocol, inputs, data, at, role)
    if cmd.type == "infusion_start":
        refusal = pm.infusion_start_refusal(protocol, inputs.events, inputs.readings, at, data)
        if refusal is not None:
            raise _refused(refusal, f"dosing is refused by the {protocol.id} protocol")
        if pm.predose_bp_overridden(protocol, inputs.readings, at, data):
            assert data is not None
            detail = {"prescriber": data["prescriber"], "reason": data["reason"]}
            return data, [("predose_bp_override", detail)]
        return data, []
    discharge = pm.discharge(
        protocol, inputs.opened_at, inputs.events, inputs.readings, inputs.baseline, monitor.clock()
    )
    try:
        refusal = pm.end_refusal(discharge, data, role)
    except pm.Forbidden as e:
        raise Forbidden(ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
    if refusal is not None:
        raise _refused(refusal, "the discharge criteria are not met")
    if not discharge.eligible:
        assert data is not None
        detail = {
            "reason": data["override_reason"],
            "blocked_by": [b.value for b in discharge.blocked_by],
        }
        return data, [("discharge_override", detail)]
    return data, []


def _dose(
    protocol: Protocol,
    inputs: ProtocolInputs,
    data: dict[str, Any] | None,
    at: float,
    role: str,
) -> tuple[dict[str, Any] | None, AuditEntries]:
    try:
        decision = pm.dose(protocol, inputs.opened_at, inputs.events, data, at, role)
    except pm.DoseError as e:
        raise Invalid(["body", "data"], str(e)) from None
    except pm.Forbidden as e:
        raise Forbidden(ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
    if decision.refusal is not None:
        raise _refused(decision.refusal, f"the dose is refused by the {protocol.id} protocol")
    stored = dict(decision.data)
    if decision.overridden:
        return stored, [("dose_override", {"reason": stored["override_reason"]})]
    return stored, []


# --- limits -------------------------------------------------------------------------------


async def change_limits(
    monitor: Monitor,
    actor: Actor,
    session_id: int,
    overrides: dict[str, Any],
    reason: str | None,
) -> dict[str, Any]:
    """Set a session's alarm-limit overrides (checked against the clinic's bounds), audited;
    the limits in force. Overrides equal to those stored change nothing and are not audited
    again: a repeat, or the loser of a race to set the same, answers as the first did."""

    async def attempt() -> dict[str, Any]:
        row = await _session_row(monitor, session_id)
        if row["phase"] == Phase.ENDED.value:
            raise Conflict(ErrorCode.SESSION_ENDED, "the session has ended")
        # After the session checks: an ended session answers 409 whatever the numbers.
        try:
            check_consistent(monitor.engine.config, overrides)
            checked = monitor.validate_overrides(overrides)
        except ValueError as e:
            raise Invalid(["body", "overrides"], str(e)) from None
        if row["limit_overrides"] is not None and checked == row["limit_overrides"]:
            return monitor.limits_json(row)
        changed = await monitor.store.set_limit_overrides(
            session_id,
            checked,
            expected_version=row["version"],
            now=monitor.clock(),
            by=actor.name,
            reason=reason,
        )
        if not changed:
            raise Stale
        await monitor.session_changed(session_id)
        return monitor.limits_json(await _session_row(monitor, session_id))

    return await retried(attempt, "the session")
