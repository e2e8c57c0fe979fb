"""The session's readings as CSV: one row per stored reading, device time in RFC 3339 UTC."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, Final

from monitor.core.model import Reading, to_rfc3339
from monitor.records.report.common import normalise_readings

# pr (pulse rate) came later: it is the last column, so the earlier columns keep their places.
CSV_COLUMNS: Final = (
    "ts",
    "device_id",
    "seq",
    "source",
    "hr",
    "spo2",
    "rr",
    "sbp",
    "dbp",
    "map",
    "pr",
)


def _cell(value: float) -> str:
    """Integral values without a decimal point; others in full (repr) precision."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def report_csv(session: Mapping[str, Any], readings: Iterable[Mapping[str, Any] | Reading]) -> str:
    """Every reading, oldest first; a signal not measured is an empty cell, never 0.

    ``session`` is accepted for symmetry with the other reports (and future columns);
    the rows come from ``readings`` alone.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in normalise_readings(readings):
        row = [to_rfc3339(r.ts), r.device_id, str(r.seq), r.source or ""]
        row += [_cell(r.values[k]) if k in r.values else "" for k in CSV_COLUMNS[4:]]
        writer.writerow(row)
    return out.getvalue()
