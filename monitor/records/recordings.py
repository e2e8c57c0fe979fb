"""Recorded vital signs: read a recording file and turn it into the readings a device would send.

Pure file reading, no network. Used by the replay simulator (which sends the readings) and by
``python -m monitor alarm-report`` (which judges them offline); both must see the same stream.

Formats (see the outside contract and docs/simulators.md):
- CSV with header ``t_seconds,hr,sbp,dbp,map,spo2,rr``, optionally with a ``pr`` column (pulse
  rate) anywhere after ``t_seconds``; a blank cell means "not measured". A literal ``0`` is a
  measurement (the device protocol never uses zero for "missing"); ``nan`` is treated as blank.
- The BIDMC PPG and Respiration dataset's numerics CSV exactly as released: header
  ``Time [s], HR, PULSE, RESP, SpO2`` (leading spaces), ``NaN`` = not measured. HR is the ECG
  heart rate (``hr``), PULSE the oximeter's pulse rate (``pr``), RESP the impedance respiratory
  rate (``rr``), SpO2 ``spo2``. Times may be written ``-0``.
- A WFDB numerics record (PATH without extension, read with ``wfdb``). There 0 or NaN means
  "no value", as in MIMIC. Mapping: hr = HR, pr = PULSE (kept apart: the alarm engine chooses
  which rate it judges); sbp/dbp/map = ABPSys/ABPDias/ABPMean (arterial line) where that value
  is present, else NBPSys/NBPDias/NBPMean (cuff), value by value; spo2 = SpO2; rr = RESP.
  The shipped MIMIC ``numerics.csv`` was made with hr = HR else PULSE and has no ``pr``.

Expansion (the contract's replay rule): continuous values (hr, pr, spo2, rr) are sent once a second
from their row's time, each held, never interpolated, until the next row; the last row's values
are sent once. Cuff values (sbp, dbp, map) are sent once, as a separate reading with source
``"nibp"`` at their row's time. Readings are sorted by time, continuous before cuff at equal time.
Times are seconds from the recording's first row.

Values the device protocol would reject (outside what a body can show, ``dbp >= sbp``, ``map``
outside ``dbp..sbp``) are dropped when the rows are loaded, never sent: a continuous value is
dropped alone, a cuff triple is dropped whole (the protocol rejects the frame that carries it).
Each drop is kept in ``Row.rejected`` so that "a replay stores exactly the readings the file
holds" can be checked: every reading from ``expand`` passes the protocol's validation.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from monitor.core.model import CONTINUOUS_SIGNALS, CUFF_SIGNALS, SIGNALS
from monitor.wire.device import ProtocolError, validate

CSV_HEADER: Final[tuple[str, ...]] = ("t_seconds", "hr", "sbp", "dbp", "map", "spo2", "rr")
# Columns a contract CSV may add beside CSV_HEADER's.
CSV_OPTIONAL: Final[frozenset[str]] = frozenset({"pr"})
# The BIDMC dataset's numerics header (names stripped) and what each column is in Vigil.
BIDMC_HEADER: Final[tuple[str, ...]] = ("Time [s]", "HR", "PULSE", "RESP", "SpO2")
BIDMC_COLUMNS: Final[dict[str, str]] = {"HR": "hr", "PULSE": "pr", "RESP": "rr", "SpO2": "spo2"}
CUFF_SOURCE: Final = "nibp"
# WFDB numerics channel names, in order of preference, for each of our signals.
WFDB_CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "hr": ("HR",),
    "pr": ("PULSE",),
    "sbp": ("ABPSys", "NBPSys"),
    "dbp": ("ABPDias", "NBPDias"),
    "map": ("ABPMean", "NBPMean"),
    "spo2": ("SpO2",),
    "rr": ("RESP",),
}
# Any valid RFC 3339 time does for validating values: only the values are being checked.
_PROBE_TS: Final = "2026-01-01T00:00:00.000Z"
_PROBE_NOW: Final = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Rejected:
    """Values of one row that the device protocol would refuse, so they are never sent."""

    t: float
    values: dict[str, float]
    code: str
    detail: str


@dataclass(frozen=True)
class Row:
    """One row of a recording: accepted values (only measured ones) and what was dropped."""

    t: float
    values: dict[str, float]
    rejected: tuple[Rejected, ...] = field(default=())


@dataclass(frozen=True)
class RecordedReading:
    """One reading as a device replaying the recording would send it."""

    t: float
    values: dict[str, float]
    source: str | None = None


def _protocol_rejection(values: dict[str, float]) -> ProtocolError | None:
    """The protocol's own verdict on a set of values (None when it would be accepted)."""
    try:
        validate(
            {
                "type": "reading",
                "v": 1,
                "device_id": "recording",
                "seq": 0,
                "ts": _PROBE_TS,
                "values": values,
            },
            device_id="recording",
            now=_PROBE_NOW,
        )
    except ProtocolError as exc:
        return exc
    return None


def clean_row(t: float, values: dict[str, float]) -> Row:
    """Keep only what the device protocol accepts; record every drop."""
    kept: dict[str, float] = {}
    rejected: list[Rejected] = []
    for key in (k for k in SIGNALS if k in values and k in CONTINUOUS_SIGNALS):
        err = _protocol_rejection({key: values[key]})
        if err is None:
            kept[key] = values[key]
        else:
            rejected.append(Rejected(t, {key: values[key]}, str(err.code), err.detail))
    cuff = {k: values[k] for k in SIGNALS if k in values and k in CUFF_SIGNALS}
    if cuff:
        err = _protocol_rejection(cuff)
        if err is None:
            kept.update(cuff)
        else:
            rejected.append(Rejected(t, cuff, str(err.code), err.detail))
    return Row(t=t, values=kept, rejected=tuple(rejected))


def _cell(text: str, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if math.isnan(value):
        return None
    return value


def _columns(header: list[str] | None) -> list[str] | None:
    """Our signal for each column after the time (None = a column we do not read), or None
    when the header is neither the contract's (with an optional ``pr``) nor BIDMC's."""
    if header is None:
        return None
    names = [h.strip() for h in header]
    if tuple(names) == BIDMC_HEADER:
        return [BIDMC_COLUMNS[n] for n in names[1:]]
    if not names or names[0] != CSV_HEADER[0] or len(set(names)) != len(names):
        return None
    required = [n for n in names[1:] if n not in CSV_OPTIONAL]
    if tuple(required) != CSV_HEADER[1:]:
        return None
    return list(names[1:])


def _read_csv(path: Path) -> list[tuple[float, dict[str, float]]]:
    out: list[tuple[float, dict[str, float]]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        columns = _columns(next(reader, None))
        if columns is None:
            raise ValueError(
                f"{path}: header must be {','.join(CSV_HEADER)} (optionally with a pr column) "
                f"or the BIDMC numerics header {', '.join(BIDMC_HEADER)}"
            )
        width = len(columns) + 1
        for lineno, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != width:
                raise ValueError(f"{path}:{lineno}: expected {width} columns")
            t = _cell(cells[0], f"{path}:{lineno}")
            if t is None or not math.isfinite(t):
                raise ValueError(f"{path}:{lineno}: the time is required")
            values: dict[str, float] = {}
            for name, text in zip(columns, cells[1:], strict=True):
                v = _cell(text, f"{path}:{lineno}")
                if v is not None:
                    values[name] = v
            out.append((t + 0.0, values))  # + 0.0: BIDMC writes the first time as -0
    return out


def _read_wfdb(record_path: Path) -> list[tuple[float, dict[str, float]]]:
    import wfdb  # heavy import, only when a WFDB record is read

    record = wfdb.rdrecord(str(record_path))
    fs = float(record.fs)
    if not fs > 0:
        raise ValueError(f"{record_path}: sampling frequency must be positive")
    names = list(record.sig_name or [])
    signals = record.p_signal
    if signals is None:
        raise ValueError(f"{record_path}: record has no physical signals")
    index = {name: i for i, name in enumerate(names)}
    out: list[tuple[float, dict[str, float]]] = []
    for k in range(signals.shape[0]):
        sample = signals[k]
        values: dict[str, float] = {}
        for key, channels in WFDB_CHANNELS.items():
            for channel in channels:
                i = index.get(channel)
                if i is None:
                    continue
                v = float(sample[i])
                if math.isfinite(v) and v != 0.0:
                    values[key] = round(v, 6)
                    break
        # 1/fs is not exact in the header (0.0166666666667 Hz): round to the millisecond.
        out.append((round(k / fs, 3), values))
    return out


def load_rows(path: str | Path) -> list[Row]:
    """Rows of a CSV file or WFDB record (PATH without extension), times from the first row."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() not in (".hea", ".dat"):
        raw = _read_csv(p)
    elif Path(str(p) + ".hea").is_file():
        raw = _read_wfdb(p)
    elif p.suffix.lower() == ".hea" and p.is_file():
        raw = _read_wfdb(p.with_suffix(""))
    else:
        raise FileNotFoundError(f"no CSV file or WFDB record at {p}")
    if not raw:
        return []
    t0 = raw[0][0]
    rows: list[Row] = []
    for i, (t, values) in enumerate(raw):
        if i and t <= raw[i - 1][0]:
            raise ValueError(
                f"{p}: row {i + 1}: times must strictly increase ({t} after {raw[i - 1][0]})"
            )
        rows.append(clean_row(round(t - t0, 6), values))
    return rows


def expand(rows: Sequence[Row]) -> list[RecordedReading]:
    """Readings a replaying device sends: held 1 Hz continuous values plus cuff readings."""
    out: list[RecordedReading] = []
    for i, row in enumerate(rows):
        continuous = {k: v for k, v in row.values.items() if k in CONTINUOUS_SIGNALS}
        cuff = {k: v for k, v in row.values.items() if k in CUFF_SIGNALS}
        if continuous:
            if i + 1 < len(rows):
                nxt = rows[i + 1].t
                step = 0
                while row.t + step < nxt:
                    out.append(RecordedReading(round(row.t + step, 6), dict(continuous)))
                    step += 1
            else:
                out.append(RecordedReading(row.t, dict(continuous)))
        if cuff:
            out.append(RecordedReading(row.t, cuff, CUFF_SOURCE))
    # Rows are strictly increasing and each row's readings lie in [row.t, next row.t), so the
    # list is already in time order with continuous before cuff at equal time; the sort only
    # guards the invariant for callers that build rows themselves.
    out.sort(key=lambda r: (r.t, r.source is not None))
    return out


def load_recording(path: str | Path) -> list[RecordedReading]:
    """Convenience: ``expand(load_rows(path))``."""
    return expand(load_rows(path))


def dropped(rows: Iterable[Row]) -> list[Rejected]:
    """Every set of values dropped because the device protocol would reject it."""
    return [r for row in rows for r in row.rejected]


def duration(rows: Sequence[Row]) -> float:
    """Seconds from the first row to the last (the replay's default look-back)."""
    return rows[-1].t - rows[0].t if rows else 0.0
