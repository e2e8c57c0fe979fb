"""Sessions: admit a patient to a bed, move through the phases, record observations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor import protocol_model as pm
from monitor import scores
from monitor import session as session_model
from monitor.api import errors
from monitor.api.bodies import (
    EVENT_DATA,
    ID_REGEX,
    NO_NUL,
    Baseline,
    IdField,
    SessionEvent,
    Timestamp,
    event_data,
    text,
)
from monitor.api.deps import CurrentUser, MonitorDep, SessionId, StrictRoute, session_row
from monitor.api.errors import ApiError, ErrorCode
from monitor.api.openapi import links
from monitor.api.ward import BedFilter, parse_time
from monitor.db.store import Conflict, NotFound
from monitor.model import Phase, to_rfc3339

router = APIRouter(
    tags=["sessions"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

# 60 minutes at most is the clinic range; the planned time is what the panel's timer counts to.
DEFAULT_PLANNED_S = 40 * 60


class SessionCreate(BaseModel):
    # The example names a bed as clinics name chairs; `make fuzz` keeps such a bed free so
    # the document's own example admits (docs/api.md).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"bed": "chair-1", "patient_label": "A.B.", "age": 42}]},
    )

    bed: IdField
    patient_label: str = text(128)
    # The clinic's identifier (MRN or code): the sessions of one patient_id are that
    # patient's course (docs/course.md); the label is only what the panel shows.
    patient_id: IdField | None = None
    # Strict: a wrong type ("54", 54.0, true) is refused, not silently coerced.
    age: int | None = Field(default=None, ge=0, le=130, strict=True)
    baseline: Baseline | None = None  # type: ignore[valid-type]
    infusion_planned_min: int | None = Field(default=None, ge=5, le=240, strict=True)
    # The clinic protocol's id (GET /api/protocols); absent = the clinic's default_protocol.
    protocol: str | None = Field(default=None, min_length=1, max_length=48, pattern=NO_NUL)
    # When the patient was admitted, if earlier than now (a late entry, or a device that
    # stores and forwards): not before the bed's previous session ended.
    at: Timestamp | None = None


@router.post(
    "/api/sessions",
    status_code=status.HTTP_201_CREATED,
    responses=errors.responses(404, 409),
    openapi_extra=links("create_session"),
)
async def create_session(
    body: SessionCreate, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    # The bed first: a body's values are judged only for a bed that exists (404 before 422).
    if not await monitor.store.bed_exists(body.bed):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no bed {body.bed!r}")
    baseline = body.baseline.model_dump(exclude_unset=True) if body.baseline else None
    config = monitor.engine.config
    protocol = config.protocol(body.protocol)
    if protocol is None:
        raise errors.invalid(
            ["body", "protocol"], f"no such protocol (one of {', '.join(config.protocols)})"
        )
    planned = (
        body.infusion_planned_min * 60
        if body.infusion_planned_min
        else protocol.planned_infusion_s() or DEFAULT_PLANNED_S
    )
    now = monitor.clock()
    opened_at = parse_time(body.at, "at", "body") if body.at else now
    assert opened_at is not None
    if opened_at > now + 300:
        raise errors.invalid(["body", "at"], "is in the future")
    if opened_at < now:
        last = await monitor.store.session_rows(bed_id=body.bed, limit=1)
        if last and opened_at < (last[0]["ended_at"] or last[0]["opened_at"]):
            raise ApiError(409, ErrorCode.CONFLICT, "at is before the bed's previous session ended")
    try:
        sid = await monitor.store.create_session(
            bed_id=body.bed,
            patient_label=body.patient_label,
            patient_id=body.patient_id,
            age=body.age,
            baseline=baseline,
            planned_s=planned,
            now=now,
            by=user.name,
            protocol=protocol.id,
            opened_at=opened_at,
        )
    except NotFound as e:
        raise ApiError(404, ErrorCode.NOT_FOUND, str(e)) from None
    except Conflict as e:
        raise ApiError(409, ErrorCode.BED_OCCUPIED, str(e)) from None
    return await monitor.session_changed(sid)


@router.get("/api/sessions", openapi_extra=links("list_sessions"))
async def list_sessions(
    monitor: MonitorDep,
    user: CurrentUser,
    bed: BedFilter = None,
    open: bool | None = None,
    patient_label: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    patient_id: Annotated[str | None, Query(max_length=64, pattern=ID_REGEX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    rows = await monitor.store.session_rows(
        bed_id=bed,
        open_only=open,
        patient_label=patient_label,
        patient_id=patient_id,
        limit=limit,
    )
    return {"sessions": [await monitor.session_json(r) for r in rows]}


@router.get(
    "/api/sessions/{session_id}",
    responses=errors.responses(404),
    openapi_extra=links("get_session"),
)
async def get_session(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    return await monitor.session_json(await session_row(monitor, session_id))


@router.post(
    "/api/sessions/{session_id}/events",
    responses=errors.responses(404, 409),
    openapi_extra=links("add_event"),
)
async def add_event(
    session_id: SessionId, body: SessionEvent, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await session_row(monitor, session_id)
    now = monitor.clock()
    at = parse_time(body.at, "at", "body") if body.at else now
    assert at is not None
    if at > now + 300:
        raise errors.invalid(["body", "at"], "is in the future")
    events = await monitor.store.session_events(session_id)
    state = session_model.replay(
        (e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
    )
    try:
        new_state = session_model.apply(state, body.type, at)
    except session_model.TransitionError as e:
        code = (
            ErrorCode.SESSION_ENDED if state.phase is Phase.ENDED else ErrorCode.EVENT_NOT_ALLOWED
        )
        raise ApiError(409, code, str(e)) from None
    data, audit = await _protocol_gates(monitor, row, events, body, at, user.role)
    baseline = None
    if body.type == "infusion_start" and not row["baseline"]:
        # The baseline phase's own readings set the reference for the relative limits.
        baseline = await monitor.baseline_from_readings(session_id, at)
    await monitor.store.add_session_event(
        session_id,
        event_type=body.type,
        at=at,
        now=now,
        by=user.name,
        data=data,
        new_phase=new_state.phase.value,
        baseline=baseline,
        audit=audit,
    )
    return await monitor.session_changed(session_id)


def _refused(refusal: pm.Refusal, message: str) -> ApiError:
    # Times the model gives (``next_at``) go out as RFC 3339, like every time in the API.
    detail = {
        k: to_rfc3339(v) if k.endswith("_at") and isinstance(v, float) else v
        for k, v in refusal.detail.items()
    }
    err = ApiError(409, refusal.code.value, message)
    err.detail.update(detail)  # type: ignore[attr-defined]
    return err


async def _protocol_gates(
    monitor: MonitorDep,
    row: dict[str, Any],
    events: list[dict[str, Any]],
    body: SessionEvent,
    at: float,
    role: str,
) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]]]:
    """The session protocol's word on one event (the rules are monitor.protocol_model's):
    the data to store and the audit entries of any override; raises the refusal."""
    data = event_data(body)
    model = EVENT_DATA.get(body.type)
    if model is not None and data is not None:
        try:
            model.model_validate(data)
        except ValidationError as e:
            raise errors.invalid(["body", "data"], str(e).splitlines()[0]) from None
    if body.type == "observation":
        # Questionnaire totals are the monitor's sum of the validated items (monitor.scores).
        return scores.with_totals(data), []
    if body.type not in ("checklist", "infusion_start", "end", "dose"):
        return data, []
    inputs = await monitor.views.protocol_inputs(row, events)
    protocol = inputs.protocol
    if body.type == "checklist":
        if protocol is None:
            raise errors.invalid(["body", "type"], "this session runs no protocol")
        try:
            return pm.parse_checklist(protocol, data), []
        except pm.ChecklistError as e:
            raise errors.invalid(["body", "data"], str(e)) from None
    if protocol is None:
        return data, []
    if body.type == "dose":
        try:
            decision = pm.dose(protocol, inputs.opened_at, inputs.events, data, at, role)
        except pm.DoseError as e:
            raise errors.invalid(["body", "data"], str(e)) from None
        except pm.Forbidden as e:
            raise ApiError(403, ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
        if decision.refusal is not None:
            raise _refused(decision.refusal, f"the dose is refused by the {protocol.id} protocol")
        stored = dict(decision.data)
        if decision.overridden:
            return stored, [("dose_override", {"reason": stored["override_reason"]})]
        return stored, []
    if body.type == "infusion_start":
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
        raise ApiError(403, ErrorCode.OVERRIDE_FORBIDDEN, str(e)) from None
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


@router.get("/api/protocols", tags=["protocols"])
async def list_protocols(monitor: MonitorDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The clinic's protocols (docs/protocols.md), the default one marked."""
    config = monitor.engine.config
    return [
        {**p.public(), "default": pid == config.default_protocol}
        for pid, p in config.protocols.items()
    ]


@router.get("/api/sessions/{session_id}/limits", responses=errors.responses(404))
async def get_limits(
    session_id: SessionId, monitor: MonitorDep, user: CurrentUser
) -> dict[str, Any]:
    row = await session_row(monitor, session_id)
    return monitor.limits_json(row)
