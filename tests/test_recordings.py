"""The recording loader shared by the replay simulator and alarm-report (contract: Tools)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.core.model import to_rfc3339
from monitor.records.recordings import (
    CUFF_SOURCE,
    RecordedReading,
    Row,
    dropped,
    duration,
    expand,
    load_recording,
    load_rows,
)
from monitor.wire.device import validate

DATA = Path(__file__).parent / "data" / "mimic-s00001"
MIMIC_CSV = DATA / "numerics.csv"
MIMIC_WFDB = DATA / "s00001-2896-10-10-00-31n"
HEADER = "t_seconds,hr,sbp,dbp,map,spo2,rr\n"


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rec.csv"
    path.write_text(HEADER + body)
    return path


def _accepted_by_protocol(r: RecordedReading) -> bool:
    validate(
        {
            "type": "reading",
            "v": 1,
            "device_id": "d",
            "seq": 1,
            "ts": to_rfc3339(1_790_000_000.0 + r.t),
            "values": r.values,
            **({"source": r.source} if r.source else {}),
        },
        device_id="d",
        now=1_800_000_000.0,
    )
    return True


def _folded(row: Row) -> Row:
    """A WFDB row as numerics.csv was made: the pulse fills HR where HR has no value."""
    values = {k: v for k, v in row.values.items() if k != "pr"}
    if "hr" not in values and "pr" in row.values:
        values["hr"] = row.values["pr"]
    return Row(row.t, dict(sorted(values.items())), row.rejected)


def test_wfdb_record_reads_exactly_as_the_shipped_csv() -> None:
    """The WFDB mapping (HR, PULSE as pr, arterial else cuff, 0 = missing) equals numerics.csv
    once the pulse fills the HR gaps, as numerics.csv was made (docs/simulators.md)."""
    from_csv = load_rows(MIMIC_CSV)
    from_wfdb = load_rows(MIMIC_WFDB)
    assert len(from_csv) == 1936
    assert [Row(r.t, dict(sorted(r.values.items())), r.rejected) for r in from_csv] == [
        _folded(r) for r in from_wfdb
    ]
    assert sum("pr" in r.values for r in from_wfdb) == 1573  # the pulse kept as its own signal


def test_wfdb_record_path_may_name_the_header_file() -> None:
    """A PATH ending in .hea reads the same record as the PATH without extension."""
    assert load_rows(str(MIMIC_WFDB) + ".hea") == load_rows(MIMIC_WFDB)


def test_mimic_expands_to_one_hz_numerics_and_its_cuff_readings() -> None:
    """32 h of minute rows become 1 Hz held numerics plus one reading per cuff triple."""
    rows = load_rows(MIMIC_CSV)
    readings = expand(rows)
    cuff = [r for r in readings if r.source == CUFF_SOURCE]
    assert duration(rows) == 116100.0
    assert len(cuff) == 160
    assert len(readings) == 113920
    assert dropped(rows) == []
    assert all(r.t >= 0 for r in readings)


def test_continuous_values_are_held_once_a_second_until_the_next_row(tmp_path: Path) -> None:
    """Held, not interpolated; the last row is sent once."""
    rows = load_rows(_csv(tmp_path, "0,60,,,,97,\n3,90,,,,,12\n5,70,,,,,\n"))
    readings = expand(rows)
    assert [(r.t, r.values) for r in readings] == [
        (0.0, {"hr": 60.0, "spo2": 97.0}),
        (1.0, {"hr": 60.0, "spo2": 97.0}),
        (2.0, {"hr": 60.0, "spo2": 97.0}),
        (3.0, {"hr": 90.0, "rr": 12.0}),
        (4.0, {"hr": 90.0, "rr": 12.0}),
        (5.0, {"hr": 70.0}),
    ]


def test_cuff_values_are_one_nibp_reading_at_their_row_time_after_the_numerics(
    tmp_path: Path,
) -> None:
    """Cuff triple sent once, source nibp, sorted after the continuous reading at equal t."""
    readings = load_recording(_csv(tmp_path, "0,60,120,80,93,,\n2,61,,,,,\n"))
    assert readings == [
        RecordedReading(0.0, {"hr": 60.0}),
        RecordedReading(0.0, {"sbp": 120.0, "dbp": 80.0, "map": 93.0}, "nibp"),
        RecordedReading(1.0, {"hr": 60.0}),
        RecordedReading(2.0, {"hr": 61.0}),
    ]


def test_times_count_from_the_first_row(tmp_path: Path) -> None:
    """Device time of the first row is the replay's start: t is relative to it."""
    rows = load_rows(_csv(tmp_path, "100,60,,,,,\n160,61,,,,,\n"))
    assert [r.t for r in rows] == [0.0, 60.0]


def test_blank_and_nan_are_missing_but_zero_is_a_measurement(tmp_path: Path) -> None:
    """Contract: blank = not measured; a missing key is never zero."""
    rows = load_rows(_csv(tmp_path, "0,,,,,nan,0\n"))
    assert rows == [Row(0.0, {"rr": 0.0})]


def test_values_the_protocol_rejects_are_dropped_and_counted(tmp_path: Path) -> None:
    """Out-of-range value dropped alone; an inconsistent cuff triple dropped whole."""
    rows = load_rows(
        _csv(
            tmp_path,
            "0,400,120,130,125,97,14\n"  # hr out of range, dbp >= sbp
            "1,70,120,80,130,98,-1\n"  # map above sbp, rr negative
            "2,70,120,80,90,98,14\n",
        )
    )
    assert rows[0].values == {"spo2": 97.0, "rr": 14.0}
    assert rows[1].values == {"hr": 70.0, "spo2": 98.0}
    assert rows[2].values == {
        "hr": 70.0,
        "sbp": 120.0,
        "dbp": 80.0,
        "map": 90.0,
        "spo2": 98.0,
        "rr": 14.0,
    }
    drops = dropped(rows)
    assert [(d.t, d.code) for d in drops] == [
        (0.0, "invalid_value"),
        (0.0, "inconsistent_cuff"),
        (1.0, "invalid_value"),
        (1.0, "inconsistent_cuff"),
    ]
    assert drops[1].values == {"sbp": 120.0, "dbp": 130.0, "map": 125.0}
    assert all(_accepted_by_protocol(r) for r in expand(rows))


def test_every_mimic_reading_passes_the_device_protocol() -> None:
    """A replay stores exactly the readings the file holds: none would be rejected."""
    readings = load_recording(MIMIC_CSV)
    sample = readings[::97] + [r for r in readings if r.source]
    assert all(_accepted_by_protocol(r) for r in sample)


def test_readings_at_row_times_give_back_every_row() -> None:
    """Nothing is invented or lost: the readings at each row's time hold exactly its values."""
    rows = load_rows(MIMIC_CSV)
    by_t: dict[float, dict[str, float]] = {}
    row_times = {row.t for row in rows}
    for r in expand(rows):
        if r.t in row_times:
            by_t.setdefault(r.t, {}).update(r.values)
    assert by_t == {row.t: row.values for row in rows if row.values}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("0,60,,,,,\n0,61,,,,,\n", "strictly increase"),
        ("0,sixty,,,,,\n", "not a number"),
        ("0,60,,,\n", "columns"),
        (",60,,,,,\n", "the time is required"),
    ],
)
def test_malformed_csv_is_refused_with_its_line(tmp_path: Path, body: str, message: str) -> None:
    """A recording that cannot be replayed faithfully is an error, not a guess."""
    with pytest.raises(ValueError, match=message):
        load_rows(_csv(tmp_path, body))


BIDMC = Path(__file__).parent / "data" / "bidmc"


def test_bidmc_numerics_are_read_as_released() -> None:
    """BIDMC header with leading spaces, -0 as the first time, NaN = not measured; HR, PULSE,
    RESP, SpO2 become hr, pr, rr, spo2 (docs/simulators.md)."""
    rows = load_rows(BIDMC / "bidmc_05_Numerics.csv")
    assert len(rows) == 481
    assert rows[0] == Row(0.0, {"hr": 98.0, "pr": 98.0, "rr": 10.0, "spo2": 99.0})
    assert str(rows[0].t) == "0.0"  # not -0.0
    # Rows 139-144 have NaN in PULSE and SpO2: those values are absent, the rest kept.
    assert rows[139].values == {"hr": 97.0, "rr": 10.0}
    assert rows[145].values == {"hr": 97.0, "pr": 98.0, "rr": 10.0, "spo2": 97.0}
    readings = expand(rows)
    assert len(readings) == 481 and all(_accepted_by_protocol(r) for r in readings)
    # Row 207-210 of bidmc_27: the ECG HR is NaN while the pulse goes on.
    rows27 = load_rows(BIDMC / "bidmc_27_Numerics.csv")
    assert [("hr" in r.values, "pr" in r.values) for r in rows27[206:212]] == [
        (True, True),
        (False, True),
        (False, True),
        (False, True),
        (False, True),
        (True, True),
    ]


def test_every_shipped_bidmc_record_reads_as_eight_minutes_at_1_hz() -> None:
    """The seven shipped records: 481 rows a second apart, every value accepted."""
    files = sorted(BIDMC.glob("*.csv"))
    assert len(files) == 7
    for path in files:
        rows = load_rows(path)
        assert [r.t for r in rows] == [float(i) for i in range(481)], path
        assert dropped(rows) == [], path


def test_contract_csv_may_carry_a_pr_column(tmp_path: Path) -> None:
    """An optional pr column anywhere after t_seconds (docs/simulators.md)."""
    path = tmp_path / "pr.csv"
    path.write_text("t_seconds,hr,pr,sbp,dbp,map,spo2,rr\n0,80,62,,,,97,\n1,,63,,,,,14\n")
    assert [r.values for r in load_rows(path)] == [
        {"hr": 80.0, "pr": 62.0, "spo2": 97.0},
        {"pr": 63.0, "rr": 14.0},
    ]
    path.write_text("t_seconds,hr,sbp,dbp,map,spo2,rr,pr\n0,80,,,,97,,61\n")
    assert load_rows(path)[0].values == {"hr": 80.0, "spo2": 97.0, "pr": 61.0}


def test_wrong_header_and_missing_file_are_refused(tmp_path: Path) -> None:
    """Only the contract's header is a recording; a missing PATH says so."""
    bad = tmp_path / "bad.csv"
    bad.write_text("t,hr\n0,60\n")
    with pytest.raises(ValueError, match="header"):
        load_rows(bad)
    for header in ("t_seconds,hr,pr,pr,sbp,dbp,map,spo2,rr", "Time [s], HR, PULSE, SpO2"):
        bad.write_text(header + "\n")
        with pytest.raises(ValueError, match="header"):
            load_rows(bad)
    with pytest.raises(FileNotFoundError):
        load_rows(tmp_path / "nothing-here")
