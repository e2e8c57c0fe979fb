"""Hostile input at the device door (docs/reliability.md; docs/protocol.md: device websocket, error codes).

A corpus of a few hundred bad frames, built as a table of field mutations x values plus raw
texts, goes down one authenticated connection while another device keeps sending: each bad
frame gets the contract's code, nothing of it is stored, the log names the code but no
patient data, and the other device is acknowledged throughout. Runs on SQLite and
PostgreSQL on the app in this process (tests/inprocess.py: the device door's semantics, not
the process); the limits that need other settings (rate, idle) use app_factory.

Over 500 lines, one unit: the corpus table is most of it (about 250 lines of mutations), and
every test here is the device door's answer to hostile input, with the same bystander device
and storage checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from monitor.core.model import SIGNAL_RANGES, to_rfc3339
from monitor.wire.device import ErrorCode, encode_reading
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401
from tests.wsclient import Device

DEV = "hostile-mon"
BED = "hostile-bed"
# Markers that would betray patient data in the log if a rejected frame were logged whole.
MARKER_LABEL = "Marker-Doe-7731"
MARKER_VALUE = 351.123457


@dataclass(frozen=True)
class Case:
    name: str
    frame: str | bytes
    code: ErrorCode
    seq: int | None  # the seq the error must echo


def _base(seq: int, now: float) -> dict[str, Any]:
    return {
        "type": "reading",
        "v": 1,
        "device_id": DEV,
        "seq": seq,
        "ts": to_rfc3339(now - 5),
        "values": {"hr": 72, "spo2": 97},
    }


_MISSING = object()


@dataclass(frozen=True)
class _Ahead:
    """A timestamp this many seconds past the corpus's ``now``, resolved when it is built
    (a time taken at import is no longer in the future by the time a long suite runs it)."""

    seconds: float


# field -> [(bad value, expected code)]; _MISSING removes the field.
_FIELD_MUTATIONS: dict[str, list[tuple[Any, ErrorCode]]] = {
    "type": [
        (v, ErrorCode.UNKNOWN_TYPE)
        for v in ["waveform", "", None, 1, [], {}, "READING", "reading ", _MISSING, "NaN"]
    ],
    "v": [
        (v, ErrorCode.UNSUPPORTED_VERSION)
        for v in [2, 0, -1, "1", 1.5, None, True, [], {}, _MISSING, "NaN", "Infinity"]
    ],
    "device_id": [
        (v, ErrorCode.DEVICE_MISMATCH)
        for v in [
            "victim-mon",
            "",
            None,
            7,
            DEV.upper(),
            DEV + " ",
            DEV + "\u0000",
            [DEV],
            _MISSING,
        ]
    ],
    "seq": [
        (v, ErrorCode.INVALID_SEQ)
        for v in [
            "42",
            4.5,
            -1,
            True,
            False,
            None,
            2**63,
            2**64 + 1,
            [],
            {},
            1e3,
            _MISSING,
            "NaN",
            "Infinity",
            -(2**63),
        ]
    ],
    "ts": [
        (v, ErrorCode.INVALID_TS)
        for v in [
            "",
            "yesterday",
            1_790_000_000,
            None,
            [],
            "2026-13-01T00:00:00Z",
            "2026-11-23T15:00:01",
            "2026-11-23T25:00:00Z",
            "NaN",
            "Infinity",
            "x" * 5000,
            _MISSING,
            "2026-11-23T15:00:01.000Q",
        ]
    ]
    + [(_Ahead(d), ErrorCode.TS_IN_FUTURE) for d in (400, 86_400, 3e9)],
    "values": [(v, ErrorCode.EMPTY_VALUES) for v in [{}, [], None, "hr", 5, [72], _MISSING]]
    + [
        (v, ErrorCode.UNKNOWN_SIGNAL)
        for v in [
            {"temp": 37},
            {"HR": 70},
            {"": 1},
            {"hr": 70, "etco2": 35},
            {"spo2 ": 97},
            {"patient_label": MARKER_LABEL},
        ]
    ]
    + [
        (v, ErrorCode.INCONSISTENT_CUFF)
        for v in [
            {"sbp": 80, "dbp": 90},
            {"sbp": 120, "dbp": 120},
            {"sbp": 120, "dbp": 80, "map": 130},
            {"sbp": 120, "dbp": 80, "map": 70},
        ]
    ],
    "source": [(v, ErrorCode.INVALID_SOURCE) for v in ["ecg", "NIBP", "", 1, [], {}]],
}

# Per signal, values a body cannot show or that are not finite numbers.
_BAD_VALUES: list[Any] = [
    None,
    "70",
    True,
    "NaN",
    "Infinity",
    "-Infinity",
    [],
    {},
    "",
    -1,
    -1e-9,
    1e308,
    -1e308,
    MARKER_VALUE,
]


def _raw_cases(now: float) -> list[Case]:
    good = orjson.dumps(_base(9000, now)).decode()
    texts = [
        "not json",
        "",
        " ",
        "{",
        "}",
        "{'type': 'reading'}",
        good + "x",
        good[:-1],
        good.replace('"hr":72', '"hr":NaN'),
        good.replace('"hr":72', '"hr":Infinity'),
        good.replace('"hr":72', '"hr":-Infinity'),
        good.replace('"hr":72', '"hr":1e400'),
        good.replace('"hr":72', '"hr":nan'),
        good.replace('"seq":9000', '"seq":NaN'),
        good.replace('"hr":72', '"hr":0x48'),
        good.replace(DEV, "\\ud800"),
        "\ufeff" + good,
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
    ]
    cases = [Case(f"raw-text-{i}", t, ErrorCode.NOT_JSON, None) for i, t in enumerate(texts)]
    not_objects = ["[1, 2]", '"reading"', "null", "42", "true", "[]", "[" + good + "]"]
    cases += [
        Case(f"raw-nonobj-{i}", t, ErrorCode.NOT_OBJECT, None) for i, t in enumerate(not_objects)
    ]
    binaries = [b"\x00\x01binary", good.encode(), b"", b"\xff" * 100]
    cases += [Case(f"binary-{i}", b, ErrorCode.BINARY_FRAME, None) for i, b in enumerate(binaries)]
    heartbeats: list[tuple[dict[str, Any], ErrorCode]] = [
        ({"type": "heartbeat", "v": 1, "device_id": "victim-mon"}, ErrorCode.DEVICE_MISMATCH),
        ({"type": "heartbeat", "v": 1, "device_id": DEV, "ts": "soon"}, ErrorCode.INVALID_TS),
        (
            {"type": "heartbeat", "v": 1, "device_id": DEV, "values": {"hr": 1}},
            ErrorCode.UNKNOWN_FIELD,
        ),
        ({"type": "heartbeat", "v": 2, "device_id": DEV}, ErrorCode.UNSUPPORTED_VERSION),
    ]
    cases += [
        Case(f"heartbeat-{i}", orjson.dumps(h).decode(), c, None)
        for i, (h, c) in enumerate(heartbeats)
    ]
    return cases


def hostile_corpus(now: float) -> list[Case]:
    """Every bad frame of the table, each with its own seq so nothing can hide in storage."""
    cases: list[Case] = []
    seq = 10_000

    def add(name: str, obj: dict[str, Any], code: ErrorCode) -> None:
        valid_seq = obj.get("seq")
        echo = (
            valid_seq
            if isinstance(valid_seq, int)
            and not isinstance(valid_seq, bool)
            and 0 <= valid_seq < 2**63
            else None
        )
        cases.append(Case(name, json.dumps(obj), code, echo))

    for field, mutations in _FIELD_MUTATIONS.items():
        for i, (value, code) in enumerate(mutations):
            seq += 1
            obj = _base(seq, now)
            if value is _MISSING:
                del obj[field]
            elif isinstance(value, _Ahead):
                obj[field] = to_rfc3339(now + value.seconds)
            else:
                obj[field] = value
            add(f"{field}-{i}", obj, code)
    for signal, (_lo, hi) in SIGNAL_RANGES.items():
        for i, value in enumerate([*_BAD_VALUES, hi + 0.001, hi + 1]):
            seq += 1
            obj = _base(seq, now)
            obj["values"] = {signal: value}
            add(f"value-{signal}-{i}", obj, ErrorCode.INVALID_VALUE)
    for i, extra in enumerate(["patient_label", "Type", "__proto__", "values2", "", "v "]):
        seq += 1
        obj = _base(seq, now)
        obj[extra] = MARKER_LABEL
        add(f"extra-{i}", obj, ErrorCode.UNKNOWN_FIELD)
    return cases + _raw_cases(now)


class Bystander:
    """Answers seen by a well-behaved device sending while something hostile goes on."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []

    async def next_ack(self, within: float = 5.0) -> None:
        """Wait until the bystander gets one more answer: proof it is served right now."""
        seen = len(self.answers)
        deadline = time.monotonic() + within
        while len(self.answers) == seen:
            assert time.monotonic() < deadline, "the bystander got no answer in time"
            await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def bystander(
    server: MonitorProcess, device_id: str, bed: str, pace_s: float = 0.0
) -> AsyncIterator[Bystander]:
    """Another device sending readings the whole time; every one must be acked and stored."""
    token = server.add_device(device_id, bed)
    by = Bystander()
    stop = asyncio.Event()

    async def run() -> None:
        async with Device(server.ws_url, device_id, token) as dev:
            seq = 0
            while not stop.is_set():
                seq += 1
                by.answers.append((seq, await dev.reading(seq, {"hr": 70, "spo2": 98})))
                await asyncio.sleep(pace_s)

    task = asyncio.create_task(run())
    try:
        await by.next_ack()
        yield by
        await by.next_ack()
    finally:
        stop.set()
        await task
    assert all(reply == {"type": "ack", "seq": seq} for seq, reply in by.answers), by.answers[-3:]
    stored = server.get("/api/readings", bed=bed, limit=10_000)["readings"]
    assert sorted(r["seq"] for r in stored) == [seq for seq, _ in by.answers]


def _stored(server: MonitorProcess, bed: str) -> list[dict[str, Any]]:
    return list(server.get("/api/readings", bed=bed, limit=10_000)["readings"])


async def test_hostile_corpus_gets_contract_codes_stores_nothing_and_spares_others(
    server: MonitorProcess,
) -> None:
    """200+ bad frames: each its code and seq, connection open, nothing stored, no PHI logged."""
    token = server.add_device(DEV, BED)
    server.add_device("victim-mon", "victim-bed")
    corpus = hostile_corpus(time.time())
    assert len(corpus) >= 200
    wrong: list[str] = []
    async with (
        bystander(server, "calm-mon", "calm-bed") as calm,
        Device(server.ws_url, DEV, token) as d,
    ):
        for i, case in enumerate(corpus):
            if i % 20 == 0:
                await calm.next_ack()
            await d.ws.send(case.frame)
            reply = await d.recv()
            if (reply.get("type"), reply.get("code"), reply.get("seq")) != (
                "error",
                case.code.value,
                case.seq,
            ) or not reply.get("detail"):
                wrong.append(f"{case.name}: {reply}")
        # Still open and still working after all of it.
        assert await d.reading(1, {"hr": 71}) == {"type": "ack", "seq": 1}
    assert wrong == []
    assert [r["seq"] for r in _stored(server, BED)] == [1]
    assert _stored(server, "victim-bed") == []
    log = server.log_text()
    for code in ("invalid_value", "not_json", "binary_frame", "device_mismatch"):
        assert f"device {DEV} frame rejected: {code}" in log
    assert MARKER_LABEL not in log and str(MARKER_VALUE) not in log


async def test_device_claiming_another_devices_id_stores_nothing_for_either(
    server: MonitorProcess,
) -> None:
    """A token speaks for its own device only: another's device_id is device_mismatch."""
    token_a = server.add_device("claim-a", "claim-bed-a")
    server.add_device("claim-b", "claim-bed-b")
    async with Device(server.ws_url, "claim-a", token_a) as dev:
        await dev.ws.send(encode_reading("claim-b", 1, time.time(), {"hr": 60}))
        reply = await dev.recv()
        assert reply["code"] == "device_mismatch" and reply["seq"] == 1
        await dev.ws.send(
            orjson.dumps({"type": "heartbeat", "v": 1, "device_id": "claim-b"}).decode()
        )
        assert (await dev.recv())["code"] == "device_mismatch"
    assert _stored(server, "claim-bed-a") == [] and _stored(server, "claim-bed-b") == []


async def test_replayed_and_out_of_order_seqs_are_acked_and_stored_once(
    server: MonitorProcess,
) -> None:
    """Out-of-order seqs are stored; a replay is acked again and never overwrites the first."""
    token = server.add_device("replay-mon", "replay-bed")
    t0 = time.time() - 60
    async with Device(server.ws_url, "replay-mon", token) as dev:
        for seq in (10, 5, 7, 6):
            assert await dev.reading(seq, {"hr": 60 + seq}, ts=t0 + seq) == {
                "type": "ack",
                "seq": seq,
            }
        # The same seq again, as a resend would, and once more with different content.
        assert await dev.reading(10, {"hr": 70}, ts=t0 + 10) == {"type": "ack", "seq": 10}
        assert await dev.reading(10, {"hr": 140}, ts=t0 + 11) == {"type": "ack", "seq": 10}
    async with Device(server.ws_url, "replay-mon", token) as dev:
        for seq in (5, 6, 7, 10):
            assert await dev.reading(seq, {"hr": 200}, ts=t0) == {"type": "ack", "seq": seq}
    stored = _stored(server, "replay-bed")
    assert [(r["seq"], r["values"]["hr"]) for r in stored] == [(5, 65), (6, 66), (7, 67), (10, 70)]


async def _closed_with(ws: Any, within: float = 5.0) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    rcvd = closed.value.rcvd
    assert rcvd is not None, "closed without a close frame"
    return rcvd.code, rcvd.reason


BAD_TOKENS = ["", "x" * 43, "x" * 8000, "Bearer", "' OR 1=1 --", "%00", "\u00e9\u00e8"]


async def test_unknown_device_tokens_are_closed_1008(server: MonitorProcess) -> None:
    """Tokens that are no device's: each closed 1008, nothing stored, others unaffected."""
    closes = []
    async with bystander(server, "tok-calm", "tok-calm-bed") as calm:
        for token in BAD_TOKENS:
            url = f"{server.ws_url}/ws/device"
            # Header where a header can carry it, else the query string devices may use.
            headers = {"Authorization": f"Bearer {token}"} if token.isascii() and token else {}
            if token and not headers:
                url += "?token=" + urllib.parse.quote(token)
            async with websockets.connect(url, additional_headers=headers) as ws:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(encode_reading("hostile-x", 1, time.time(), {"hr": 60}))
                closes.append(await _closed_with(ws))
            await calm.next_ack()
    assert [code for code, _ in closes] == [1008] * len(BAD_TOKENS)
    assert all("token" in reason for _, reason in closes)
    assert "device connection refused: invalid or revoked token" in server.log_text()


async def test_user_token_is_not_a_device_token_and_revocation_closes_live_socket(
    server: MonitorProcess,
) -> None:
    """An access token opens no device socket; revoking a device closes its socket (1008)."""
    async with websockets.connect(
        f"{server.ws_url}/ws/device",
        additional_headers={"Authorization": f"Bearer {server.admin_token}"},
    ) as ws:
        assert (await _closed_with(ws))[0] == 1008
    token = server.add_device("revoke-live", "revoke-bed")
    async with Device(server.ws_url, "revoke-live", token) as dev:
        assert (await dev.reading(1, {"hr": 60}))["type"] == "ack"
        r = await asyncio.to_thread(
            http_client.delete, f"{server.base_url}/api/devices/revoke-live", headers=server.headers
        )
        assert r.status_code == 200
        code, _ = await _closed_with(dev.ws)
    assert code == 1008
    async with websockets.connect(f"{server.ws_url}/ws/device?token={token}") as ws:
        assert (await _closed_with(ws))[0] == 1008
    assert [r["seq"] for r in _stored(server, "revoke-bed")] == [1]


async def test_frame_over_the_limit_closes_1009_and_spares_others(server: MonitorProcess) -> None:
    """65 KiB of text closes that socket with 1009; just under the limit is an ordinary error."""
    token = server.add_device("big-mon", "big-bed")
    async with bystander(server, "big-calm", "big-calm-bed"):
        async with Device(server.ws_url, "big-mon", token) as dev:
            pad = "x" * (64 * 1024 - 200)
            await dev.ws.send(
                json.dumps({**_base(1, time.time()), "device_id": "big-mon", "pad": pad})
            )
            assert (await dev.recv())["code"] == "unknown_field"
            await dev.ws.send(json.dumps({**_base(2, time.time()), "pad": pad * 2}))
            code, reason = await _closed_with(dev.ws)
        assert code == 1009 and "limit" in reason
    assert _stored(server, "big-bed") == []
    assert "device big-mon closed: frame over the size limit" in server.log_text()


async def test_flood_is_rate_limited_then_closed_1008(app_factory: Any) -> None:
    """Past the per-device budget: error rate_limited, close 1008; other devices go on."""
    s: MonitorProcess = await asyncio.to_thread(
        app_factory, device_rate_per_s=20.0, device_rate_burst=30.0
    )
    token = s.add_device("flood-mon", "flood-bed")
    async with bystander(s, "flood-calm", "flood-calm-bed", pace_s=0.1):
        async with Device(s.ws_url, "flood-mon", token) as dev:
            now = time.time()
            with contextlib.suppress(ConnectionClosed):
                for seq in range(1, 501):
                    await dev.send(seq, {"hr": 60}, ts=now)
            replies: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    replies.append(await dev.recv())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert replies[-1]["code"] == "rate_limited"
    acked = [r["seq"] for r in replies if r["type"] == "ack"]
    # The burst went through and was stored; nothing past the limit was.
    assert 25 <= len(acked) <= 100 and acked == list(range(1, len(acked) + 1))
    assert [r["seq"] for r in _stored(s, "flood-bed")] == acked
    assert "device flood-mon closed: rate limit exceeded" in s.log_text()


async def test_idle_and_slowloris_connections_are_closed_others_kept(app_factory: Any) -> None:
    """Silent sockets and a frame that never finishes are closed (1001) after the idle timeout;
    a device sending heartbeats stays connected."""
    idle_timeout_s = 1.0
    s: MonitorProcess = await asyncio.to_thread(app_factory, device_idle_timeout_s=idle_timeout_s)
    token = s.add_device("idle-mon", "idle-bed")
    slow_token = s.add_device("slow-mon", "idle-bed")
    calm_token = s.add_device("idle-calm", "idle-calm-bed")
    started = time.monotonic()
    async with (
        Device(s.ws_url, "idle-calm", calm_token) as calm,
        websockets.connect(f"{s.ws_url}/ws/device?token={token}") as silent,
    ):
        slow = await asyncio.to_thread(_slowloris, s.port, slow_token)

        async def heartbeats() -> None:
            # The calm device sends a heartbeat well inside the timeout, for as long as the
            # silent socket lives (past the timeout).
            while True:
                await calm.ws.send(
                    orjson.dumps(
                        {
                            "type": "heartbeat",
                            "v": 1,
                            "device_id": "idle-calm",
                            "ts": to_rfc3339(time.time()),
                        }
                    ).decode()
                )
                await asyncio.sleep(0.3)

        beating = asyncio.create_task(heartbeats())
        try:
            # Waits for the close itself, no fixed sleep: it must come after the timeout.
            code, reason = await _closed_with(silent, within=idle_timeout_s + 10)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        assert code == 1001 and "idle" in reason
        # Connected for longer than the timeout, on heartbeats only: the calm device stays.
        assert time.monotonic() - started >= idle_timeout_s
        assert await calm.reading(1, {"hr": 60}) == {"type": "ack", "seq": 1}
    # The half-sent frame: the monitor closed the TCP connection on its side.
    slow.settimeout(3)
    data = b""
    with contextlib.suppress(OSError):
        while b"\x88" not in data and (chunk := slow.recv(4096)):
            data += chunk
    slow.close()
    assert b"\x88" in data, "no close frame for the slowloris socket"
    assert s.log_text().count("closed: idle past the timeout") >= 2


def _slowloris(port: int, token: str) -> socket.socket:
    """A raw websocket client that starts a 100-byte text frame and then sends 2 bytes of it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /ws/device?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 101")
    # FIN + text opcode, masked, payload length 100, mask key, then only 2 payload bytes.
    sock.sendall(bytes([0x81, 0x80 | 100]) + b"\x00\x00\x00\x00" + b'{"')
    return sock
