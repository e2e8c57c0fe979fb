"""The protocol model: a pure judge of one session against its protocol (monitor.clinical.protocols).

Rules (docs/protocols.md):
1. Checklist. An item's value is the one given by the latest ``checklist`` event naming it; a
   ``confirm`` item is done when ``true``, any other kind once it has a value. Values are
   checked by kind when given (``parse_checklist``): ``confirm`` takes ``true``, ``text`` a
   non-empty string, ``number`` a finite number, ``time`` an RFC 3339 time.
2. Anchors. ``admission`` is the session's opening; ``infusion_start``, ``infusion_stop`` and
   ``discharge_request`` are the ``at`` of the first event of that type.
3. Checkpoints. One is due ``offset_min`` after its anchor, on time from ``window_min`` before
   to ``window_min`` after. With ``every_min`` it repeats while its phase (``within``) lasts;
   the occurrences shown are those due so far and the next one. Status, at ``now``: ``done``
   once satisfied, else ``upcoming`` (anchor not yet, or before the window), ``due`` (in the
   window) or ``overdue`` (past it). A ``bp`` checkpoint is satisfied by the earliest cuff
   reading (``source: nibp`` with sbp and dbp) whose device ``ts`` is at or after the window
   opens; ``moaas``/``cadss`` by the earliest observation of that scale at or after it. One
   after the window still does it, marked late.
4. Pre-dose gate (``infusion_start``), checked in this order: every checklist item done
   (``checklist_incomplete``); with ``predose_bp.required`` a cuff BP measured in the session
   at or before dosing (``predose_bp_missing``); the last such BP below both thresholds
   (``predose_bp_high``) unless the event names a ``prescriber`` and a ``reason``.
5. Discharge. A session never dosed may end at any time: nothing was given. Once dosed, every
   criterion of the protocol must hold at ``now``: the time after its anchor (``too_soon``);
   the last cuff BP since dosing within the bounds or within the percentage of the baseline
   (``bp_missing``, ``bp_out_of_range``); the last SpO2 above its floor (``spo2_missing``,
   ``spo2_low``) and HR in range (``hr_missing``, ``hr_out_of_range``), both since dosing;
   the last MOAA/S since dosing equal to the protocol's (``moaas_missing``, ``moaas_low``);
   the escort item confirmed (``escort_unconfirmed``). ``eligible_at`` is when the time
   criterion is met (None until its anchor happens).
6. Ending a session whose discharge is blocked needs an override: a non-empty
   ``override_reason`` from a ``charge`` or ``admin`` user; a ``nurse``'s is forbidden.
7. An overdue checkpoint raises one low-priority technical alarm (``signal: checkpoint``)
   with the deterministic id ``{bed}.checkpoint.{checkpoint id}.{due ms}``; it ends when the
   checkpoint is no longer overdue (done, or the session ended).
8. Only times decide: the statuses never depend on the order readings arrive in.
9. Doses (``dose`` events, with the protocol's ``dosing``): only while dosing runs (phase
   infusion; ``dose_outside_infusion``). The drug and route are the protocol's. IV: from
   ``mg_per_kg`` and/or ``total_mg`` and the checklist's weight the monitor computes the other
   and refuses a pair that disagrees by more than 1 % (or 0.5 mg). Intranasal: one event per
   device of ``device_mg``; a device less than ``device_interval_min`` from another one,
   before or after it in time (``device_interval``), or past ``max_devices`` counting every
   device recorded (``devices_exceeded``) needs an ``override_reason`` from a charge nurse or
   admin.

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from monitor.alarms.lifecycle import Event, State, apply, next_state, snapshot
from monitor.clinical.protocols import Anchor, Checkpoint, CheckpointKind, ItemKind, Protocol, Route
from monitor.clinical.session import phase_spans
from monitor.core.model import Alarm, AlarmKind, Phase, Priority, Reading, parse_rfc3339

SIGNAL_CHECKPOINT: Final = "checkpoint"
CHECKPOINT_PRIORITY: Final = Priority.LOW
# Observation keys that satisfy each observed checkpoint kind.
SCALE_KEYS: Final[Mapping[CheckpointKind, tuple[str, ...]]] = {
    CheckpointKind.MOAAS: ("moaas",),
    CheckpointKind.CADSS: ("cadss6", "cadss"),
}
# A repeating checkpoint never lists more occurrences than this (a runaway phase).
MAX_OCCURRENCES: Final = 500


class Status(StrEnum):
    UPCOMING = "upcoming"
    DUE = "due"
    DONE = "done"
    OVERDUE = "overdue"


class Gate(StrEnum):
    CHECKLIST_INCOMPLETE = "checklist_incomplete"
    PREDOSE_BP_MISSING = "predose_bp_missing"
    PREDOSE_BP_HIGH = "predose_bp_high"
    DISCHARGE_BLOCKED = "discharge_blocked"
    DOSE_OUTSIDE_INFUSION = "dose_outside_infusion"
    DEVICE_INTERVAL = "device_interval"
    DEVICES_EXCEEDED = "devices_exceeded"


class Blocked(StrEnum):
    TOO_SOON = "too_soon"
    BP_MISSING = "bp_missing"
    BP_OUT_OF_RANGE = "bp_out_of_range"
    SPO2_MISSING = "spo2_missing"
    SPO2_LOW = "spo2_low"
    HR_MISSING = "hr_missing"
    HR_OUT_OF_RANGE = "hr_out_of_range"
    MOAAS_MISSING = "moaas_missing"
    MOAAS_LOW = "moaas_low"
    ESCORT_UNCONFIRMED = "escort_unconfirmed"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A stored session event: ``at`` in epoch seconds, in the order stored."""

    type: str
    at: float
    data: Mapping[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ItemStatus:
    id: str
    label: str
    kind: ItemKind
    value: Any
    done: bool


@dataclass(frozen=True, slots=True)
class Satisfier:
    """What satisfied a checkpoint: a cuff reading or an observation event."""

    at: float
    values: Mapping[str, Any]
    device_id: str | None = None
    seq: int | None = None
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    id: str
    checkpoint: str  # the protocol's checkpoint id
    kind: CheckpointKind
    due_at: float | None
    window_start: float | None
    window_end: float | None
    status: Status
    done_at: float | None = None
    late: bool = False
    satisfied_by: Satisfier | None = None


@dataclass(frozen=True, slots=True)
class DischargeStatus:
    eligible: bool
    eligible_at: float | None
    blocked_by: tuple[Blocked, ...] = ()


@dataclass(frozen=True, slots=True)
class ProtocolStatus:
    checklist: tuple[ItemStatus, ...]
    checkpoints: tuple[CheckpointStatus, ...]
    discharge: DischargeStatus


@dataclass(frozen=True, slots=True)
class Refusal:
    """A gate that refuses an event: the API answers 409 with ``code`` and ``detail``."""

    code: Gate
    detail: Mapping[str, Any] = field(default_factory=dict)


class ChecklistError(ValueError):
    """A checklist event whose data does not fit the protocol's items (answered with 422)."""


class DoseError(ValueError):
    """A dose whose figures do not fit the protocol or each other (answered with 422)."""


class Forbidden(PermissionError):
    """An override by a user whose role may not override (answered with 403)."""


# --- checklist (rule 1) ---------------------------------------------------------------------


def parse_checklist(protocol: Protocol, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values of one ``checklist`` event, checked by kind; raises ChecklistError."""
    if not data:
        raise ChecklistError("data must give at least one checklist item")
    out: dict[str, Any] = {}
    for item_id, value in data.items():
        item = protocol.item(item_id)
        if item is None:
            raise ChecklistError(f"{item_id!r} is not a checklist item of {protocol.id}")
        kind = item.kind
        if kind is ItemKind.CONFIRM:
            ok = value is True
            want = "true"
        elif kind is ItemKind.TEXT:
            ok = isinstance(value, str) and bool(value.strip())
            want = "a non-empty string"
        elif kind is ItemKind.NUMBER:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            want = "a number"
        else:
            ok = isinstance(value, str) and _is_time(value)
            want = "an RFC 3339 time"
        if not ok:
            raise ChecklistError(f"{item_id} ({kind.value}) takes {want}")
        out[item_id] = value
    return out


def _is_time(text: str) -> bool:
    try:
        parse_rfc3339(text)
    except ValueError:
        return False
    return True


def checklist(protocol: Protocol, events: Sequence[SessionEvent]) -> tuple[ItemStatus, ...]:
    values: dict[str, Any] = {}
    for e in events:
        if e.type == "checklist" and e.data:
            values.update({k: v for k, v in e.data.items() if protocol.item(k) is not None})
    out = []
    for item in protocol.checklist:
        value = values.get(item.id)
        done = value is True if item.kind is ItemKind.CONFIRM else value is not None
        out.append(ItemStatus(item.id, item.label, item.kind, value, done))
    return tuple(out)


# --- anchors and checkpoints (rules 2, 3) ----------------------------------------------------


def anchors(opened_at: float, events: Sequence[SessionEvent]) -> dict[Anchor, float]:
    out: dict[Anchor, float] = {Anchor.ADMISSION: opened_at}
    for e in events:
        try:
            anchor = Anchor(e.type)
        except ValueError:
            continue
        out.setdefault(anchor, e.at)
    return out


def _is_cuff_bp(r: Reading) -> bool:
    return r.source == "nibp" and "sbp" in r.values and "dbp" in r.values


def _reading_key(r: Reading) -> tuple[float, str, int]:
    return (r.ts, r.device_id, r.seq)


def _cuff_bps(readings: Iterable[Reading]) -> list[Reading]:
    return sorted((r for r in readings if _is_cuff_bp(r)), key=_reading_key)


def _observations(events: Sequence[SessionEvent], keys: tuple[str, ...]) -> list[Satisfier]:
    found = []
    for i, e in enumerate(events):
        if e.type != "observation" or not e.data:
            continue
        hit = {k: e.data[k] for k in keys if k in e.data}
        if hit:
            found.append((e.at, i, Satisfier(at=e.at, values=hit, event_id=e.id)))
    return [s for _, _, s in sorted(found, key=lambda x: (x[0], x[1]))]


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
        for r in _cuff_bps(readings)
    ]
    out: list[CheckpointStatus] = []
    for cp in protocol.checkpoints:
        candidates = (
            bps if cp.kind is CheckpointKind.BP else _observations(events, SCALE_KEYS[cp.kind])
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


# --- gates (rules 4, 5, 6) -------------------------------------------------------------------


def infusion_start_refusal(
    protocol: Protocol,
    events: Sequence[SessionEvent],
    readings: Iterable[Reading],
    at: float,
    data: Mapping[str, Any] | None,
) -> Refusal | None:
    """Why dosing at ``at`` is refused (rule 4), or None when it may start."""
    missing = [i.id for i in checklist(protocol, events) if not i.done]
    if missing:
        return Refusal(Gate.CHECKLIST_INCOMPLETE, {"missing": missing})
    gate = protocol.predose_bp
    if gate is None or not gate.required:
        return None
    before = [r for r in _cuff_bps(readings) if r.ts <= at]
    if not before:
        return Refusal(Gate.PREDOSE_BP_MISSING)
    last = before[-1]
    sbp, dbp = last.values["sbp"], last.values["dbp"]
    if (sbp >= gate.sbp or dbp >= gate.dbp) and not prescriber_override(data):
        return Refusal(
            Gate.PREDOSE_BP_HIGH,
            {"sbp": sbp, "dbp": dbp, "threshold": {"sbp": gate.sbp, "dbp": gate.dbp}},
        )
    return None


def predose_bp_overridden(
    protocol: Protocol, readings: Iterable[Reading], at: float, data: Mapping[str, Any] | None
) -> bool:
    """True when dosing goes ahead over a high pre-dose BP on a prescriber's decision (audit)."""
    gate = protocol.predose_bp
    if gate is None or not gate.required or not prescriber_override(data):
        return False
    before = [r for r in _cuff_bps(readings) if r.ts <= at]
    if not before:
        return False
    last = before[-1]
    return last.values["sbp"] >= gate.sbp or last.values["dbp"] >= gate.dbp


def prescriber_override(data: Mapping[str, Any] | None) -> bool:
    return bool(data) and all(
        isinstance(data.get(k), str) and str(data.get(k)).strip()  # type: ignore[union-attr]
        for k in ("prescriber", "reason")
    )


def _last(readings: Iterable[Reading], signal: str, since: float) -> Reading | None:
    best: Reading | None = None
    for r in readings:
        if signal in r.values and r.ts >= since:
            if best is None or _reading_key(r) > _reading_key(best):
                best = r
    return best


def discharge(
    protocol: Protocol,
    opened_at: float,
    events: Sequence[SessionEvent],
    readings: Sequence[Reading],
    baseline: Mapping[str, float] | None,
    now: float,
) -> DischargeStatus:
    """Rule 5."""
    at = anchors(opened_at, events)
    dosed = at.get(Anchor.INFUSION_START)
    rules = protocol.discharge
    eligible_at: float | None = None
    if rules.after is not None:
        anchor_at = at.get(rules.after.anchor)
        eligible_at = None if anchor_at is None else anchor_at + rules.after.min * 60
    if dosed is None:
        return DischargeStatus(True, eligible_at)
    blocked: list[Blocked] = []
    if rules.after is not None and (eligible_at is None or now < eligible_at):
        blocked.append(Blocked.TOO_SOON)
    if rules.bp is not None:
        bps = [r for r in _cuff_bps(readings) if r.ts >= dosed]
        if not bps:
            blocked.append(Blocked.BP_MISSING)
        elif not _bp_ok(rules.bp, bps[-1], baseline):
            blocked.append(Blocked.BP_OUT_OF_RANGE)
    if rules.spo2_above is not None:
        r = _last(readings, "spo2", dosed)
        if r is None:
            blocked.append(Blocked.SPO2_MISSING)
        elif not r.values["spo2"] > rules.spo2_above:
            blocked.append(Blocked.SPO2_LOW)
    if rules.hr is not None:
        r = _last(readings, "hr", dosed)
        if r is None:
            blocked.append(Blocked.HR_MISSING)
        elif not rules.hr[0] <= r.values["hr"] <= rules.hr[1]:
            blocked.append(Blocked.HR_OUT_OF_RANGE)
    if rules.moaas is not None:
        obs = [s for s in _observations(events, ("moaas",)) if s.at >= dosed]
        if not obs:
            blocked.append(Blocked.MOAAS_MISSING)
        elif obs[-1].values["moaas"] != rules.moaas:
            blocked.append(Blocked.MOAAS_LOW)
    if rules.escort_item is not None:
        item = next(i for i in checklist(protocol, events) if i.id == rules.escort_item)
        if not item.done:
            blocked.append(Blocked.ESCORT_UNCONFIRMED)
    return DischargeStatus(not blocked, eligible_at, tuple(blocked))


def _bp_ok(rule: Any, r: Reading, baseline: Mapping[str, float] | None) -> bool:
    sbp, dbp = r.values["sbp"], r.values["dbp"]
    if rule.sbp[0] <= sbp <= rule.sbp[1] and rule.dbp[0] <= dbp <= rule.dbp[1]:
        return True
    pct = rule.within_pct_of_baseline
    if pct is None or not baseline or "sbp" not in baseline or "dbp" not in baseline:
        return False
    return all(
        abs(v - baseline[k]) <= baseline[k] * pct / 100 for k, v in (("sbp", sbp), ("dbp", dbp))
    )


def end_refusal(
    status: DischargeStatus, data: Mapping[str, Any] | None, role: str
) -> Refusal | None:
    """Rule 6: None when ``end`` may go ahead (eligible, or overridden by charge/admin);
    a Refusal when blocked with no override; raises Forbidden for a nurse's override."""
    if status.eligible:
        return None
    reason = (data or {}).get("override_reason")
    if isinstance(reason, str) and reason.strip():
        if role not in ("charge", "admin"):
            raise Forbidden("overriding the discharge criteria needs the charge role")
        return None
    return Refusal(Gate.DISCHARGE_BLOCKED, {"blocked_by": [b.value for b in status.blocked_by]})


# --- the whole status ------------------------------------------------------------------------


def status(
    protocol: Protocol,
    opened_at: float,
    events: Sequence[SessionEvent],
    readings: Sequence[Reading],
    baseline: Mapping[str, float] | None,
    now: float,
) -> ProtocolStatus:
    """Everything the session view shows of its protocol at ``now``."""
    return ProtocolStatus(
        checklist=checklist(protocol, events),
        checkpoints=checkpoints(protocol, opened_at, events, readings, now),
        discharge=discharge(protocol, opened_at, events, readings, baseline, now),
    )


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


# --- doses (rule 9) ----------------------------------------------------------------------------


# The keys :func:`dose` adds to (or fills in) what was given: a dose given twice is the same
# dose whatever the monitor computed beside it (monitor.clinical.session.repeat_of).
DOSE_FIGURES: Final = frozenset(
    {"drug", "route", "total_mg", "mg_per_kg", "weight_kg", "device", "cumulative_mg"}
)


@dataclass(frozen=True, slots=True)
class DoseDecision:
    """A dose as it is stored (figures completed by the monitor), or why it is refused."""

    data: Mapping[str, Any]
    refusal: Refusal | None = None
    overridden: bool = False


def _override(data: Mapping[str, Any], role: str) -> bool:
    reason = data.get("override_reason")
    if not (isinstance(reason, str) and reason.strip()):
        return False
    if role not in ("charge", "admin"):
        raise Forbidden("overriding the dosing rules needs the charge role")
    return True


def dose(
    protocol: Protocol,
    opened_at: float,
    events: Sequence[SessionEvent],
    data: Mapping[str, Any] | None,
    at: float,
    role: str,
) -> DoseDecision:
    """Rule 9: the dose to store at ``at``; raises DoseError (422) or Forbidden (403)."""
    given = dict(data or {})
    rules = protocol.dosing
    if rules is None:
        return DoseDecision(given)
    phase = phase_spans(opened_at, [(e.type, e.at) for e in events if e.at <= at])[-1][1]
    if phase is not Phase.INFUSION:
        return DoseDecision(given, Refusal(Gate.DOSE_OUTSIDE_INFUSION, {"phase": phase.value}))
    for key, want in (("drug", rules.drug), ("route", rules.route.value)):
        if key in given and given[key] != want:
            raise DoseError(f"{key} must be {want!r}, the {protocol.id} protocol's")
    out: dict[str, Any] = {**given, "drug": rules.drug, "route": rules.route.value}
    if rules.route is Route.IV:
        return DoseDecision(_iv(protocol, events, out))
    assert rules.device_mg is not None
    if "total_mg" in given and given["total_mg"] != rules.device_mg:
        raise DoseError(f"one intranasal device is {rules.device_mg:g} mg")
    given_at = sorted(e.at for e in events if e.type == "dose")
    earlier = [t for t in given_at if t <= at]
    later = [t for t in given_at if t > at]
    out.update(
        total_mg=rules.device_mg,
        device=len(earlier) + 1,
        cumulative_mg=rules.device_mg * (len(earlier) + 1),
    )
    refusal = None
    # Every device given counts, and the rest is kept on both sides: a device entered late
    # (dated before one already recorded) is judged against its neighbours in time.
    if rules.max_devices is not None and len(given_at) >= rules.max_devices:
        refusal = Refusal(Gate.DEVICES_EXCEEDED, {"max_devices": rules.max_devices})
    elif rules.device_interval_min is not None:
        rest = rules.device_interval_min * 60
        if earlier and at < earlier[-1] + rest:
            refusal = Refusal(Gate.DEVICE_INTERVAL, {"next_at": earlier[-1] + rest})
        elif later and later[0] < at + rest:
            refusal = Refusal(Gate.DEVICE_INTERVAL, {"next_device_at": later[0]})
    if refusal is not None and _override(given, role):
        return DoseDecision(out, overridden=True)
    return DoseDecision(out, refusal)


def _iv(protocol: Protocol, events: Sequence[SessionEvent], out: dict[str, Any]) -> dict[str, Any]:
    weight_item = protocol.dosing.weight_item if protocol.dosing is not None else None
    weight = next((i.value for i in checklist(protocol, events) if i.id == weight_item), None)
    if not isinstance(weight, int | float) or weight <= 0:
        raise DoseError(f"the checklist's {weight_item} is needed for mg/kg dosing")
    per_kg, total = out.get("mg_per_kg"), out.get("total_mg")
    if per_kg is None and total is None:
        raise DoseError("a dose names mg_per_kg or total_mg")
    if per_kg is not None and total is not None:
        expected = per_kg * weight
        if abs(total - expected) > max(0.5, 0.01 * expected):
            raise DoseError(
                f"total_mg {total:g} does not match mg_per_kg {per_kg:g} x {weight:g} kg "
                f"= {expected:g} mg"
            )
    elif per_kg is not None:
        out["total_mg"] = round(per_kg * weight, 1)
    elif total is not None:
        out["mg_per_kg"] = round(total / weight, 3)
    out["weight_kg"] = weight
    return out
