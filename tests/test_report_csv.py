"""The CSV session report (GET /api/sessions/{id}/report.csv): every reading, one row each."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records.report import CSV_COLUMNS, report_csv
from tests.factories import T0, make_reading, make_session_json
from tests.strategies import signal_values


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def as_dict(reading: object) -> dict[str, object]:
    d = asdict(reading)  # type: ignore[call-overload]
    return {k: d[k] for k in ("device_id", "seq", "ts", "values", "source")}


def test_header_names_the_columns_in_contract_order() -> None:
    """Columns: ts RFC 3339, device_id, seq, source, hr, spo2, rr, sbp, dbp, map, then pr
    (pulse rate, added last so the others keep their places)."""
    text = report_csv(make_session_json(), [])
    assert text.splitlines() == [",".join(CSV_COLUMNS)]
    assert CSV_COLUMNS == (
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


def test_every_reading_is_a_row_oldest_first_with_blank_for_not_measured() -> None:
    """Contract: report.csv holds every reading; a missing signal is blank, never 0."""
    readings = [
        make_reading({"sbp": 128.0, "dbp": 82.0, "map": 97.0}, ts=T0 + 30, seq=2),
        make_reading({"hr": 78.0, "spo2": 97.5}, ts=T0 + 0.25, seq=1),
    ]
    rows = rows_of(report_csv(make_session_json(), readings))
    assert rows == [
        {"ts": "2026-09-21T14:13:20.250Z", "device_id": "dev-1", "seq": "1", "source": "",
         "hr": "78", "spo2": "97.5", "rr": "", "sbp": "", "dbp": "", "map": "", "pr": ""},
        {"ts": "2026-09-21T14:13:50.000Z", "device_id": "dev-1", "seq": "2", "source": "nibp",
         "hr": "", "spo2": "", "rr": "", "sbp": "128", "dbp": "82", "map": "97", "pr": ""},
    ]  # fmt: skip


def test_dict_readings_and_model_readings_give_the_same_csv() -> None:
    """The API may hand either shape; the report is the same."""
    readings = [make_reading(ts=T0 + i, seq=i + 1) for i in range(3)]
    session = make_session_json()
    assert report_csv(session, readings) == report_csv(session, [as_dict(r) for r in readings])


def test_readings_from_two_devices_are_interleaved_by_time() -> None:
    """A bed with a monitor and a cuff: one time-ordered table."""
    readings = [
        make_reading({"hr": 70.0}, ts=T0 + 2, seq=5, device_id="mon"),
        make_reading({"sbp": 120.0}, ts=T0 + 1, seq=9, device_id="cuff"),
        make_reading({"hr": 71.0}, ts=T0 + 3, seq=6, device_id="mon"),
    ]
    rows = rows_of(report_csv(make_session_json(), readings))
    assert [(r["device_id"], r["seq"]) for r in rows] == [("cuff", "9"), ("mon", "5"), ("mon", "6")]


@settings(max_examples=60, deadline=None)
@given(st.lists(signal_values, min_size=1, max_size=5))
def test_values_survive_the_csv_exactly(value_sets: list[dict[str, float]]) -> None:
    """No value is rounded away: parsing the CSV gives back every stored value."""
    readings = [make_reading(v, ts=T0 + i, seq=i) for i, v in enumerate(value_sets)]
    rows = rows_of(report_csv(make_session_json(), readings))
    assert len(rows) == len(readings)
    for row, values in zip(rows, value_sets, strict=True):
        parsed = {k: float(row[k]) for k in CSV_COLUMNS[4:] if row[k] != ""}
        assert parsed == values
