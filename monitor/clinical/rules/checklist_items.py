"""The checklist (rule 1 of monitor.clinical.rules; docs/protocols.md).

Rules:
1. An item's value is the one given by the latest ``checklist`` event naming it; a ``confirm``
   item is done when ``true``, any other kind once it has a value. Values are checked by kind
   when given (``parse_checklist``): ``confirm`` takes ``true``, ``text`` a non-empty string,
   ``number`` a finite number, ``time`` an RFC 3339 time.

Plain data in, plain data out: no clock reads, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.clinical.protocols import ItemKind, Protocol
from monitor.clinical.rules.common import ChecklistError, ItemStatus, SessionEvent
from monitor.core.model import parse_rfc3339


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
