"""`make bench` must not rot silently: its quick run still measures and prints ratios."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_ingest_bench_prints_a_table_with_a_ratio_to_its_baseline() -> None:
    """docs/performance.md: every figure stands beside its same-run baseline, as a ratio."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "ingest"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| figure | measured | baseline (same run) | vs baseline |" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("| ingest"))
    ratio = re.search(r"\| (\d+\.\d\d)× \|", row)
    assert ratio is not None, row
    assert 0.0 < float(ratio.group(1)) < 5.0
    assert "msg/s" in row


def test_quick_startup_bench_prints_start_to_healthy_rows_with_a_ratio() -> None:
    """The start-up section times each start against an empty-database start in the same run."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| start to healthy")]
    assert rows, out.stdout[-2000:]
    for row in rows:
        ratio = re.search(r"\| (\d+\.\d\d)× \|", row)
        assert ratio is not None, row
        assert float(ratio.group(1)) > 0.0
        assert " s (empty DB start)" in row
