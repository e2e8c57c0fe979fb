"""The pre-dose gate (rule 4 of monitor.clinical.rules; docs/protocols.md).

Rules:
4. On ``infusion_start``, checked in this order: every checklist item done
   (``checklist_incomplete``); with ``predose_bp.required`` a cuff BP measured in the session
   at or before dosing (``predose_bp_missing``); the last such BP below both thresholds
   (``predose_bp_high``) unless the event names a ``prescriber`` and a ``reason``
   (``prescriber_override``; audited: ``predose_bp_overridden``).

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.clinical.protocols import Protocol
from monitor.clinical.rules.checklist_items import checklist
from monitor.clinical.rules.common import Gate, Refusal, SessionEvent, cuff_bps
from monitor.core.model import Reading


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
    before = [r for r in cuff_bps(readings) if r.ts <= at]
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
    before = [r for r in cuff_bps(readings) if r.ts <= at]
    if not before:
        return False
    last = before[-1]
    return last.values["sbp"] >= gate.sbp or last.values["dbp"] >= gate.dbp


def prescriber_override(data: Mapping[str, Any] | None) -> bool:
    return bool(data) and all(
        isinstance(data.get(k), str) and str(data.get(k)).strip()  # type: ignore[union-attr]
        for k in ("prescriber", "reason")
    )
