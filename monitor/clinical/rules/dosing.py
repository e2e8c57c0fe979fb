"""Doses (rule 9 of monitor.clinical.rules; docs/protocols.md "Doses").

Rules:
9. ``dose`` events, with the protocol's ``dosing``: only while dosing runs (phase infusion;
   ``dose_outside_infusion``). The drug and route are the protocol's. IV: from ``mg_per_kg``
   and/or ``total_mg`` and the checklist's weight the monitor computes the other and refuses
   a pair that disagrees by more than 1 % (or 0.5 mg). Intranasal: one event per device of
   ``device_mg``; a device less than ``device_interval_min`` from another one, before or
   after it in time (``device_interval``), or past ``max_devices`` counting every device
   recorded (``devices_exceeded``) needs an ``override_reason`` from a charge nurse or admin.

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from monitor.clinical.protocols import Protocol, Route
from monitor.clinical.rules.checklist_items import checklist
from monitor.clinical.rules.common import DoseError, Forbidden, Gate, Refusal, SessionEvent
from monitor.clinical.session import phase_spans
from monitor.core.model import Phase

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
