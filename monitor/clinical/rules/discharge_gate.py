"""Discharge and ending a session (rules 5 and 6 of monitor.clinical.rules; docs/protocols.md).

Rules:
5. A session never dosed may end at any time: nothing was given. Once dosed, every criterion
   of the protocol must hold at ``now``: the time after its anchor (``too_soon``); the last
   cuff BP since dosing within the bounds or within the percentage of the baseline
   (``bp_missing``, ``bp_out_of_range``); the last SpO2 above its floor (``spo2_missing``,
   ``spo2_low``) and HR in range (``hr_missing``, ``hr_out_of_range``), both since dosing;
   the last MOAA/S since dosing equal to the protocol's (``moaas_missing``, ``moaas_low``);
   the escort item confirmed (``escort_unconfirmed``). ``eligible_at`` is when the time
   criterion is met (None until its anchor happens).
6. Ending a session whose discharge is blocked needs an override: a non-empty
   ``override_reason`` from a ``charge`` or ``admin`` user; a ``nurse``'s is forbidden.

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.clinical.protocols import Anchor, Protocol
from monitor.clinical.rules.checklist_items import checklist
from monitor.clinical.rules.common import (
    Blocked,
    DischargeStatus,
    Forbidden,
    Gate,
    Refusal,
    SessionEvent,
    anchors,
    cuff_bps,
    observations,
    reading_key,
)
from monitor.core.model import Reading


def _last(readings: Iterable[Reading], signal: str, since: float) -> Reading | None:
    best: Reading | None = None
    for r in readings:
        if signal in r.values and r.ts >= since:
            if best is None or reading_key(r) > reading_key(best):
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
        bps = [r for r in cuff_bps(readings) if r.ts >= dosed]
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
        obs = [s for s in observations(events, ("moaas",)) if s.at >= dosed]
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
