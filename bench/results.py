"""Benchmark results: one row per figure, each beside the baseline measured in the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float
    baseline_label: str
    # "ratio": value / baseline is the figure of merit; "delta": (value - baseline) / baseline.
    compare: str = "ratio"
    goal: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        if not self.baseline or math.isnan(self.baseline) or math.isnan(self.value):
            return math.nan
        if self.compare == "delta":
            return (self.value - self.baseline) / self.baseline
        return self.value / self.baseline

    def ratio_text(self) -> str:
        r = self.ratio
        if math.isnan(r):
            return "n/a"
        return f"{r:+.1%}" if self.compare == "delta" else f"{r:.2f}×"


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines for the doc
    raw: dict[str, Any] = field(default_factory=dict)


def fmt(v: float, unit: str) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if unit in ("msg/s", "beds", "B", "KiB", "MiB"):
        return f"{v:,.0f} {unit}"
    if abs(v) >= 100:
        return f"{v:,.0f} {unit}"
    return f"{v:.2f} {unit}" if abs(v) < 10 else f"{v:.1f} {unit}"


def table(sections: list[Section]) -> str:
    head = "| figure | measured | baseline (same run) | vs baseline | goal | met |"
    lines = [head, "|---|---|---|---|---|---|"]
    for s in sections:
        for r in s.rows:
            met = {True: "yes", False: "**no**", None: ""}[r.ok]
            lines.append(
                f"| {r.name} | {fmt(r.value, r.unit)} | {fmt(r.baseline, r.unit)} "
                f"({r.baseline_label}) | {r.ratio_text()} | {r.goal} | {met} |"
            )
    return "\n".join(lines)
