"""The numbers the browser's renderer needs, from one place, handed to the page once as JSON.

The tile painter (assets/vigil-3*.js) and the sound (assets/vigil-4-sound.js) copy no
threshold, code or word of their own: words come from dashboard/words.py, codes from the
monitor's enums, stale ages come from the clinic config (the same file the monitor
reads, VIGIL_CLINIC_CONFIG), priority ranks from monitor.core.model, the trend's trace order from
dashboard.figures. The page reads them from ``#vigil-config[data-constants]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from dashboard import figures, words
from monitor.alarms.config import DIRECTIONS, ClinicConfig
from monitor.alarms.lifecycle import State
from monitor.clinical.protocols import Route
from monitor.core.model import PRIORITY_RANK, Phase, Priority

CONTINUOUS: Final[tuple[str, ...]] = ("hr", "pr", "spo2", "rr")
CUFF: Final[tuple[str, ...]] = ("sbp", "dbp", "map")
# A tile's mini-trend spans this long (a slow SpO2 slide or a BP climb shows within it).
TREND_WINDOW_S: Final = 15 * 60
# How often an unacknowledged alarm's tone repeats, seconds: IEC 60601-1-8 leaves the burst
# interval to the maker (high 2.5-15 s, medium 2.5-30 s); an escalated alarm repeats sooner.
TONE_INTERVAL_S: Final[Mapping[str, Mapping[str, float]]] = {
    Priority.HIGH.value: {"normal": 5.0, "escalated": 3.0},
    Priority.MEDIUM.value: {"normal": 10.0, "escalated": 5.0},
}
# A feed silent for longer than this is lost (the monitor pings every 2 s).
FEED_SILENCE_S: Final = 5.0


def limit_thresholds(config: ClinicConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Per signal and direction, the clinic's thresholds by priority: a mini-trend draws the
    one crossed first (its least urgent priority, after the session's own overrides) faintly."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for signal, limits in config.limits.items():
        for direction in DIRECTIONS:
            th = limits.direction(direction)
            values = th.by_priority() if th is not None else {}
            if values:
                # Plain-string keys: this goes to the browser as JSON.
                out.setdefault(signal, {})[direction.value] = {
                    p.value: v for p, v in values.items()
                }
    return out


def course_nouns(config: ClinicConfig) -> dict[str, str]:
    """What a tile counts a protocol's sessions in: an intranasal (esketamine) course is
    "Session 3 of 8", an infusion course "Infusion 3 of 6" (docs/course.md)."""
    return {
        pid: words.COURSE_NOUN_INTRANASAL
        if p.dosing is not None and p.dosing.route is Route.INTRANASAL
        else words.COURSE_NOUN_INFUSION
        for pid, p in config.protocols.items()
    }


def codes() -> dict[str, dict[str, str]]:
    """The monitor's codes by their enum names (``codes.phase.ENDED``): the browser compares
    a session's phase or an alarm's priority with these, never with a word of its own."""
    return {
        "phase": {m.name: m.value for m in Phase},
        "priority": {m.name: m.value for m in Priority},
        "alarm_state": {m.name: m.value for m in State},
        "direction": {d.name: d.value for d in DIRECTIONS},
    }


def page_constants(config: ClinicConfig) -> dict[str, Any]:
    stale_cuff = config.technical.stale_cuff.after_s
    return {
        # A continuous value older than the gap that restarts an alarm delay is not current;
        # a cuff value stays current as long as the monitor's stale-cuff rule allows.
        "stale_s": {
            **{s: config.continuous_max_gap_s for s in CONTINUOUS},
            **{s: stale_cuff for s in CUFF},
        },
        "rank": {p.value: rank for p, rank in PRIORITY_RANK.items()},
        "tone_interval_s": {k: dict(v) for k, v in TONE_INTERVAL_S.items()},
        "trace": dict(figures.TRACE_INDEX),
        "max_points": figures.MAX_POINTS,
        "trend_window_s": TREND_WINDOW_S,
        "limits": limit_thresholds(config),
        "audio_pause_s": config.audio_pause_s,
        "feed_silence_s": FEED_SILENCE_S,
        "course_noun": course_nouns(config),
        "codes": codes(),
        # Every phase, priority, check and record word a tile or the alarm list shows
        # (dashboard/words.py): the scripts keep no copy.
        "words": words.browser_words(),
    }


def constants_json(config: ClinicConfig) -> str:
    return orjson.dumps(page_constants(config)).decode()
