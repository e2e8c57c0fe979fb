"""`make bench` must not rot silently: its quick run still measures and prints ratios."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def _quick(section: str, timeout: float) -> str:
    """What ``python -m bench --quick --only SECTION`` prints, once it has exited 0."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", section],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| figure | measured | baseline (same run) | vs baseline |" in out.stdout
    return out.stdout


def test_quick_ingest_bench_prints_a_table_with_a_ratio_to_its_baseline() -> None:
    """docs/performance.md: every figure stands beside its same-run baseline, as a ratio."""
    stdout = _quick("ingest", 60)
    row = next(line for line in stdout.splitlines() if line.startswith("| ingest"))
    ratio = re.search(r"\| (\d+\.\d\d)× \|", row)
    assert ratio is not None, row
    assert 0.0 < float(ratio.group(1)) < 5.0
    assert "msg/s" in row


def test_quick_startup_bench_prints_start_to_healthy_rows_with_a_ratio() -> None:
    """The start-up section times each start against an empty-database start in the same run."""
    stdout = _quick("startup", 90)
    rows = [line for line in stdout.splitlines() if line.startswith("| start to healthy")]
    assert rows, stdout[-2000:]
    for row in rows:
        ratio = re.search(r"\| (\d+\.\d\d)× \|", row)
        assert ratio is not None, row
        assert float(ratio.group(1)) > 0.0
        assert " s (empty DB start)" in row
