"""Questionnaire scores across the course: PHQ-9 and GAD-7 (pure; docs/course.md "Scores").

Rule 1: a questionnaire is its item answers; the total is the monitor's sum of them, never a
        client's figure. PHQ-9 has 9 items and GAD-7 has 7, each scored 0-3 (totals 0-27 and
        0-21). A wrong count or an item outside 0-3 is refused (``ScoreError``).
Rule 2: the responder rule is clinic data (``course.responder`` in the clinic config): a PHQ-9
        that fell by at least ``phq9_drop_pct`` % from the course's first PHQ-9, or a total
        under ``phq9_below`` (the only way the first PHQ-9 itself can count).
Rule 3: a session's score is the last questionnaire of that scale recorded in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field


class Scale(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"


@dataclass(frozen=True)
class ScaleSpec:
    items: int
    item_max: int
    loinc_total: str  # the LOINC code of the total score (FHIR Observation.code)
    display: str


SCALES: Final[dict[Scale, ScaleSpec]] = {
    Scale.PHQ9: ScaleSpec(9, 3, "44249-1", "PHQ-9 quick depression assessment panel"),
    Scale.GAD7: ScaleSpec(7, 3, "69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
}


class ScoreError(ValueError):
    """A questionnaire that cannot be scored (rule 1)."""


class Responder(BaseModel):
    """The PHQ-9 responder rule (rule 2); defaults for a clinic to review, docs/course.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phq9_drop_pct: float = Field(default=50, gt=0, le=100)
    phq9_below: int = Field(default=10, ge=0, le=27)


class CourseRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    responder: Responder = Responder()


def total(scale: Scale, items: Sequence[Any]) -> int:
    """The total of one questionnaire's item answers (rule 1)."""
    spec = SCALES[scale]
    if isinstance(items, (str, bytes)) or len(items) != spec.items:
        raise ScoreError(f"{scale.value} takes {spec.items} item scores")
    for i, v in enumerate(items, start=1):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= spec.item_max:
            raise ScoreError(f"{scale.value} item {i} must be an integer 0-{spec.item_max}")
    return sum(items)


def with_totals(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An observation's data with ``<scale>_total`` added for each questionnaire it holds."""
    if data is None:
        return None
    out = dict(data)
    for scale in Scale:
        if scale.value in out:
            out[f"{scale.value}_total"] = total(scale, out[scale.value])
    return out


def session_scores(observations: Iterable[Mapping[str, Any] | None]) -> dict[str, int]:
    """``{"phq9": total, "gad7": total}`` for the scales recorded, the last of each (rule 3);
    ``observations`` are the data of the session's observation events in order."""
    out: dict[str, int] = {}
    for data in observations:
        for scale in Scale:
            items = (data or {}).get(scale.value)
            if items is not None:
                out[scale.value] = total(scale, items)
    return out


def responds(rule: Responder, first: int | None, current: int | None) -> bool | None:
    """Rule 2 for one session's PHQ-9 against the course's first; None when not recorded."""
    if current is None:
        return None
    if current < rule.phq9_below:
        return True
    if first is None or first == 0:
        return False
    return (first - current) * 100.0 >= rule.phq9_drop_pct * first
