"""The HTML kit both printable pages share: escaping, UTC times, tables, the stylesheet.

A leaf of monitor.records.report: html_report, html_charts, html_protocol and rems_html
import from it, it imports none of them, so the report modules' imports point one way
(tests/test_import_layers.py).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

# The signals in words, for the report's tables and its charts' tooltips.
SIGNAL_NAMES: Final[Mapping[str, str]] = {
    "hr": "Heart rate",
    "pr": "Pulse rate",
    "spo2": "SpO2",
    "rr": "Respiratory rate",
    "sbp": "Systolic BP",
    "dbp": "Diastolic BP",
    "map": "Mean BP",
}
DISCLAIMER: Final = (
    "Vigil is not a certified medical device. This report is a record of what the monitor "
    "received and did; it does not replace clinical judgement or the clinic's own records."
)
CSS: Final = """
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;margin:24px;max-width:1000px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:20px 0 6px;border-bottom:1px solid #999}
h3{font-size:13px;margin:12px 0 4px}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta td{border:none;padding:1px 12px 1px 0}.muted{color:#555}
.disclaimer{border:2px solid #b3261e;padding:6px 10px;margin:12px 0;font-weight:600}
.record-problem{border:2px dashed #b3261e;padding:6px 10px;margin:12px 0}
.chart{margin:6px 0 10px}.chart h3{font-size:13px;margin:0}
svg{width:100%;height:auto;display:block}
.prio-high{color:#b3261e;font-weight:700}.prio-medium{color:#9a5b00;font-weight:600}
@page{size:A4;margin:12mm}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr,.chart{break-inside:avoid}}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def utc(ts: float | None, *, date: bool = False) -> str:
    if ts is None:
        return "–"
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if date else "%H:%M:%S")


def when(ts: float | None, origin: float | None) -> str:
    """Clock time plus the offset from the session's opening (T+mm:ss)."""
    if ts is None:
        return "–"
    text = utc(ts)
    if origin is not None:
        delta = ts - origin
        sign = "-" if delta < 0 else "+"
        delta = abs(round(delta))
        text += f' <span class="muted">T{sign}{delta // 60}:{delta % 60:02d}</span>'
    return text


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: set[int] | None = None
) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
