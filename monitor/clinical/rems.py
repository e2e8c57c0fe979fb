"""The esketamine REMS monitoring record of one session (pure; docs/course.md "REMS record").

Built from the session every time it is read: nothing of it is typed twice. Only the sign-off
(who signed, why when incomplete, when a user marked it filed) is stored beside it.

Rule 1: a field is recorded or it is ``missing``; ``complete`` is "nothing missing". What each
        field needs:
        - each concomitant-medication class of the protocol's ``rems.medications``: its
          checklist item answered;
        - ``dose``: at least one dose event; ``lot``: a lot on the dose events;
        - ``bp.predose``: a cuff BP at or before dosing started (``infusion_start``);
          ``bp.40min`` and ``bp.predischarge``: the cuff readings that did the protocol's
          40-minute and pre-discharge ``bp`` checkpoints on time (a cuff BP long after the
          window is not the form's 40-minute BP: signing it needs a charge nurse's reason);
        - ``monitoring_end``: the session has ended (monitoring minutes run from the first
          device to the end; fewer than ``min_monitoring_min`` is flagged, not missing: the
          form records the time it was);
        - ``ready_to_leave``: the nurse's ``discharge_request`` (when the patient was judged
          ready to leave);
        - ``sedation``, ``dissociation``, ``respiratory_depression``,
          ``serious_adverse_event``: answered yes or no in an observation (the last answer
          counts).
Rule 2: signing. A complete record may be signed by any user. An incomplete one only by a
        charge nurse or admin, with a reason (audited); a nurse gets 403, a signature with no
        reason 409 ``rems_incomplete`` naming what is missing. A record is signed once.
Rule 3: filing. The record is due ``filing_days`` (7) days after the session ended; Vigil does
        not file it with the REMS itself, it records when a user marks it filed (after it was
        signed). ``days_left`` counts down to the due time (negative: overdue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from monitor.clinical import rules as pm
from monitor.clinical.protocols import Protocol, Rems
from monitor.core.model import Reading, to_rfc3339

DAY_S: Final = 86_400.0
ANSWERS: Final = ("sedation", "dissociation", "respiratory_depression", "serious_adverse_event")
SIGNING_ROLES: Final = frozenset({"charge", "admin"})


class Missing(StrEnum):
    DOSE = "dose"
    LOT = "lot"
    BP_PREDOSE = "bp.predose"
    BP_40 = "bp.40min"
    BP_PREDISCHARGE = "bp.predischarge"
    MONITORING_END = "monitoring_end"
    READY_TO_LEAVE = "ready_to_leave"
    SEDATION = "sedation"
    DISSOCIATION = "dissociation"
    RESPIRATORY_DEPRESSION = "respiratory_depression"
    SERIOUS_ADVERSE_EVENT = "serious_adverse_event"


class SignRefusal(StrEnum):
    INCOMPLETE = "rems_incomplete"  # 409: incomplete and no reason given
    ALREADY_SIGNED = "rems_signed"  # 409: signed once already
    NOT_SIGNED = "rems_not_signed"  # 409: filed before it is signed
    ALREADY_FILED = "rems_filed"  # 409: marked filed once already
    NOT_REQUIRED = "rems_not_required"  # 409: the session's protocol needs no REMS record


class SignForbidden(PermissionError):
    """Rule 2: only charge or admin sign an incomplete record."""


@dataclass(frozen=True)
class SignOff:
    signed_at: float | None = None
    signed_by: str | None = None
    signed_incomplete_reason: str | None = None
    filed_at: float | None = None
    filed_by: str | None = None


def _bp(r: Reading | pm.Satisfier | None) -> dict[str, Any] | None:
    if r is None:
        return None
    at = r.ts if isinstance(r, Reading) else r.at
    return {"sbp": r.values.get("sbp"), "dbp": r.values.get("dbp"), "at": to_rfc3339(at)}


def _checkpoint_bp(
    status: pm.ProtocolStatus | None, checkpoint_id: str | None
) -> pm.Satisfier | None:
    if status is None or checkpoint_id is None:
        return None
    done = [
        c.satisfied_by
        for c in status.checkpoints
        if c.checkpoint == checkpoint_id and c.satisfied_by is not None and not c.late
    ]
    return done[-1] if done else None


def _first(events: Sequence[pm.SessionEvent], kind: str) -> pm.SessionEvent | None:
    return next((e for e in events if e.type == kind), None)


def _answers(events: Iterable[pm.SessionEvent]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = dict.fromkeys(ANSWERS)
    for e in events:
        if e.type == "observation" and e.data:
            for key in ANSWERS:
                if isinstance(e.data.get(key), bool):
                    out[key] = bool(e.data[key])
    return out


def _dose_category(total_mg: float | None) -> str | None:
    """The form's dose question: 56, 84 or other."""
    if total_mg is None:
        return None
    return str(int(total_mg)) if total_mg in (56, 84) else "other"


def record(
    protocol: Protocol | None,
    row: Mapping[str, Any],
    events: Sequence[pm.SessionEvent],
    readings: Iterable[Reading],
    status: pm.ProtocolStatus | None,
    sign_off: SignOff,
    now: float,
) -> dict[str, Any]:
    """``GET /api/sessions/{id}/rems``: the record and what it still needs (rule 1)."""
    rems: Rems | None = protocol.rems if protocol is not None else None
    missing: list[str] = []
    checklist = {i.id: i for i in status.checklist} if status is not None else {}
    medications: dict[str, Any] = {}
    for form_class, item_id in (rems.medications if rems is not None else {}).items():
        item = checklist.get(item_id)
        medications[form_class] = item.value if item is not None and item.done else None
        if medications[form_class] is None:
            missing.append(f"medications.{form_class}")

    doses = [e for e in events if e.type == "dose"]
    devices = [
        {
            "at": to_rfc3339(e.at),
            "mg": (e.data or {}).get("total_mg"),
            "lot": (e.data or {}).get("lot"),
        }
        for e in doses
    ]
    total = sum(float(d["mg"]) for d in devices if isinstance(d["mg"], int | float))
    lots = sorted({str(d["lot"]) for d in devices if d["lot"]})
    if not doses:
        missing.append(Missing.DOSE)
    if not lots:
        missing.append(Missing.LOT)

    started = _first(events, "infusion_start")
    cuffs = sorted(
        (r for r in readings if r.source == "nibp" and "sbp" in r.values and "dbp" in r.values),
        key=lambda r: (r.ts, r.device_id, r.seq),
    )
    predose = [r for r in cuffs if started is not None and r.ts <= started.at]
    last_pre = predose[-1] if predose else None
    bp_40 = _checkpoint_bp(status, rems.bp_40_checkpoint if rems else None)
    bp_end = _checkpoint_bp(status, rems.bp_discharge_checkpoint if rems else None)
    bp = {
        "predose": _bp(last_pre),
        "at_40_min": _bp(bp_40),
        "predischarge": _bp(bp_end),
    }
    for key, code in (
        ("predose", Missing.BP_PREDOSE),
        ("at_40_min", Missing.BP_40),
        ("predischarge", Missing.BP_PREDISCHARGE),
    ):
        if bp[key] is None:
            missing.append(code)

    ended_at = row.get("ended_at")
    first_device = doses[0].at if doses else None
    minutes = (
        round((ended_at - first_device) / 60.0, 1)
        if ended_at is not None and first_device is not None
        else None
    )
    if ended_at is None:
        missing.append(Missing.MONITORING_END)
    ready = _first(events, "discharge_request")
    if ready is None:
        missing.append(Missing.READY_TO_LEAVE)
    answers = _answers(events)
    for key in ANSWERS:
        if answers[key] is None:
            missing.append(Missing(key))

    gate = protocol.predose_bp if protocol is not None else None
    end = _first(events, "end")
    vitals = {
        "predose": (
            None
            if last_pre is None or gate is None
            else last_pre.values["sbp"] < gate.sbp and last_pre.values["dbp"] < gate.dbp
        ),
        "discharge": (
            None if end is None else not str((end.data or {}).get("override_reason") or "").strip()
        ),
    }
    due = ended_at + rems.filing_days * DAY_S if ended_at is not None and rems else None
    return {
        "session_id": row["id"],
        "patient_id": row.get("patient_id"),
        "patient_label": row.get("patient_label"),
        "protocol": row.get("protocol"),
        "required": rems is not None,
        "complete": rems is not None and not missing,
        "missing": [str(m) for m in missing] if rems is not None else [],
        "medications": medications,
        "dose": {
            "total_mg": total if doses else None,
            "category": _dose_category(total if doses else None),
            "lots": lots,
        },
        "devices": devices,
        "bp": bp,
        "vitals_acceptable": vitals,
        "monitoring": {
            "first_device_at": to_rfc3339(first_device),
            "ended_at": to_rfc3339(ended_at),
            "minutes": minutes,
            "minimum_min": rems.min_monitoring_min if rems else None,
            "meets_minimum": (
                None if minutes is None or rems is None else minutes >= rems.min_monitoring_min
            ),
        },
        "ready_to_leave_at": to_rfc3339(ready.at) if ready is not None else None,
        "answers": answers,
        "adverse_events": [
            {"at": to_rfc3339(e.at), "description": e.data["adverse_event"]}
            for e in events
            if e.type == "observation" and e.data and e.data.get("adverse_event")
        ],
        "signed": (
            {
                "at": to_rfc3339(sign_off.signed_at),
                "by": sign_off.signed_by,
                "incomplete_reason": sign_off.signed_incomplete_reason,
            }
            if sign_off.signed_at is not None
            else None
        ),
        "filed": (
            {"at": to_rfc3339(sign_off.filed_at), "by": sign_off.filed_by}
            if sign_off.filed_at is not None
            else None
        ),
        "due_at": to_rfc3339(due),
        "days_left": round((due - now) / DAY_S, 1) if due is not None else None,
    }


def sign_refusal(
    rec: Mapping[str, Any], role: str, reason: str | None
) -> tuple[SignRefusal | None, bool]:
    """Rule 2: (why signing is refused, or None; whether it signs incomplete). Raises
    SignForbidden for a nurse signing incomplete with a reason."""
    if not rec["required"]:
        return SignRefusal.NOT_REQUIRED, False
    if rec["signed"] is not None:
        return SignRefusal.ALREADY_SIGNED, False
    if rec["complete"]:
        return None, False
    if not (reason or "").strip():
        return SignRefusal.INCOMPLETE, False
    if role not in SIGNING_ROLES:
        raise SignForbidden("only a charge nurse or admin may sign an incomplete REMS record")
    return None, True


def file_refusal(rec: Mapping[str, Any]) -> SignRefusal | None:
    """Rule 3: a record is marked filed once signed."""
    if not rec["required"]:
        return SignRefusal.NOT_REQUIRED
    if rec["signed"] is None:
        return SignRefusal.NOT_SIGNED
    if rec["filed"] is not None:
        return SignRefusal.ALREADY_FILED
    return None


def pending(rec: Mapping[str, Any]) -> bool:
    """On the ward's list: a REMS record not yet signed or not yet filed."""
    return bool(rec["required"]) and (rec["signed"] is None or rec["filed"] is None)
