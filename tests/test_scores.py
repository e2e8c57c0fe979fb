"""PHQ-9 and GAD-7 scoring and the responder rule, as tables (docs/course.md "Scores")."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.clinical.scores import (
    Responder,
    Scale,
    ScoreError,
    responds,
    session_scores,
    total,
    with_totals,
)


@pytest.mark.parametrize(
    ("scale", "items", "expected"),
    [
        (Scale.PHQ9, [0] * 9, 0),
        (Scale.PHQ9, [3] * 9, 27),
        (Scale.PHQ9, [1, 2, 3, 0, 1, 2, 3, 0, 1], 13),
        (Scale.GAD7, [0] * 7, 0),
        (Scale.GAD7, [3] * 7, 21),
        (Scale.GAD7, [2, 2, 1, 0, 3, 1, 0], 9),
    ],
)
def test_a_questionnaire_totals_its_items(scale: Scale, items: list[int], expected: int) -> None:
    """The total is the sum of the item answers: PHQ-9 0-27, GAD-7 0-21."""
    assert total(scale, items) == expected


@pytest.mark.parametrize(
    ("scale", "items"),
    [
        (Scale.PHQ9, [0] * 8),
        (Scale.PHQ9, [0] * 10),
        (Scale.PHQ9, [0] * 8 + [4]),
        (Scale.PHQ9, [0] * 8 + [-1]),
        (Scale.PHQ9, [0] * 8 + [True]),
        (Scale.PHQ9, [0] * 8 + [1.0]),
        (Scale.PHQ9, "000000000"),
        (Scale.GAD7, [0] * 9),
        (Scale.GAD7, [0] * 6 + ["1"]),
    ],
)
def test_a_wrong_count_or_an_item_outside_0_to_3_is_refused(scale: Scale, items: Any) -> None:
    """Rule 1: exactly 9 (PHQ-9) or 7 (GAD-7) integers 0-3, nothing else."""
    with pytest.raises(ScoreError):
        total(scale, items)


def test_the_monitor_adds_totals_beside_the_items_it_was_given() -> None:
    """Totals are computed, stored as <scale>_total; other kinds pass through."""
    data = {"phq9": [1] * 9, "gad7": [2] * 7, "note": "calm"}
    assert with_totals(data) == {**data, "phq9_total": 9, "gad7_total": 14}
    assert with_totals({"moaas": 5}) == {"moaas": 5}
    assert with_totals(None) is None


def test_a_sessions_score_is_the_last_of_each_scale() -> None:
    """Rule 3: a repeated questionnaire replaces the earlier one; unrecorded scales absent."""
    obs = [{"phq9": [3] * 9}, None, {"moaas": 4}, {"phq9": [1] * 9}, {"gad7": [0] * 7}]
    assert session_scores(obs) == {"phq9": 9, "gad7": 0}
    assert session_scores([{"moaas": 5}]) == {}


@pytest.mark.parametrize(
    ("first", "current", "expected"),
    [
        (20, 10, True),  # exactly 50 % down
        (20, 11, False),  # 45 % down, not under 10
        (12, 9, True),  # under 10 however small the drop
        (9, 9, True),  # the first itself counts only by being under 10
        (15, 15, False),
        (0, 0, True),
        (None, 12, False),  # nothing to compare and not under 10
        (20, None, None),  # no PHQ-9 this session
    ],
)
def test_the_responder_rule_is_a_50_percent_drop_or_a_total_under_10(
    first: int | None, current: int | None, expected: bool | None
) -> None:
    """Rule 2 with the shipped defaults (docs/course.md)."""
    assert responds(Responder(), first, current) is expected


def test_the_responder_rule_follows_the_clinic_config() -> None:
    """A clinic asking for a 40 % drop or a total under 5 gets exactly that."""
    rule = Responder(phq9_drop_pct=40, phq9_below=5)
    assert responds(rule, 20, 12) is True
    assert responds(rule, 20, 13) is False
    assert responds(rule, 6, 4) is True
