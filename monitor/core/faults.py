"""Fault points: named places in the pipeline where a test can make the monitor crash or fail,
to prove what survives. Inert unless armed through ``VIGIL_FAULTS`` (settings ``faults``),
which no deployment sets.

``VIGIL_FAULTS="after_alarm_commit=kill"`` kills the process (SIGKILL, no clean-up) the
first time that point is reached; ``engine=raise:3`` raises ``InjectedFault`` the first three
times. Several are separated by commas. The points are listed in ``Point``; docs/reliability.md
names the test that arms each.
"""

from __future__ import annotations

import logging
import os
import signal
from enum import StrEnum

log = logging.getLogger("vigil.faults")


class Point(StrEnum):
    AFTER_READINGS_COMMIT = "after_readings_commit"  # readings stored, alarms not yet
    AFTER_ALARM_COMMIT = "after_alarm_commit"  # alarm changes stored, acks not yet sent
    AFTER_ACK = "after_ack"  # an ack has just been sent to a device
    ENGINE = "engine"  # the alarm engine judging a live reading
    ALARM_STORE = "alarm_store"  # storing alarm changes
    FANOUT = "fanout"  # handing messages to panels


class InjectedFault(RuntimeError):
    """Raised by an armed fault point (tests only)."""


class Faults:
    def __init__(self, spec: str | None) -> None:
        self._armed: dict[Point, tuple[str, int]] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, _, action = part.partition("=")
            kind, _, count = action.partition(":")
            if kind not in ("kill", "raise"):
                raise ValueError(f"fault {part!r}: the action must be kill or raise")
            self._armed[Point(name.strip())] = (kind, int(count) if count else 1)
        if self._armed:
            log.warning("fault points armed (tests only): %s", ", ".join(self._armed))

    def hit(self, point: Point) -> None:
        """Reached ``point``: does nothing unless a test armed it."""
        if not self._armed:
            return
        armed = self._armed.get(point)
        if armed is None:
            return
        kind, left = armed
        if left <= 0:
            return
        self._armed[point] = (kind, left - 1)
        if kind == "kill":
            log.warning("fault point %s: killing the process", point)
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault at {point}")
