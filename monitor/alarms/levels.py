"""The limits in force on a bed, as levels: what the alarm engine judges readings against.

Rules (docs/alarms.md):
1. Every (signal, direction) has its levels, least severe first: one per priority the clinic's
   limits give for the bed's phase (``ClinicConfig.limits_for``, with the session's
   overrides), each with the clinic's condition delay for that signal and priority.
2. A relative rule adds a HIGH level at ``above_pct`` over the session's baseline of its
   signal (none without a positive finite baseline): its own delay for a continuous signal,
   else the medium delay; a cuff value is judged per reading (no delay).
3. A level's limit is met beyond its threshold (``<``/``>``, or ``<=``/``>=`` when
   inclusive); a margin widens it, for the hysteresis of a clear.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.alarms.config import DIRECTIONS, PHASES, ClinicConfig
from monitor.core.model import CONTINUOUS_SIGNALS, PRIORITY_RANK, Direction, Priority


@dataclass(frozen=True)
class Level:
    """One alarm condition of one direction of one signal, at one priority."""

    priority: Priority
    threshold: float
    inclusive: bool
    delay: float
    label: str  # the human condition, e.g. "spo2 < 90"

    def beyond(self, direction: Direction, value: float, margin: float = 0.0) -> bool:
        """Whether ``value`` is beyond this limit; ``margin`` widens it (hysteresis)."""
        if direction == Direction.LOW:
            t = self.threshold + margin
            return value <= t if self.inclusive else value < t
        t = self.threshold - margin
        return value >= t if self.inclusive else value > t


def _op(direction: Direction, inclusive: bool) -> str:
    return ("<" if direction == Direction.LOW else ">") + ("=" if inclusive else "")


# Every condition in force on a bed, by (signal, direction), least severe first.
Levels = dict[tuple[str, Direction], list[Level]]


def build_levels(
    config: ClinicConfig,
    phase: str | None = None,
    baseline: Mapping[str, float] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Levels:
    """Every condition in force, by (signal, direction), least severe first."""
    limits = config.limits_for(phase if phase in PHASES else None, overrides)
    levels: Levels = {}
    for signal, sl in limits.items():
        for direction in DIRECTIONS:
            th = sl.direction(direction)
            if th is None:
                continue
            for priority, thr in th.by_priority().items():
                levels.setdefault((signal, direction), []).append(
                    Level(
                        priority=priority,
                        threshold=thr,
                        inclusive=th.inclusive,
                        delay=config.delay(signal, priority),
                        label=f"{signal} {_op(direction, th.inclusive)} {thr:g}",
                    )
                )
    for rule in config.relative:
        base = (baseline or {}).get(rule.signal)
        if base is None or not math.isfinite(base) or base <= 0:
            continue
        thr = round(base * (1 + rule.above_pct / 100.0), 1)
        if rule.signal in CONTINUOUS_SIGNALS:
            delay = (
                rule.delay_s
                if rule.delay_s is not None
                else config.delay(rule.signal, Priority.MEDIUM)
            )
        else:
            delay = 0.0  # cuff values are judged per reading
        levels.setdefault((rule.signal, Direction.HIGH), []).append(
            Level(
                priority=rule.priority,
                threshold=thr,
                inclusive=False,
                delay=delay,
                label=(f"{rule.signal} > {thr:g} (baseline {base:g} +{rule.above_pct:g}%)"),
            )
        )
    for group in levels.values():
        group.sort(key=lambda lv: PRIORITY_RANK[lv.priority])
    return levels
