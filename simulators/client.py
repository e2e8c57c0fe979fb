"""Simulated device client: the device side of protocol v1 over a real websocket.

- Frames are built only with monitor.wire.device's encoders.
- Every reading gets the device's next ``seq`` when it is produced; the next seq lives in
  a small JSON state file per device so it survives restarts of the simulator (a crash
  skips at most one reserved block of seqs, never reuses one).
- Readings stay in ``pending`` until acknowledged. At most ``window`` are in flight on a
  connection; after a reconnect every pending reading is resent in seq order, so a drop
  loses nothing, and the monitor stores a resent seq once (it acks it again).
- An error frame naming a pending seq drops that reading (it will never be acked), except
  for the transient codes (rate_limited, unavailable), which are retried after a pause.
- A close with code 1008 for the token is an authentication failure (fatal with
  ``fail_on_auth``); a close for flooding lowers the client's own send rate and reconnects.
- ``set_link(False)`` simulates a network failure: the connection is aborted without a
  closing handshake and no reconnect is attempted until ``set_link(True)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from monitor.wire.device import ErrorCode, encode_heartbeat, encode_reading

log = logging.getLogger("simulators.client")

TRANSIENT_CODES = frozenset({str(ErrorCode.RATE_LIMITED), str(ErrorCode.UNAVAILABLE)})
DEFAULT_STATE_DIR = Path("data/sim-state")


class SeqStore:
    """The device's next seq, kept in ``path`` (JSON, written atomically).

    Writing the file for every reading costs about as much as sending it, so the store
    reserves seqs in blocks: the file always holds a seq no lower than any handed out, so a
    crashed simulator never reuses one (it skips the rest of the block); ``close`` writes
    the exact next seq, so a clean restart continues one by one.
    """

    def __init__(self, path: Path, device_id: str, first_seq: int = 1, reserve: int = 64) -> None:
        self.path = path
        self.device_id = device_id
        self.reserve = max(1, reserve)
        self._next = first_seq
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("device_id") not in (None, device_id):
                raise ValueError(f"{path} belongs to device {data.get('device_id')!r}")
            self._next = int(data["next_seq"])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._reserved = self._next

    @classmethod
    def for_device(cls, state_dir: Path, device_id: str) -> SeqStore:
        return cls(Path(state_dir) / f"{device_id}.json", device_id)

    @property
    def peek(self) -> int:
        return self._next

    def take(self) -> int:
        if self._next >= self._reserved:
            self._reserved = self._next + self.reserve
            self._save(self._reserved)
        seq = self._next
        self._next += 1
        return seq

    def close(self) -> None:
        self._save(self._next)
        self._reserved = self._next

    def _save(self, next_seq: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"device_id": self.device_id, "next_seq": next_seq}))
        os.replace(tmp, self.path)


def device_ws_url(url: str) -> str:
    """``ws://host:port`` (as the CLI takes it) -> the device endpoint ``.../ws/device``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/ws/device"):
        path = path + "/ws/device"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@dataclass
class ClientStats:
    submitted: int = 0
    sent: int = 0
    resent: int = 0
    acked: int = 0
    duplicate_acks: int = 0
    dropped: int = 0
    retried: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    heartbeats: int = 0

    def summary(self) -> str:
        errs = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"submitted={self.submitted} sent={self.sent} resent={self.resent} "
            f"acked={self.acked} dropped={self.dropped} connects={self.connects} errors: {errs}"
        )


class AuthFailed(RuntimeError):
    pass


class DeviceClient:
    def __init__(
        self,
        url: str,
        device_id: str,
        token: str,
        *,
        seq_store: SeqStore,
        window: int = 512,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        fail_on_auth: bool = False,
        max_rate: float | None = None,
    ) -> None:
        self.url = device_ws_url(url)
        self.device_id = device_id
        self.token = token
        self.seqs = seq_store
        self.window = window
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.fail_on_auth = fail_on_auth
        # Frames per second this client allows itself (None: as fast as acks allow). Lowered
        # automatically when the monitor closes the connection for flooding.
        self.max_rate = max_rate
        self._bucket = 0.0
        self._bucket_at = 0.0
        self.stats = ClientStats()
        self.failure: BaseException | None = None
        self._pending: dict[int, str] = {}  # seq -> frame; insertion order is seq order
        self._unsent: deque[int] = deque()
        self._in_flight: set[int] = set()
        self._max_sent = -1
        self._hb_frame: str | None = None
        self._hold_until = 0.0
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._link_up = asyncio.Event()
        self._link_up.set()
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._conn_started = 0.0
        self._conn_frames = 0

    # --- the device side: produce readings and heartbeats ---

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def submit(self, ts: float, values: dict[str, float], source: str | None = None) -> int:
        """Queue one reading for delivery; returns its seq."""
        seq = self.seqs.take()
        self._pending[seq] = encode_reading(self.device_id, seq, ts, values, source)
        self._unsent.append(seq)
        self.stats.submitted += 1
        self._drained.clear()
        self._wake.set()
        return seq

    def heartbeat(self, ts: float) -> None:
        """Send a heartbeat if connected (heartbeats are not buffered: stale ones mean nothing)."""
        if self._ws is not None:
            self._hb_frame = encode_heartbeat(self.device_id, ts)
            self._wake.set()

    def set_link(self, up: bool) -> None:
        if up:
            self._link_up.set()
            return
        if self._link_up.is_set():
            self._link_up.clear()
            ws = self._ws
            if ws is not None:
                # A network failure sends no close frame: abort the TCP connection.
                ws.transport.abort()

    # --- lifecycle ---

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"device-{self.device_id}")

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within_s)
        return self._connected.is_set()

    async def wait_drained(self, within_s: float | None = None) -> bool:
        """Wait until every submitted reading is acked or dropped; False on timeout."""
        waiter = asyncio.ensure_future(self._drained.wait())
        tasks: set[asyncio.Future[object]] = {waiter}  # type: ignore[arg-type]
        if self._task is not None:
            tasks.add(self._task)  # type: ignore[arg-type]
        await asyncio.wait(tasks, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.failure is not None:
            raise self.failure
        return self._drained.is_set()

    async def close(self, drain_timeout: float = 0.0) -> None:
        if drain_timeout > 0 and self._task is not None:
            with contextlib.suppress(AuthFailed):
                await self.wait_drained(drain_timeout)
        self._closing = True
        self._link_up.set()
        self._wake.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthFailed):
                await self._task
            self._task = None
        self.seqs.close()

    # --- connection management ---

    async def _run(self) -> None:
        backoff = self.min_backoff_s
        while not self._closing:
            await self._link_up.wait()
            if self._closing:
                break
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    proxy=None,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                ) as ws:
                    backoff = self.min_backoff_s
                    await self._serve(ws)
                if self._closed_by_monitor(ws):
                    return
            except InvalidStatus as exc:
                status = exc.response.status_code
                log.warning("%s: monitor refused the connection (HTTP %s)", self.device_id, status)
                if self.fail_on_auth and status in (401, 403):
                    self.failure = AuthFailed(
                        f"{self.device_id}: monitor refused the token (HTTP {status})"
                    )
                    return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                log.info("%s: connection lost or refused: %s", self.device_id, exc)
            finally:
                self._ws = None
                self._connected.clear()
            if self._closing:
                break
            if self._link_up.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _closed_by_monitor(self, ws: ClientConnection) -> bool:
        """React to the monitor's close reason; True when the client must give up."""
        code, reason = ws.close_code, (ws.close_reason or "").lower()
        if code != 1008:
            return False
        if "rate" in reason or "flood" in reason:
            rate = self._observed_rate or 50.0
            self.max_rate = max(1.0, 0.7 * min(rate, self.max_rate or rate))
            log.warning(
                "%s: monitor closed the connection for flooding; pacing to %.0f frames/s",
                self.device_id,
                self.max_rate,
            )
            return False
        log.error("%s: monitor refused the device: %s", self.device_id, ws.close_reason)
        if self.fail_on_auth and "token" in reason:
            self.failure = AuthFailed(f"{self.device_id}: {ws.close_reason}")
            return True
        return False

    async def _pace(self) -> None:
        """Token bucket (one second of burst) when ``max_rate`` is set."""
        if self.max_rate is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._bucket = min(self.max_rate, self._bucket + (now - self._bucket_at) * self.max_rate)
        self._bucket_at = now
        if self._bucket < 1.0:
            await asyncio.sleep((1.0 - self._bucket) / self.max_rate)
            self._bucket_at = loop.time()
            self._bucket = 1.0
        self._bucket -= 1.0

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.stats.connects += 1
        # Nothing sent on an earlier connection is known to be stored unless acked:
        # resend every pending reading, in seq order.
        self._in_flight.clear()
        self._unsent = deque(self._pending)
        self._connected.set()
        self._conn_started = asyncio.get_running_loop().time()
        self._conn_frames = 0
        self._bucket, self._bucket_at = 0.0, self._conn_started
        log.info("%s: connected, %d readings to (re)send", self.device_id, len(self._unsent))
        reader = asyncio.create_task(self._reader(ws))
        writer = asyncio.create_task(self._writer(ws))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, ConnectionClosed):
                    raise exc
        finally:
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    async def _writer(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if self._hb_frame is not None:
                frame, self._hb_frame = self._hb_frame, None
                await self._pace()
                await ws.send(frame)
                self._conn_frames += 1
                self.stats.heartbeats += 1
            hold = self._hold_until - loop.time()
            if hold > 0:
                await asyncio.sleep(hold)
                continue
            while self._unsent and len(self._in_flight) < self.window:
                seq = self._unsent.popleft()
                frame = self._pending.get(seq)
                if frame is None:
                    continue  # acked or dropped meanwhile
                self._in_flight.add(seq)
                await self._pace()
                await ws.send(frame)
                self._conn_frames += 1
                self.stats.sent += 1
                if seq <= self._max_sent:
                    self.stats.resent += 1
                else:
                    self._max_sent = seq
            await self._wake.wait()

    async def _reader(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.warning("%s: monitor sent a frame that is not JSON", self.device_id)
                continue
            if not isinstance(msg, dict):
                continue
            kind = msg.get("type")
            seq = msg.get("seq")
            if kind == "ack":
                self._on_ack(seq)
            elif kind == "error":
                self._on_error(seq, str(msg.get("code")), str(msg.get("detail")))

    def _on_ack(self, seq: object) -> None:
        if isinstance(seq, int) and self._pending.pop(seq, None) is not None:
            self.stats.acked += 1
            self._in_flight.discard(seq)
            self._settle()
        else:
            self.stats.duplicate_acks += 1

    def _on_error(self, seq: object, code: str, detail: str) -> None:
        self.stats.errors[code] += 1
        if not isinstance(seq, int) or seq not in self._pending:
            log.warning("%s: monitor error %s: %s", self.device_id, code, detail)
            return
        self._in_flight.discard(seq)
        if code in TRANSIENT_CODES:
            # Not stored because the monitor is busy: send it again after a pause, in order.
            self.stats.retried += 1
            self._unsent = deque(sorted({seq, *self._unsent}))
            self._hold_until = asyncio.get_running_loop().time() + 1.0
            log.info("%s: seq %d refused (%s), will retry", self.device_id, seq, code)
        else:
            del self._pending[seq]
            self.stats.dropped += 1
            log.warning("%s: seq %d rejected (%s: %s), dropped", self.device_id, seq, code, detail)
            self._settle()
        self._wake.set()

    @property
    def _observed_rate(self) -> float | None:
        elapsed = asyncio.get_running_loop().time() - self._conn_started
        if self._conn_frames == 0 or elapsed <= 0:
            return None
        return self._conn_frames / elapsed

    def _settle(self) -> None:
        if not self._pending:
            self._drained.set()
        self._wake.set()
