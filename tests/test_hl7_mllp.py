"""The MLLP edge end to end: python-hl7's own `mllp_send` client against serve_mllp on loopback.

The store callback records into a list (the monitor's storage is the lead's wiring); every
thing else is real: the TCP listener, MLLP framing, parsing and the ACK on the wire.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import hl7
import pytest

from monitor.edges.mllp import (
    StorageError,
    UnknownDeviceError,
    make_handler,
    serve_mllp,
)
from monitor.wire.device import ReadingMsg
from monitor.wire.pcd01 import Pcd01Result

DATA = Path(__file__).parent / "data" / "hl7"
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
NOW = 1_795_446_100.0  # 2026-11-23T15:01:40Z, just after the test messages' times


@dataclass
class Recorder:
    stored: list[tuple[str, list[ReadingMsg]]] = field(default_factory=list)
    known: frozenset[str] | None = None  # None: every device is known
    fail_storage: bool = False

    async def __call__(self, result: Pcd01Result) -> None:
        if self.known is not None and result.device_name not in self.known:
            raise UnknownDeviceError(f"device {result.device_name} is not registered")
        if self.fail_storage:
            raise StorageError("database unavailable")
        self.stored.append((result.device_name, list(result.readings)))


@dataclass
class Edge:
    port: int
    recorder: Recorder


@pytest.fixture
async def edge() -> AsyncIterator[Edge]:
    recorder = Recorder()
    server = await serve_mllp("127.0.0.1", 0, make_handler(recorder, clock=lambda: NOW))
    port = server.sockets[0].getsockname()[1]
    try:
        yield Edge(port=port, recorder=recorder)
    finally:
        server.close()
        await server.wait_closed()


async def mllp_send(path: Path, port: int) -> list[hl7.Message]:
    """Send a file with python-hl7's console client; the ACKs it printed, parsed."""
    proc = await asyncio.create_subprocess_exec(
        str(MLLP_SEND),
        "--loose",
        "--file",
        str(path),
        "--port",
        str(port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    # mllp_send prints each raw ACK block (with its MLLP bytes) followed by a newline.
    text = out.decode().replace("\x0b", "").replace("\x1c", "")
    blocks = [b.strip("\r\n") for b in text.split("MSH|") if b.strip()]
    return [hl7.parse("MSH|" + b) for b in blocks]


def msa(ack: hl7.Message) -> tuple[str, str]:
    seg = ack.segment("MSA")
    return str(seg.extract_field(1, 1)), str(seg.extract_field(1, 2))


def err_code(ack: hl7.Message) -> str:
    return str(ack.segment("ERR").extract_field(1, 3, 1, 4))


async def test_shipped_ihe_message_is_stored_and_acknowledged_aa(edge: Edge) -> None:
    """Contract: a PCD-01 ORU^R01 over MLLP is answered MSA-1 AA once stored."""
    (ack,) = await mllp_send(DATA / "pcd01_episodic_nibp.hl7", edge.port)
    assert msa(ack) == ("AA", "0104ef190d604db188c3")
    assert str(ack.segment("MSH").extract_field(1, 9, 1, 1)) == "ACK"
    assert len(edge.recorder.stored) == 1
    device, readings = edge.recorder.stored[0]
    assert device == "080019FFFE3ED02D172.16.172.135"
    assert [(r.values, r.source) for r in readings] == [
        ({"sbp": 111.0, "dbp": 60.0, "map": 80.0, "pr": 63.0}, "nibp")
    ]


async def test_mdc_unit_codes_and_cuff_codes_are_understood(edge: Edge) -> None:
    """docs/integration.md: 15030x cuff codes and MDC unit 266016 map to sbp/dbp/map in mmHg."""
    (ack,) = await mllp_send(DATA / "pcd01_cuff_mdc_units.hl7", edge.port)
    assert msa(ack) == ("AA", "cuff-mdc-0001")
    device, readings = edge.recorder.stored[0]
    assert device == "chair-3-mon"
    assert readings[0].values == {"sbp": 128.0, "dbp": 82.0, "map": 97.0}
    assert readings[0].ts == 1_795_442_400.0  # 15:00:00+01:00


async def test_continuous_message_gives_one_reading_per_time(edge: Edge) -> None:
    """OBX rows sharing an OBX-14 form one reading; ECG HR and oximeter pulse stay apart."""
    (ack,) = await mllp_send(DATA / "pcd01_continuous_hr_spo2_rr.hl7", edge.port)
    assert msa(ack)[0] == "AA"
    device, readings = edge.recorder.stored[0]
    assert device == "chair-4-mon"
    assert [(r.ts, r.values, r.source) for r in readings] == [
        (1_795_446_008.0, {"hr": 78.0, "pr": 80.0, "spo2": 97.0, "rr": 14.0}, None),
        (1_795_446_009.0, {"hr": 81.0, "spo2": 96.0}, None),
    ]


async def test_obr_time_is_used_when_obx_has_none(edge: Edge) -> None:
    """Time rule: OBX-14, else OBR-7 (in MSH-7's zone when it has no offset)."""
    (ack,) = await mllp_send(DATA / "pcd01_obr_time_only.hl7", edge.port)
    assert msa(ack)[0] == "AA"
    _, readings = edge.recorder.stored[0]
    assert readings[0].ts == 1_795_446_030.0  # 10:00:30-05:00 = 15:00:30Z


@pytest.mark.parametrize(
    ("name", "code", "reason", "control_id"),
    [
        ("bad_not_oru.hl7", "AR", "not_oru_r01", "adt-0004"),
        ("bad_truncated_msh.hl7", "AR", "not_oru_r01", ""),
        ("bad_unknown_unit.hl7", "AE", "unknown_unit", "unit-0005"),
        ("bad_timestamp.hl7", "AE", "bad_timestamp", "time-0006"),
        ("bad_out_of_range.hl7", "AE", "invalid_value", "range-0007"),
        ("bad_no_values.hl7", "AE", "no_values", "empty-0008"),
    ],
)
async def test_refused_messages_get_an_error_ack_and_store_nothing(
    edge: Edge, name: str, code: str, reason: str, control_id: str
) -> None:
    """Contract: AE/AR when not stored, with the reason in ERR; nothing of it is stored."""
    (ack,) = await mllp_send(DATA / name, edge.port)
    assert msa(ack) == (code, control_id)
    assert err_code(ack) == reason
    assert str(ack.segment("ERR").extract_field(1, 8))  # a human reason is given
    assert edge.recorder.stored == []


async def test_several_messages_on_one_connection_are_each_acknowledged(
    edge: Edge, tmp_path: Path
) -> None:
    """A gateway keeps its connection: each message gets its own ACK, in order."""
    names = ["pcd01_episodic_nibp.hl7", "bad_unknown_unit.hl7", "pcd01_cuff_mdc_units.hl7"]
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(b"".join((DATA / n).read_bytes() for n in names))
    acks = await mllp_send(batch, edge.port)
    assert [msa(a) for a in acks] == [
        ("AA", "0104ef190d604db188c3"),
        ("AE", "unit-0005"),
        ("AA", "cuff-mdc-0001"),
    ]
    assert [d for d, _ in edge.recorder.stored] == [
        "080019FFFE3ED02D172.16.172.135",
        "chair-3-mon",
    ]


async def test_unknown_device_is_rejected_ar() -> None:
    """The store callback's UnknownDeviceError becomes AR with reason unknown_device."""
    recorder = Recorder(known=frozenset({"chair-3-mon"}))
    server = await serve_mllp("127.0.0.1", 0, make_handler(recorder, clock=lambda: NOW))
    try:
        port = server.sockets[0].getsockname()[1]
        (ack,) = await mllp_send(DATA / "pcd01_continuous_hr_spo2_rr.hl7", port)
        assert msa(ack) == ("AR", "cont-0002")
        assert err_code(ack) == "unknown_device"
        assert "chair-4-mon" in str(ack.segment("ERR").extract_field(1, 8))
        assert recorder.stored == []
    finally:
        server.close()
        await server.wait_closed()


async def test_storage_failure_is_answered_ae() -> None:
    """The store callback's StorageError becomes AE (storage_failed): the gateway resends."""
    recorder = Recorder(fail_storage=True)
    server = await serve_mllp("127.0.0.1", 0, make_handler(recorder, clock=lambda: NOW))
    try:
        port = server.sockets[0].getsockname()[1]
        (ack,) = await mllp_send(DATA / "pcd01_cuff_mdc_units.hl7", port)
        assert msa(ack) == ("AE", "cuff-mdc-0001")
        assert err_code(ack) == "storage_failed"
    finally:
        server.close()
        await server.wait_closed()


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 5)
    finally:
        writer.close()


async def test_non_hl7_block_gets_a_parse_error_ack(edge: Edge) -> None:
    """Garbage in a well-framed block is answered AE parse_error, never silence."""
    raw = await _exchange(edge.port, b"\x0bhello, is this the lab?\x1c\x0d")
    assert raw.startswith(b"\x0b")
    ack = hl7.parse(raw[1:-2].decode())
    assert msa(ack) == ("AE", "")
    assert err_code(ack) == "parse_error"
    assert edge.recorder.stored == []


async def test_block_without_start_byte_is_refused_and_connection_carries_on(edge: Edge) -> None:
    """Framing: data before 0x0B is an error ACK; the next good block is still served."""
    good = (DATA / "pcd01_cuff_mdc_units.hl7").read_bytes().replace(b"\n", b"\r")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(b"junk\x1c\x0d" + b"\x0b" + good + b"\x1c\x0d")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 5)
        second = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 5)
    finally:
        writer.close()
    assert msa(hl7.parse(first[1:-2].decode()))[0] == "AE"
    assert msa(hl7.parse(second[1:-2].decode())) == ("AA", "cuff-mdc-0001")
    assert len(edge.recorder.stored) == 1


async def test_oversized_message_is_refused_and_connection_closed() -> None:
    """Size limit: a block over max_message_bytes gets AR and the connection is closed."""
    recorder = Recorder()
    server = await serve_mllp(
        "127.0.0.1", 0, make_handler(recorder, clock=lambda: NOW), max_message_bytes=4096
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0bMSH|^~\\&|" + b"A" * 20_000 + b"\x1c\x0d")
        await writer.drain()
        raw = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 5)
        assert msa(hl7.parse(raw[1:-2].decode()))[0] == "AR"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the monitor
        writer.close()
        assert recorder.stored == []
    finally:
        server.close()
        await server.wait_closed()


async def test_resent_message_yields_the_same_seqs(edge: Edge) -> None:
    """seq derivation: a gateway's resend carries the same seqs, so storage keeps it once."""
    await mllp_send(DATA / "pcd01_episodic_nibp.hl7", edge.port)
    await mllp_send(DATA / "pcd01_episodic_nibp.hl7", edge.port)
    first, second = edge.recorder.stored
    assert [r.seq for r in first[1]] == [r.seq for r in second[1]]


async def test_superseded_row_is_named_in_a_warning_err_of_the_aa() -> None:
    """A value-bearing row not stored (another sensor gave pr) is said in ERR, severity W."""
    recorder = Recorder()
    later = 1_795_450_000.0  # 2026-11-23T16:06:40Z, after the variant messages' times
    server = await serve_mllp("127.0.0.1", 0, make_handler(recorder, clock=lambda: later))
    try:
        port = server.sockets[0].getsockname()[1]
        (ack,) = await mllp_send(DATA / "variant_hr_pr_and_cuff_pulse.hl7", port)
    finally:
        server.close()
        await server.wait_closed()
    assert msa(ack) == ("AA", "var-pulse-07")
    assert recorder.stored[0][1][0].values["pr"] == 70.0
    err = ack.segment("ERR")
    assert str(err.extract_field(1, 4)) == "W"
    assert err_code(ack) == "not_stored"
    assert "OBX 7 (149546) value 68" in str(err.extract_field(1, 8))


async def test_idle_connection_is_closed_after_idle_timeout() -> None:
    """With idle_timeout set, a connection that sends nothing is closed by the monitor."""
    server = await serve_mllp(
        "127.0.0.1", 0, make_handler(Recorder(), clock=lambda: NOW), idle_timeout=0.2
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
