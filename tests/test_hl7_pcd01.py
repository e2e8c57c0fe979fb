"""The pure PCD-01 parser and ACK builder (monitor/wire/pcd01.py)."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.model import SIGNAL_RANGES
from monitor.wire.pcd01 import (
    SEQ_SIGNAL_BIT,
    SEQ_SIGNAL_BITS,
    Hl7Error,
    build_ack,
    derive_seq,
    parse_pcd01,
)

DATA = Path(__file__).parent / "data" / "hl7"
T_1500 = 1_795_446_000.0  # 2026-11-23T15:00:00Z


def oru(
    *obx: str,
    msh_time: str = "20261123150100+0000",
    obr_time: str = "20261123150000+0000",
    sender: str = "CHAIR_GW^0012345678ABCDEF^EUI-64",
    msg_type: str = "ORU^R01^ORU_R01",
) -> str:
    """A PCD-01-shaped message around the given OBX rows (``OBX|n|`` is prefixed)."""
    segs = [
        f"MSH|^~\\&|{sender}|Clinic|||{msh_time}||{msg_type}|ctl-1|P|2.6|||AL|NE",
        "PID|||P1^^^VIGIL^MR",
        f"OBR|1|ctl-1|ctl-1|182777000^monitoring of patient^SCT|||{obr_time}",
    ]
    segs += [f"OBX|{i}|{row}" for i, row in enumerate(obx, start=1)]
    return "\r".join(segs) + "\r"


def nm(code: str, value: str, unit: str, ts: str = "", device: str = "") -> str:
    return f"NM|{code}|1.1.1.1|{value}|{unit}|||||R|||{ts}||||{device}"


SPO2 = "150456^MDC_PULS_OXIM_SAT_O2^MDC"
HR = "147842^MDC_ECG_HEART_RATE^MDC"
SYS = "150021^MDC_PRESS_BLD_NONINV_SYS^MDC"
DIA = "150022^MDC_PRESS_BLD_NONINV_DIA^MDC"
MMHG = "mm[Hg]^mm[Hg]^UCUM"


def test_shipped_message_maps_to_one_cuff_reading() -> None:
    """IHE E.1.2 sample: 111/60 (80), pulse 63, one nibp reading at OBX-14 in UTC."""
    text = (DATA / "pcd01_episodic_nibp.hl7").read_bytes().decode()
    result = parse_pcd01(text)
    assert result.control_id == "0104ef190d604db188c3"
    assert result.device_name == "080019FFFE3ED02D172.16.172.135"  # first OBX-18 present
    (reading,) = result.readings
    # 149546 is the cuff's pulse rate: pr, not the ECG heart rate hr.
    assert reading.values == {"sbp": 111.0, "dbp": 60.0, "map": 80.0, "pr": 63.0}
    assert reading.source == "nibp"
    assert reading.ts == 1_306_990_722.0  # 2011-06-02T04:58:42Z
    assert reading.device_id == result.device_name
    assert {i.code for i in result.ignored} == {"69965", "70686", "70687"}


def test_mds_row_device_name_wins_over_other_obx18() -> None:
    """Contract: the MDS row's (69965) OBX-18 names the device when it carries one."""
    text = oru(
        nm(SPO2, "97", "%", device="channel-9"),
        "|69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||mon-1^ACME",
    )
    assert parse_pcd01(text).device_name == "mon-1"


def test_msh3_names_the_device_when_no_obx18() -> None:
    """Contract: with no OBX-18 at all, MSH-3's first component is the device name."""
    assert parse_pcd01(oru(nm(SPO2, "97", "%"))).device_name == "CHAIR_GW"


def test_no_device_name_anywhere_is_refused() -> None:
    """A message naming no device cannot be bound to a bed."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(oru(nm(SPO2, "97", "%"), sender=""))
    assert err.value.code == "no_device"


@pytest.mark.parametrize(
    ("code", "raw", "unit", "signal", "value"),
    [
        ("147842^MDC_ECG_HEART_RATE^MDC", "70", "264864^MDC_DIM_BEAT_PER_MIN^MDC", "hr", 70.0),
        ("^MDC_ECG_CARD_BEAT_RATE^MDC", "70", "/min^/min^UCUM", "hr", 70.0),
        ("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "70", "{beat}/min^{beat}/min^UCUM", "pr", 70.0),
        ("149522^MDC_BLD_PULS_RATE_INV^MDC", "71", "264864^MDC_DIM_BEAT_PER_MIN^MDC", "pr", 71.0),
        ("149546^MDC_BLD_PULS_RATE_NONINV^MDC", "72", "/min^/min^UCUM", "pr", 72.0),
        ("^MDC_PULS_RATE_NON_INV^MDC", "72", "/min^/min^UCUM", "pr", 72.0),
        ("0002-4182^HR^MDIL", "80", "0004-0aa0^bpm^MDIL", "hr", 80.0),
        ("0002-480a^Pulse^MDIL", "80", "0004-0aa0^bpm^MDIL", "pr", 80.0),
        ("0002-4bb8^SpO2^MDIL", "98", "0004-0220^%^MDIL", "spo2", 98.0),
        ("0002-5000^Resp^MDIL", "20", "0004-0ae0^rpm^MDIL", "rr", 20.0),
        ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "93.5", "262688^MDC_DIM_PERCENT^MDC", "spo2", 93.5),
        ("151562^MDC_RESP_RATE^MDC", "12", "264928^MDC_DIM_RESP_PER_MIN^MDC", "rr", 12.0),
        ("150023^MDC_PRESS_BLD_NONINV_MEAN^MDC", "90", "266016^MDC_DIM_MMHG^MDC", "map", 90.0),
        ("150303^MDC_PRESS_CUFF_MEAN^MDC", "90", "mm[Hg]^mm[Hg]^UCUM", "map", 90.0),
        (
            "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC",
            "12",
            "266048^MDC_DIM_KILO_PASCAL^MDC",
            "map",
            90.007,
        ),
        ("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "16", "kPa^kPa^UCUM", "sbp", 120.010),
    ],
)
def test_codes_and_units_of_the_integration_table_are_understood(
    code: str, raw: str, unit: str, signal: str, value: float
) -> None:
    """docs/integration.md codes with UCUM, MDC or MDIL units; kPa is converted to mmHg."""
    (reading,) = parse_pcd01(oru(nm(code, raw, unit))).readings
    assert reading.values == {signal: pytest.approx(value, abs=0.001)}


@pytest.mark.parametrize(
    ("unit", "why"),
    [("", "missing"), ("%^%^UCUM", "percent is not a heart rate"), ("bpm", "not UCUM")],
)
def test_missing_or_wrong_unit_is_refused(unit: str, why: str) -> None:
    """A value whose unit is not known for its signal is refused (unknown_unit), not guessed."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(oru(nm(HR, "70", unit)))
    assert err.value.code == "unknown_unit", why
    assert err.value.control_id == "ctl-1"


def test_rows_at_the_same_time_form_one_reading_and_times_split_readings() -> None:
    """Grouping: one reading per observation time, oldest first."""
    text = oru(
        nm(SPO2, "97", "%", ts="20261123150001+0000"),
        nm(HR, "71", "/min", ts="20261123150000+0000"),
        nm(SPO2, "96", "%", ts="20261123150000+0000"),
    )
    readings = parse_pcd01(text).readings
    assert [(r.ts - T_1500, r.values) for r in readings] == [
        (0.0, {"hr": 71.0, "spo2": 96.0}),
        (1.0, {"spo2": 97.0}),
    ]


def test_time_falls_back_from_obx14_to_obr7_to_msh7() -> None:
    """Time rule: OBX-14, else OBR-7, else MSH-7."""
    assert parse_pcd01(oru(nm(SPO2, "97", "%"))).readings[0].ts == T_1500
    assert parse_pcd01(oru(nm(SPO2, "97", "%"), obr_time="")).readings[0].ts == T_1500 + 60


def test_time_without_offset_is_in_the_senders_zone_else_utc() -> None:
    """HL7 DTM without offset: MSH-7's offset applies; with none there, UTC."""
    local = oru(nm(SPO2, "97", "%", ts="20261123100000"), msh_time="20261123100100-0500")
    assert parse_pcd01(local).readings[0].ts == T_1500
    bare = oru(nm(SPO2, "97", "%", ts="20261123150000"), msh_time="20261123150100")
    assert parse_pcd01(bare).readings[0].ts == T_1500


def test_fractional_seconds_are_kept() -> None:
    """DTM precision down to 1/10000 s survives into ts."""
    text = oru(nm(SPO2, "97", "%", ts="20261123150000.25+0000"))
    assert parse_pcd01(text).readings[0].ts == T_1500 + 0.25


@pytest.mark.parametrize(
    "ts", ["2026-11-23T15:00:00Z", "202611", "20261399150000", "19600101000000"]
)
def test_unreadable_or_coarse_times_are_refused(ts: str) -> None:
    """bad_timestamp: not HL7 DTM, coarser than minutes, impossible, or before 1970."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(oru(nm(SPO2, "97", "%", ts=ts)))
    assert err.value.code == "bad_timestamp"


def test_future_readings_are_refused_like_the_websocket_does() -> None:
    """Contract: readings may be late but not more than 5 minutes ahead of the monitor."""
    text = oru(nm(SPO2, "97", "%", ts="20261123151000+0000"))
    assert parse_pcd01(text, now=T_1500 + 301).readings
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(text, now=T_1500 + 299)
    assert err.value.code == "ts_in_future"


@pytest.mark.parametrize(
    ("rows", "code"),
    [
        ((nm(SPO2, "101", "%"),), "invalid_value"),
        ((nm(HR, "-1", "/min"),), "invalid_value"),
        ((nm(HR, "seventy", "/min"),), "invalid_value"),
        ((nm(SYS, "80", MMHG), nm(DIA, "90", MMHG)), "inconsistent_cuff"),
    ],
)
def test_values_the_device_protocol_rejects_are_refused(rows: tuple[str, ...], code: str) -> None:
    """Same value checks as the device websocket (SIGNAL_RANGES, dbp < sbp)."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(oru(*rows))
    assert err.value.code == code


@pytest.mark.parametrize("status", ["F", "R", "P", "S", "U", ""])
def test_value_rows_of_every_result_status_are_stored(status: str) -> None:
    """docs/integration.md OBX-11 table: F, R, P, S, U and no status store their value."""
    text = oru(f"NM|{SPO2}|1.3.1.1|97|%|||||{status}")
    result = parse_pcd01(text)
    assert [r.values for r in result.readings] == [{"spo2": 97.0}]
    assert result.corrections == frozenset()


@pytest.mark.parametrize("status", ["C", "A"])
def test_corrected_and_amended_rows_are_marked_as_corrections(status: str) -> None:
    """OBX-11 C/A: the reading at that time is a correction, its seq listed as such."""
    text = oru(
        f"NM|{SPO2}|1.3.1.1|95|%|||||{status}",
        nm(HR, "70", "/min", ts="20261123150001+0000"),
    )
    result = parse_pcd01(text)
    first, second = result.readings
    assert first.values == {"spo2": 95.0} and second.values == {"hr": 70.0}
    assert result.corrections == frozenset({first.seq})


@pytest.mark.parametrize(("status", "word"), [("D", "delete"), ("W", "wrong")])
@pytest.mark.parametrize("value", ["50", ""])
def test_retractions_are_refused_with_or_without_a_value(
    status: str, word: str, value: str
) -> None:
    """OBX-11 D/W ask to retract: refused (unsupported_status), never silently ignored."""
    text = oru(f"NM|{SPO2}|1.3.1.2|{value}|%|||||{status}", nm(HR, "70", "/min"))
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(text)
    assert err.value.code == "unsupported_status"
    assert f"status {status} ({word}" in err.value.detail
    assert "OBX 1 (150456)" in err.value.detail


@pytest.mark.parametrize("status", ["X", "I", "O", "N", "Q"])
def test_a_value_under_a_no_result_or_unknown_status_is_refused(status: str) -> None:
    """A number with OBX-11 X/I/O/N (no result) or a status Vigil does not take is refused."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(oru(f"NM|{SPO2}|1.3.1.2|98|%|||||{status}", nm(HR, "70", "/min")))
    assert err.value.code == "unsupported_status"
    assert "OBX 1 (150456)" in err.value.detail


def test_rows_without_a_value_and_unknown_codes_are_skipped() -> None:
    """Hierarchy rows, X rows without a value (an "?" on the monitor) and codes Vigil does not
    use contribute nothing and are listed as ignored."""
    text = oru(
        "|69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X",
        "|69798^MDC_DEV_ECG_VMD^MDC|1.5.0.0|||||||X",
        f"NM|{HR}|1.5.1.1||264864^MDC_DIM_BEAT_PER_MIN^MDC|||||X",
        "NM|150344^MDC_TEMP^MDC|1.5.1.1|36.8|268192^MDC_DIM_DEGC^MDC|||||R",
        "NM|150344^MDC_TEMP^MDC|1.5.1.1|36.8|268192^MDC_DIM_DEGC^MDC|||||D",
        nm(SPO2, "97", "%"),
    )
    result = parse_pcd01(text)
    assert [r.values for r in result.readings] == [{"spo2": 97.0}]
    assert [i.set_id for i in result.ignored] == ["1", "2", "3", "4", "5"]
    assert result.warnings == ()


def test_an_mdc_or_mdil_code_in_obx18_does_not_name_the_device() -> None:
    """An MDIL/MDC code in OBX-18 (0002-4bb8^SpO2^MDIL) names a measurement, not equipment."""
    text = oru("NM|0002-480a^Pulse^MDIL||80|0004-0aa0^bpm^MDIL|||||F|||||||0002-4bb8^SpO2^MDIL")
    assert parse_pcd01(text).device_name == "CHAIR_GW"


def test_ecg_heart_rate_and_pulse_rates_are_kept_apart() -> None:
    """hr is the ECG rate (147842); 149530/149522/149546 are pulse rates, pr."""
    text = oru(nm(HR, "70", "/min"), nm("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "65", "/min"))
    (reading,) = parse_pcd01(text).readings
    assert reading.values == {"hr": 70.0, "pr": 65.0}


def test_better_pulse_source_wins_regardless_of_row_order_and_the_loser_is_warned() -> None:
    """Oximeter pulse beats arterial-line pulse beats cuff pulse at one instant; each row
    not stored is named in the AA's warnings."""
    text = oru(
        nm("149546^MDC_BLD_PULS_RATE_NONINV^MDC", "60", "/min"),
        nm("149522^MDC_BLD_PULS_RATE_INV^MDC", "62", "/min"),
        nm("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "65", "/min"),
    )
    result = parse_pcd01(text)
    (reading,) = result.readings
    assert reading.values == {"pr": 65.0}
    assert reading.source is None
    assert len(result.warnings) == 2
    assert all("not stored: pr superseded" in w for w in result.warnings)


def test_cuff_pulse_alone_is_marked_nibp() -> None:
    """A pulse rate measured by the cuff (149546) is a cuff reading."""
    (reading,) = parse_pcd01(oru(nm("149546^MDC_PULS_RATE_NON_INV^MDC", "60", "/min"))).readings
    assert reading.values == {"pr": 60.0}
    assert reading.source == "nibp"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("PID|||1\rOBX|1|NM|150456|1|97|%", "parse_error"),
        ("", "parse_error"),
        (oru(nm(SPO2, "97", "%"), msg_type="ADT^A01^ADT_A01"), "not_oru_r01"),
        (oru(), "no_values"),
    ],
)
def test_unusable_messages_raise_a_stable_code(text: str, code: str) -> None:
    """Errors carry stable codes for logs and the ACK's ERR segment."""
    with pytest.raises(Hl7Error) as err:
        parse_pcd01(text)
    assert err.value.code == code


def test_lf_and_crlf_segment_ends_are_accepted() -> None:
    """Files and some senders end segments with LF; the wire uses CR."""
    text = oru(nm(SPO2, "97", "%"), nm(HR, "70", "/min"))
    expected = parse_pcd01(text).readings
    assert parse_pcd01(text.replace("\r", "\n")).readings == expected
    assert parse_pcd01(text.replace("\r", "\r\n")).readings == expected


def test_seq_is_time_in_ms_times_128_plus_signal_mask() -> None:
    """seq derivation (docs/integration.md): deterministic, ms time recoverable, per signal set."""
    seq = derive_seq(T_1500 + 0.25, {"hr": 70.0, "spo2": 97.0})
    assert seq // 128 == 1_795_446_000_250
    assert seq % 128 == 0b11
    assert derive_seq(T_1500, {"sbp": 1.0, "dbp": 1.0, "map": 1.0}) % 128 == 0b11100
    assert derive_seq(T_1500, {"pr": 1.0}) % 128 == 0b1000000
    assert derive_seq(T_1500, {"spo2": 1.0}) != derive_seq(T_1500, {"sbp": 1.0})
    assert derive_seq(T_1500, {"spo2": 1.0}) < derive_seq(T_1500 + 0.001, {"hr": 1.0})


def test_every_signal_has_its_own_seq_bit() -> None:
    """A signal without a bit would make two different readings share a seq."""
    assert set(SEQ_SIGNAL_BIT) == set(SIGNAL_RANGES)
    assert sorted(SEQ_SIGNAL_BIT.values()) == [1 << i for i in range(len(SEQ_SIGNAL_BIT))]
    assert max(SEQ_SIGNAL_BIT.values()) * 2 <= SEQ_SIGNAL_BITS


def test_same_message_parsed_twice_gives_identical_readings() -> None:
    """A gateway resend maps to the same (device, seq), so it is stored once."""
    text = (DATA / "pcd01_continuous_hr_spo2_rr.hl7").read_text()
    assert parse_pcd01(text).readings == parse_pcd01(text).readings


_value_dicts = st.fixed_dictionaries(
    {},
    optional={
        k: st.integers(min_value=int(lo) * 100, max_value=int(hi) * 100).map(lambda v: v / 100)
        for k, (lo, hi) in SIGNAL_RANGES.items()
        if k in ("hr", "pr", "spo2", "rr")
    },
).filter(bool)


@given(_value_dicts)
def test_any_valid_continuous_values_round_trip(values: dict[str, float]) -> None:
    """Every in-range value sent as NM with its unit comes back unchanged."""
    codes = {
        "hr": (HR, "/min"),
        "pr": ("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "/min"),
        "spo2": (SPO2, "%"),
        "rr": ("151562^MDC_RESP_RATE^MDC", "/min"),
    }
    rows = [nm(codes[k][0], f"{v:.2f}", codes[k][1]) for k, v in values.items()]
    (reading,) = parse_pcd01(oru(*rows)).readings
    assert reading.values == values


# --- ACK ---------------------------------------------------------------------------------


def test_aa_ack_swaps_sender_and_echoes_the_control_id() -> None:
    """ACK: MSH-5/6 are the original sender, MSA-1 AA, MSA-2 the original MSH-10, no ERR."""
    text = (DATA / "pcd01_episodic_nibp.hl7").read_bytes().decode()
    ack = build_ack(text, "AA", now=T_1500)
    assert ack.endswith("\r") and "\n" not in ack
    msg = hl7.parse(ack)
    msh = msg.segment("MSH")
    assert str(msh.extract_field(1, 5, 1, 1)) == "ACME_Gateway"
    assert str(msh.extract_field(1, 6)) == "ACME Healthcare"
    assert str(msh.extract_field(1, 7)) == "20261123150000.000+0000"
    assert str(msh(9)) == "ACK^R01^ACK"
    assert str(msh.extract_field(1, 12)) == "2.6"
    assert [str(f) for f in msg.segment("MSA")[1:3]] == ["AA", "0104ef190d604db188c3"]
    with pytest.raises(KeyError):
        msg.segment("ERR")


def test_error_ack_carries_reason_escaped_in_err() -> None:
    """ACK: AE/AR carry ERR with table 0357 code, Vigil's code and the escaped reason."""
    text = oru(nm(SPO2, "97", "%"))
    ack = hl7.parse(
        build_ack(text, "AE", "bad | value ^ here", now=T_1500, error_code="unknown_unit")
    )
    err = ack.segment("ERR")
    assert str(err.extract_field(1, 3, 1, 1)) == "103"
    assert str(err.extract_field(1, 3, 1, 3)) == "HL70357"
    assert str(err.extract_field(1, 3, 1, 4)) == "unknown_unit"
    assert str(err.extract_field(1, 4)) == "E"
    assert str(err.extract_field(1, 8)) == "bad | value ^ here"  # unescaped on read
    assert str(ack.segment("MSA")[1]) == "AE"


def test_ack_for_unparsable_text_still_is_valid_hl7() -> None:
    """Garbage still gets an ACK (no control id to echo) rather than silence."""
    ack = hl7.parse(
        build_ack("\x00not hl7", "AE", "unparsable", now=T_1500, error_code="parse_error")
    )
    assert str(ack.segment("MSA")[1]) == "AE"
    assert str(ack.segment("MSH").extract_field(1, 3)) == "VIGIL"


def test_aa_ack_carries_warnings_as_err_segments_of_severity_w() -> None:
    """ACK: each value-bearing row not stored is named in an ERR with ERR-4 W, MSA stays AA."""
    text = oru(nm(SPO2, "97", "%"))
    ack = hl7.parse(build_ack(text, "AA", now=T_1500, warnings=["OBX 2 not stored: why"]))
    assert str(ack.segment("MSA")[1]) == "AA"
    err = ack.segment("ERR")
    assert str(err.extract_field(1, 3, 1, 1)) == "0"
    assert str(err.extract_field(1, 3, 1, 4)) == "not_stored"
    assert str(err.extract_field(1, 4)) == "W"
    assert str(err.extract_field(1, 8)) == "OBX 2 not stored: why"


def test_ack_code_must_be_aa_ae_or_ar() -> None:
    """Only original-mode acknowledgement codes are produced."""
    with pytest.raises(ValueError):
        build_ack(oru(), "CA", now=T_1500)


def test_ack_from_a_parsed_message_or_result_echoes_the_control_id() -> None:
    """build_ack accepts the raw text, a python-hl7 Message or a Pcd01Result."""
    text = oru(nm(SPO2, "97", "%"))
    for source in (hl7.parse(text), parse_pcd01(text)):
        assert str(hl7.parse(build_ack(source, "AA", now=T_1500)).segment("MSA")[2]) == "ctl-1"
