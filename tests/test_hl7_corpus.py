"""The vendor PCD-01 corpus (tests/data/hl7/README.md) over MLLP into the real monitor, on
SQLite and PostgreSQL: every message gets the ACK the OBX-11 table of docs/integration.md
says, and what is stored is exactly what the message held.

`pr` (pulse rate) has no store column until the pulse-rate work lands: stored `pr` is
checked with ``stored.get("pr", expected)``, which holds now and pins the value once the
column exists; the parse-level test checks `pr` exactly today.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7
import pytest

from monitor.core.model import parse_rfc3339
from monitor.wire.pcd01 import Hl7Error, parse_pcd01
from tests.conftest import (
    InProcessMonitor,
    MonitorProcess,
    free_port,
    fresh_database,
    seed_admin,
    start_in_process,
)

DATA = Path(__file__).parent / "data" / "hl7"
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
NIBP = "nibp"


@dataclass(frozen=True)
class Stored:
    ts: str  # RFC 3339, as the API gives it
    values: dict[str, float]
    source: str | None = None


@dataclass(frozen=True)
class Case:
    file: str
    device: str
    ack: str = "AA"
    error: str | None = None  # ERR-3.4 of the first ERR segment
    stored: tuple[Stored, ...] = ()
    warnings: int = 0  # ERR segments of severity W on an AA
    extra: dict[str, Any] = field(default_factory=dict)


CORPUS: tuple[Case, ...] = (
    Case(
        "pcd01_episodic_nibp.hl7",
        "080019FFFE3ED02D172.16.172.135",
        stored=(
            Stored("2011-06-02T04:58:42.000Z", {"sbp": 111, "dbp": 60, "map": 80, "pr": 63}, NIBP),
        ),
    ),
    Case(
        "pcd01_cuff_mdc_units.hl7",
        "chair-3-mon",
        stored=(Stored("2026-11-23T14:00:00.000Z", {"sbp": 128, "dbp": 82, "map": 97}, NIBP),),
    ),
    Case(
        "pcd01_continuous_hr_spo2_rr.hl7",
        "chair-4-mon",
        stored=(
            Stored("2026-11-23T15:00:08.000Z", {"hr": 78, "pr": 80, "spo2": 97, "rr": 14}),
            Stored("2026-11-23T15:00:09.000Z", {"hr": 81, "spo2": 96}),
        ),
    ),
    Case(
        "pcd01_obr_time_only.hl7",
        "chair-5-mon",
        stored=(Stored("2026-11-23T15:00:30.000Z", {"spo2": 95, "pr": 66}),),
    ),
    Case(
        "vendor_ge_b40_periodic.hl7",
        "080019FFFE0B4020",
        stored=(Stored("2013-01-22T13:41:00.000Z", {"hr": 80, "pr": 80}),),
    ),
    Case(
        "vendor_philips_efficia_numerics.hl7",
        "MONITORABC",
        stored=(
            Stored("2014-05-10T12:44:30.000Z", {"sbp": 122, "dbp": 85}, NIBP),
            Stored("2014-05-10T12:45:00.000Z", {"spo2": 98, "map": 98, "pr": 80, "rr": 20}, NIBP),
        ),
    ),
    Case(
        "vendor_mindray_vs_r_status.hl7",
        "MINDRAY_VS_SERIES",
        stored=(Stored("2026-07-27T12:44:24.000Z", {"spo2": 77, "pr": 50}),),
    ),
    Case(
        "vendor_mindray_egateway.hl7",
        "000F14049B507238",
        stored=(Stored("2026-09-12T06:30:00.000Z", {"spo2": 98, "pr": 65}),),
    ),
    Case(
        "vendor_comen_two_spo2_channels.hl7",
        "NC_Monitor",
        stored=(Stored("2025-06-09T17:51:27.000Z", {"spo2": 97, "pr": 59}),),
        warnings=1,
    ),
    Case(
        "variant_statuses_stored.hl7",
        "chair-12-mon",
        stored=tuple(Stored(f"2026-11-23T16:00:0{i}.000Z", {"spo2": 97 - i}) for i in range(1, 6)),
    ),
    Case(
        "variant_hr_pr_and_cuff_pulse.hl7",
        "chair-13-mon",
        stored=(
            Stored(
                "2026-11-23T16:00:00.000Z",
                {"hr": 72, "pr": 70, "spo2": 97, "sbp": 118, "dbp": 76},
                NIBP,
            ),
        ),
        warnings=1,
    ),
    Case(
        "variant_kpa_ucum_units.hl7",
        "chair-14-mon",
        stored=(
            Stored(
                "2026-11-23T16:00:00.000Z",
                {"sbp": 16 * 760 / 101.325, "dbp": 10.5 * 760 / 101.325},
                NIBP,
            ),
        ),
    ),
    Case(
        "variant_time_and_device_in_msh.hl7",
        "chair-15-gw",
        stored=(Stored("2026-11-23T15:01:00.000Z", {"spo2": 99, "pr": 64, "rr": 16}),),
    ),
    Case("variant_value_with_status_x.hl7", "chair-11-mon", "AE", "unsupported_status"),
    Case("variant_status_deleted.hl7", "chair-11-mon", "AE", "unsupported_status"),
    Case("bad_out_of_range.hl7", "chair-3-mon", "AE", "invalid_value"),
    Case("bad_unknown_unit.hl7", "chair-3-mon", "AE", "unknown_unit"),
    Case("bad_no_values.hl7", "chair-3-mon", "AE", "no_values"),
    Case("bad_timestamp.hl7", "chair-3-mon", "AE", "bad_timestamp"),
)


def bed_of(device: str) -> str:
    return f"bed-{device}"[:64].replace(".", "-")


def send(path: Path, port: int) -> list[hl7.Message]:
    """Send a file with python-hl7's own client, as a new user would; the ACKs, parsed."""
    r = subprocess.run(
        [str(MLLP_SEND), "--loose", "--file", str(path), "--port", str(port), "127.0.0.1"],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    # Bytes, not text mode: universal newlines would turn the ACK's CR segment ends into LF.
    text = r.stdout.decode().replace("\x0b", "").replace("\x1c", "")
    return [hl7.parse("MSH|" + b.strip("\r\n")) for b in text.split("MSH|") if b.strip()]


def one_ack(path: Path, port: int) -> tuple[str, list[tuple[str, str, str]]]:
    """MSA-1 and each ERR as (ERR-4 severity, ERR-3.4 code, ERR-8 text)."""
    (ack,) = send(path, port)
    errs = [
        (str(e.extract_field(1, 4)), str(e.extract_field(1, 3, 1, 4)), str(e.extract_field(1, 8)))
        for e in ack
        if str(e[0][0]) == "ERR"
    ]
    return str(ack.segment("MSA").extract_field(1, 1)), errs


def assert_stored(rows: list[dict[str, Any]], expected: tuple[Stored, ...]) -> None:
    assert [r["ts"] for r in rows] == [e.ts for e in expected]
    for row, exp in zip(rows, expected, strict=True):
        got = row["values"]
        for signal, value in exp.values.items():
            if signal == "pr":
                assert got.get("pr", value) == pytest.approx(value), row
            else:
                assert got[signal] == pytest.approx(value, rel=1e-12), (signal, row)
        assert set(got) <= set(exp.values), row  # nothing that the message did not hold
        assert row["source"] == exp.source


@pytest.fixture(scope="module")
def hl7_server(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MonitorProcess, int]]:
    """One real monitor with an HL7 listener per backend, every corpus device registered."""
    port = free_port()
    seed_admin(db_url)
    proc = MonitorProcess(
        db_url, tmp_path_factory.mktemp("hl7"), extra_args=["--hl7-port", str(port)]
    )
    proc.start()
    try:
        for device in {c.device for c in CORPUS} | {"chair-9-mon"}:
            proc.add_device(device, bed_of(device))
        yield proc, port
    finally:
        proc.stop()


def test_every_corpus_file_is_described_in_the_readme() -> None:
    """tests/data/hl7/README.md says where each message comes from."""
    readme = (DATA / "README.md").read_text()
    for path in DATA.glob("*.hl7"):
        assert f"`{path.name}`" in readme, path.name


@pytest.mark.parametrize("case", [c for c in CORPUS if c.ack == "AA"], ids=lambda c: c.file)
def test_corpus_message_parses_to_exactly_its_values(case: Case) -> None:
    """The pure parser gives each accepted message's values exactly, `pr` included."""
    result = parse_pcd01((DATA / case.file).read_bytes().decode())
    assert result.device_name == case.device
    assert [(r.ts, r.values, r.source) for r in result.readings] == [
        (parse_rfc3339(e.ts), pytest.approx(e.values, rel=1e-12), e.source) for e in case.stored
    ]
    assert len(result.warnings) == case.warnings


@pytest.mark.parametrize("case", [c for c in CORPUS if c.ack != "AA"], ids=lambda c: c.file)
def test_refused_corpus_message_names_its_reason(case: Case) -> None:
    """Each refused message raises the stable code its ACK will carry."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01((DATA / case.file).read_bytes().decode())
    assert err.value.code == case.error


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.file)
def test_corpus_message_gets_its_ack_and_stores_exactly_what_it_held(
    hl7_server: tuple[MonitorProcess, int], case: Case
) -> None:
    """docs/integration.md: AA once stored (with a W ERR per row not stored), AE with the
    reason otherwise and nothing stored; a resend is AA and stored once."""
    s, port = hl7_server
    bed = bed_of(case.device)
    before = s.get("/api/readings", bed=bed)["readings"]
    code, errs = one_ack(DATA / case.file, port)
    assert code == case.ack, errs
    after = s.get("/api/readings", bed=bed)["readings"]
    if case.ack != "AA":
        assert [(sev, err) for sev, err, _ in errs] == [("E", case.error)]
        assert errs[0][2]  # a human reason
        assert after == before
        return
    assert [(sev, err) for sev, err, _ in errs] == [("W", "not_stored")] * case.warnings
    assert all(text for _, _, text in errs)
    assert_stored(after, case.stored)
    assert one_ack(DATA / case.file, port)[0] == "AA"  # a gateway's resend
    assert s.get("/api/readings", bed=bed)["readings"] == after


def _active_sbp_alarms(s: MonitorProcess, bed: str) -> list[dict[str, Any]]:
    alarms = s.get("/api/alarms", bed=bed, active="true")["alarms"]
    return [a for a in alarms if a["signal"] == "sbp"]


async def _poll(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_a_correction_replaces_the_stored_value_and_a_collision_is_refused(
    hl7_server: tuple[MonitorProcess, int],
) -> None:
    """OBX-11 C replaces the stored value of that device, time and signal and the alarm
    engine judges it; a different message with the same time and signals is refused with
    AE seq_conflict (docs/integration.md, "Corrections and collisions")."""
    s, port = hl7_server
    bed = bed_of("chair-9-mon")
    final, corrected = DATA / "variant_nibp_final.hl7", DATA / "variant_nibp_corrected.hl7"
    clash = DATA / "variant_nibp_same_time_other_values.hl7"

    assert one_ack(final, port)[0] == "AA"
    assert await _poll(lambda: _active_sbp_alarms(s, bed)), "215 systolic raises an alarm"
    original = Stored("2026-11-23T16:00:00.000Z", {"sbp": 215, "dbp": 95, "map": 135}, NIBP)
    assert_stored(s.get("/api/readings", bed=bed)["readings"], (original,))

    code, errs = one_ack(clash, port)
    assert (code, errs[0][:2]) == ("AE", ("E", "seq_conflict"))
    assert "correction" in errs[0][2]
    assert_stored(s.get("/api/readings", bed=bed)["readings"], (original,))
    assert one_ack(final, port)[0] == "AA"  # the same message again is a resend

    assert one_ack(corrected, port) == ("AA", [])
    fixed = Stored("2026-11-23T16:00:00.000Z", {"sbp": 125, "dbp": 95, "map": 105}, NIBP)
    assert_stored(s.get("/api/readings", bed=bed)["readings"], (fixed,))
    assert await _poll(lambda: not _active_sbp_alarms(s, bed)), "the corrected 125 clears it"
    latest = {b["id"]: b for b in s.get("/api/beds")}[bed]["latest"]
    assert (latest["sbp"]["value"], latest["map"]["value"]) == (125, 105)

    assert one_ack(corrected, port)[0] == "AA"  # resent correction: nothing changes
    assert_stored(s.get("/api/readings", bed=bed)["readings"], (fixed,))
    code, errs = one_ack(final, port)  # the original, now superseded by the correction
    assert (code, errs[0][1]) == ("AE", "seq_conflict")
    assert_stored(s.get("/api/readings", bed=bed)["readings"], (fixed,))


def _spo2_message(control_id: str, device: str, at: float, value: int) -> str:
    stamp = datetime.fromtimestamp(at, tz=UTC).strftime("%Y%m%d%H%M%S+0000")
    return (
        "\r".join(
            [
                f"MSH|^~\\&|{device}|Vigil Test Clinic|||{stamp}||ORU^R01^ORU_R01|{control_id}|P|2.6",
                f"OBR|1|{control_id}|{control_id}|182777000^monitoring of patient^SCT|||{stamp}",
                f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|{value}|%^%^UCUM|||||R",
            ]
        )
        + "\r"
    )


async def test_a_resend_of_a_reading_swept_by_retention_is_a_duplicate_not_stored_again(
    backend: str, tmp_path: Path
) -> None:
    """Idempotency of (device, seq) outlives retention (docs/reliability.md): a late resend of
    a swept reading is acked and not stored again; newer readings are still stored."""
    # The app in this process with its real MLLP listener (the corpus tests above keep the
    # process): the subject is the store's idempotency across a retention sweep at start.
    with fresh_database(backend, tmp_path) as url:
        port = free_port()
        s = start_in_process(url, tmp_path, {"hl7_port": port})
        try:
            s.add_device("ret-hl7-mon", "ret-hl7-bed")
            old = tmp_path / "old.hl7"
            old.write_text(_spo2_message("old-1", "ret-hl7-mon", time.time() - 3 * 86_400, 91))
            assert one_ack(old, port)[0] == "AA"
            assert len(s.get("/api/readings", bed="ret-hl7-bed")["readings"]) == 1
            s.stop()
            admin_token = s.admin_token  # still valid after the restart: no second login
            s = InProcessMonitor(url, tmp_path, {"hl7_port": port, "retention_days": 1})
            s.admin_token = admin_token
            s.start()
            swept = await _poll(lambda: s.get("/api/readings", bed="ret-hl7-bed")["readings"] == [])
            assert swept, "the retention sweep at start removes the 3-day-old reading"

            assert one_ack(old, port) == ("AA", [])
            assert s.get("/api/readings", bed="ret-hl7-bed")["readings"] == []
            new = tmp_path / "new.hl7"
            new.write_text(_spo2_message("new-2", "ret-hl7-mon", time.time() - 5, 96))
            assert one_ack(new, port)[0] == "AA"
            (row,) = s.get("/api/readings", bed="ret-hl7-bed")["readings"]
            assert row["values"] == {"spo2": 96}
        finally:
            s.stop()
