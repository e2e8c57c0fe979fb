"""The simulated device client against a tiny real websockets server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from monitor.wire.device import (
    ErrorCode,
    HeartbeatMsg,
    ProtocolError,
    encode_ack,
    encode_error,
    parse_frame,
)
from simulators.client import AuthFailed, DeviceClient, SeqStore, device_ws_url
from simulators.clock import WarpClock
from tests.polling import apoll

DEVICE = "sim-test-mon"
TOKEN = "secret-token"


class TinyMonitor:
    """Acks what it stores (once per seq), validates frames with the real protocol parser,
    and misbehaves on request: drop a connection mid-run, reject or refuse chosen seqs."""

    def __init__(self) -> None:
        self.stored: dict[int, dict[str, object]] = {}
        self.arrivals: list[tuple[int, int]] = []  # (connection number, seq)
        self.acked: list[tuple[int, int]] = []
        self.heartbeats = 0
        self.connections = 0
        self.protocol_errors: list[str] = []
        # Connection 1: ack the first ``ack_first`` readings, stay silent on the next
        # ``then_silent``, then abort the TCP connection (no close frame).
        self.ack_first: int | None = None
        self.then_silent = 0
        self.reject: set[int] = set()
        self.refuse_once: set[int] = set()
        self.close_first_after: tuple[int, str] | None = None  # (readings, reason) -> 1008
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.headers.get("Authorization") != f"Bearer {TOKEN}":
            await ws.close(1008, "invalid or revoked device token")
            return
        self.connections += 1
        conn = self.connections
        n = 0
        async for raw in ws:
            try:
                msg = parse_frame(raw, device_id=DEVICE, now=time.time())
            except ProtocolError as exc:
                self.protocol_errors.append(str(exc.code))
                await ws.send(encode_error(exc.code, exc.detail, exc.seq))
                continue
            if isinstance(msg, HeartbeatMsg):
                self.heartbeats += 1
                continue
            n += 1
            self.arrivals.append((conn, msg.seq))
            if conn == 1 and self.close_first_after and n >= self.close_first_after[0]:
                await ws.send(encode_error(ErrorCode.RATE_LIMITED, "too many frames"))
                await ws.close(1008, self.close_first_after[1])
                return
            if conn == 1 and self.ack_first is not None and n > self.ack_first:
                if n > self.ack_first + self.then_silent:
                    ws.transport.abort()
                    return
                self.stored.setdefault(msg.seq, msg.values)  # stored, but the ack is lost
                continue
            if msg.seq in self.reject:
                await ws.send(encode_error(ErrorCode.INVALID_VALUE, "spo2 out of range", msg.seq))
                continue
            if msg.seq in self.refuse_once:
                self.refuse_once.discard(msg.seq)
                await ws.send(encode_error(ErrorCode.UNAVAILABLE, "store busy", msg.seq))
                continue
            self.stored.setdefault(msg.seq, msg.values)
            self.acked.append((conn, msg.seq))
            await ws.send(encode_ack(msg.seq))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@asynccontextmanager
async def tiny_monitor() -> AsyncIterator[TinyMonitor]:
    mon = TinyMonitor()
    # An unbounded receive queue, so a close handshake is not stuck behind unread frames.
    async with serve(mon.handler, "127.0.0.1", 0, max_queue=None) as server:
        mon.port = next(iter(server.sockets)).getsockname()[1]
        yield mon


def _client(mon: TinyMonitor, tmp_path: Path, **kw: object) -> DeviceClient:
    return DeviceClient(
        mon.url,
        DEVICE,
        kw.pop("token", TOKEN),  # type: ignore[arg-type]
        seq_store=SeqStore.for_device(tmp_path, DEVICE),
        min_backoff_s=0.05,
        **kw,  # type: ignore[arg-type]
    )


def _values(i: int) -> dict[str, float]:
    return {"hr": 60.0 + i % 40, "spo2": 97.0, "rr": 14.0}


async def test_drop_mid_run_resends_every_unacked_reading_in_order_and_nothing_twice(
    tmp_path: Path,
) -> None:
    """Contract: after a drop, every unacked reading is resent in seq order; acked ones never."""
    async with tiny_monitor() as mon:
        mon.ack_first, mon.then_silent = 100, 12
        client = _client(mon, tmp_path, window=16)
        client.start()
        t0 = time.time() - 1000
        seqs = []
        for i in range(300):
            seqs.append(client.submit(t0 + i, _values(i)))
            if i % 10 == 0:
                await asyncio.sleep(0.005)  # readings keep coming while the link drops
        assert await client.wait_drained(10)
        await client.close()
    assert seqs == list(range(1, 301))
    assert mon.connections == 2
    assert sorted(mon.stored) == seqs  # nothing lost
    for conn in (1, 2):
        arrived = [s for c, s in mon.arrivals if c == conn]
        assert arrived == sorted(arrived) and len(set(arrived)) == len(arrived)
    acked_first = {s for c, s in mon.acked if c == 1}
    second = [s for c, s in mon.arrivals if c == 2]
    assert acked_first.isdisjoint(second)  # only unacked readings were resent
    assert second[0] == 101  # resend starts at the first unacked seq
    assert client.stats.acked == 300 and client.stats.resent >= 12
    assert not mon.protocol_errors  # every frame came from the protocol's encoders


async def test_error_frame_drops_that_reading_and_counts_it(tmp_path: Path) -> None:
    """An error frame for a seq: logged, counted, dropped (it will never be acked)."""
    async with tiny_monitor() as mon:
        mon.reject = {3}
        client = _client(mon, tmp_path)
        client.start()
        for i in range(6):
            client.submit(time.time() - 10 + i, _values(i))
        assert await client.wait_drained(5)
        await client.close()
    assert sorted(mon.stored) == [1, 2, 4, 5, 6]
    assert client.stats.dropped == 1 and client.stats.errors["invalid_value"] == 1
    assert client.stats.acked == 5 and client.pending == 0
    assert [s for _, s in mon.arrivals].count(3) == 1  # not retried


async def test_transient_refusal_is_retried_not_dropped(tmp_path: Path) -> None:
    """'unavailable' means not stored for now: the reading is sent again and stored."""
    async with tiny_monitor() as mon:
        mon.refuse_once = {2}
        client = _client(mon, tmp_path)
        client.start()
        for i in range(4):
            client.submit(time.time() - 10 + i, _values(i))
        assert await client.wait_drained(5)
        await client.close()
    assert sorted(mon.stored) == [1, 2, 3, 4]
    assert client.stats.retried == 1 and client.stats.dropped == 0


async def test_next_seq_survives_a_restart_of_the_simulator(tmp_path: Path) -> None:
    """seq rises by one per reading and persists in the device's state file."""
    async with tiny_monitor() as mon:
        first = _client(mon, tmp_path)
        first.start()
        assert [first.submit(time.time() - 5, _values(i)) for i in range(3)] == [1, 2, 3]
        assert await first.wait_drained(5)
        await first.close()
        second = _client(mon, tmp_path)
        second.start()
        assert second.submit(time.time() - 1, _values(9)) == 4
        assert await second.wait_drained(5)
        await second.close()
    state = json.loads((tmp_path / f"{DEVICE}.json").read_text())
    assert state == {"device_id": DEVICE, "next_seq": 5}
    assert sorted(mon.stored) == [1, 2, 3, 4]


def test_a_killed_simulator_never_reuses_a_seq(tmp_path: Path) -> None:
    """Without a clean close the store resumes past every seq it handed out (no reuse)."""
    path = tmp_path / "dev.json"
    first = SeqStore(path, "dev", reserve=10)
    handed = [first.take() for _ in range(25)]
    # no close(): the process died here
    second = SeqStore(path, "dev", reserve=10)
    nxt = second.take()
    assert nxt > max(handed) and nxt - max(handed) <= 10
    second.close()
    assert json.loads(path.read_text())["next_seq"] == nxt + 1


async def test_readings_made_while_the_link_is_down_arrive_after_it_returns(
    tmp_path: Path,
) -> None:
    """A simulated network failure buffers readings; they are delivered on reconnect."""
    async with tiny_monitor() as mon:
        client = _client(mon, tmp_path)
        client.start()
        assert await client.wait_connected(5)
        client.submit(time.time() - 5, _values(0))
        assert await client.wait_drained(5)
        client.set_link(False)
        for i in range(1, 20):
            client.submit(time.time() - 5 + i * 0.1, _values(i))
        await apoll(lambda: client.pending == 19 and not client.connected, timeout=5)
        client.set_link(True)
        assert await client.wait_drained(5)
        client.heartbeat(time.time())
        await apoll(lambda: mon.heartbeats == 1, timeout=5)
        await client.close()
    assert sorted(mon.stored) == list(range(1, 21))
    assert mon.connections == 2 and mon.heartbeats == 1


async def test_refused_token_fails_the_client_when_asked_to(tmp_path: Path) -> None:
    """A 1008 close for the token is fatal for a replay (no endless retry)."""
    async with tiny_monitor() as mon:
        client = _client(mon, tmp_path, token="wrong", fail_on_auth=True)
        client.start()
        client.submit(time.time(), _values(0))
        with pytest.raises(AuthFailed):
            await client.wait_drained(5)
        await client.close()
    assert not mon.stored


async def test_flood_close_makes_the_client_pace_itself_and_lose_nothing(tmp_path: Path) -> None:
    """Closed for flooding: reconnect, resend, and send no faster than before."""
    async with tiny_monitor() as mon:
        mon.close_first_after = (40, "rate limit exceeded")
        client = _client(mon, tmp_path)
        client.start()
        for i in range(120):
            client.submit(time.time() - 200 + i, _values(i))
        assert await client.wait_drained(10)
        await client.close()
    assert client.max_rate is not None
    assert sorted(mon.stored) == list(range(1, 121))


def test_device_url_is_derived_from_the_monitor_url() -> None:
    """--url ws://HOST:PORT reaches the device endpoint."""
    assert device_ws_url("ws://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/device"
    assert device_ws_url("ws://h:1/ws/device") == "ws://h:1/ws/device"


def test_warped_clock_runs_fast_from_the_past_and_never_passes_the_wall_clock() -> None:
    """--speed X: device time X times faster, started in the past, capped at wall time."""
    wall = [1000.0]
    clock = WarpClock(60.0, device_start=1000.0 - 600.0, wall=lambda: wall[0])
    assert clock.now() == 400.0
    wall[0] = 1005.0
    assert clock.now() == 700.0  # 5 s of wall = 300 s of device time
    assert clock.wall_at(700.0) == 1005.0
    wall[0] = 1020.0
    assert clock.now() == 1020.0  # caught up: now runs in real time
    assert clock.seconds_until(1030.0) == 10.0
    for w in range(1000, 1100):
        assert clock.device_at(float(w)) <= w
