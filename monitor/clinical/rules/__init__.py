"""The protocol rules: a pure judge of one session against its protocol (monitor.clinical.protocols).

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

One module per rule family, each stating its rules at its top: ``common`` (the vocabulary,
anchors and reading order: rules 2, 8), ``checklist_items`` (1), ``checkpoint_schedule``
(3, 7), ``predose_gate`` (4), ``discharge_gate`` (5, 6) and ``dosing`` (9). This package
joins them (``status``) and is the one name callers import (``from monitor.clinical import
rules``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.clinical.protocols import Protocol
from monitor.clinical.rules.checklist_items import checklist, parse_checklist
from monitor.clinical.rules.checkpoint_schedule import (
    CHECKPOINT_PRIORITY,
    MAX_OCCURRENCES,
    SCALE_KEYS,
    SIGNAL_CHECKPOINT,
    checkpoint_alarm_id,
    checkpoint_alarms,
    checkpoints,
)
from monitor.clinical.rules.common import (
    Blocked,
    ChecklistError,
    CheckpointStatus,
    DischargeStatus,
    DoseError,
    Forbidden,
    Gate,
    ItemStatus,
    ProtocolStatus,
    Refusal,
    Satisfier,
    SessionEvent,
    Status,
    anchors,
)
from monitor.clinical.rules.discharge_gate import discharge, end_refusal
from monitor.clinical.rules.dosing import DOSE_FIGURES, DoseDecision, dose
from monitor.clinical.rules.predose_gate import (
    infusion_start_refusal,
    predose_bp_overridden,
    prescriber_override,
)
from monitor.core.model import Reading

__all__ = [
    "CHECKPOINT_PRIORITY",
    "DOSE_FIGURES",
    "MAX_OCCURRENCES",
    "SCALE_KEYS",
    "SIGNAL_CHECKPOINT",
    "Blocked",
    "ChecklistError",
    "CheckpointStatus",
    "DischargeStatus",
    "DoseDecision",
    "DoseError",
    "Forbidden",
    "Gate",
    "ItemStatus",
    "ProtocolStatus",
    "Refusal",
    "Satisfier",
    "SessionEvent",
    "Status",
    "anchors",
    "checklist",
    "checkpoint_alarm_id",
    "checkpoint_alarms",
    "checkpoints",
    "discharge",
    "dose",
    "end_refusal",
    "infusion_start_refusal",
    "parse_checklist",
    "predose_bp_overridden",
    "prescriber_override",
    "status",
]


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
