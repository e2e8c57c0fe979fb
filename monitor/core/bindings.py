"""Which bed each device was bound to, and when: the in-memory copy ingest places readings by.

A reading belongs to the bed its device was bound to at its measurement time (device ``ts``),
whenever it arrives (docs/reliability.md). The history lives in the ``device_bindings`` table;
this cache holds it per device so placing a reading is a dictionary lookup and a bisection,
never a query (the ingest path is benchmarked). The edges refresh a device's entry from the
store when they learn of a rebinding (monitor.pipeline.service.Monitor.load_bindings).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Binding:
    """Bound to ``bed_id`` over ``since <= ts < until`` (``until`` None: still bound)."""

    bed_id: str
    since: float
    until: float | None


class Bindings:
    """Per device, its bindings oldest first."""

    __slots__ = ("_by_device", "_starts")

    def __init__(self) -> None:
        self._by_device: dict[str, tuple[Binding, ...]] = {}
        self._starts: dict[str, list[float]] = {}

    def set(self, device_id: str, bindings: Iterable[Binding]) -> None:
        ordered = tuple(sorted(bindings, key=lambda b: b.since))
        self._by_device[device_id] = ordered
        self._starts[device_id] = [b.since for b in ordered]

    def known(self, device_id: str) -> bool:
        return device_id in self._by_device

    def current(self, device_id: str) -> str | None:
        """The bed the device is bound to now (its open binding), None if not known."""
        held = self._by_device.get(device_id)
        if not held or held[-1].until is not None:
            return None
        return held[-1].bed_id

    def bed_at(self, device_id: str, ts: float) -> str | None:
        """The bed whose binding holds ``ts``; None when none does (not known, or a gap)."""
        held = self._by_device.get(device_id)
        if not held:
            return None
        i = bisect.bisect_right(self._starts[device_id], ts) - 1
        if i < 0:
            return None
        b = held[i]
        return b.bed_id if b.until is None or ts < b.until else None
