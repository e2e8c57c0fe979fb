"""Load generators: run in their own process (never the server's), loopback only, bounded.

The device side is a minimal websocket client written on asyncio's Protocol (RFC 6455
client frames with a zero mask key, no extensions): with thousands of connections or a flood,
a full client library would spend more CPU than the server it measures, on the same 2 cores.
Frames are built with monitor.wire.device's encoders, the one wire format.

Entry points take and return plain dicts so they cross a process boundary:
``flood`` (throughput), ``paced`` (beds at 1 Hz, ramped; latencies, alarms), ``warp_ward``
(the simulators' ward with time warp, for the memory run).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from monitor.wire.device import encode_reading

# --- a minimal websocket client -------------------------------------------------------


class WSClosed(ConnectionError):
    pass


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame; the zero mask key leaves the payload as it is (RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class RawWS(asyncio.Protocol):
    """Just enough of a websocket client: handshake, text frames in and out, ping, close."""

    def __init__(
        self, host: str, port: int, path: str, token: str | None, on_text: Callable[[bytes], None]
    ) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
            + "\r\n"
        ).encode()
        self.on_text = on_text
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.handshaken = False
        self.rx_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(WSClosed("connection lost during the handshake"))
        if not self.closed.done():
            self.closed.set_result(1006)

    def send(self, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise WSClosed("not connected")
        self.transport.write(client_frame(payload))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame((1000).to_bytes(2, "big"), 0x8))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.rx_bytes += len(data)
        buf = self.buf
        buf += data
        pos = 0
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self.opened.set_exception(WSClosed(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.handshaken = True
            self.opened.set_result(None)
            pos = end + 4
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln = b1 & 0x7F
            hdr = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if n - pos < hdr + ln:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + ln])
            pos += hdr + ln
            op = b0 & 0x0F
            if op == 0x1:
                self.on_text(payload)
            elif op == 0x9 and self.transport is not None and not self.transport.is_closing():
                self.transport.write(client_frame(payload, 0xA))
            elif op == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(code)
                if self.transport is not None:
                    self.transport.close()
        del buf[:pos]


async def open_ws(
    host: str,
    port: int,
    path: str,
    token: str | None,
    on_text: Callable[[bytes], None],
    within_s: float = 30.0,
) -> RawWS:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: RawWS(host, port, path, token, on_text), host, port),
        within_s,
    )
    await asyncio.wait_for(proto.opened, within_s)
    return proto


def _split(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load generators only talk to loopback addresses")
    return host, int(port)


def _use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --- devices ----------------------------------------------------------------------------

NORMAL = {"hr": 72.0, "spo2": 97.0, "rr": 14.0}
CUFF_HIGH = {"sbp": 210.0, "dbp": 100.0, "map": 137.0}
CUFF_NORMAL = {"sbp": 120.0, "dbp": 80.0, "map": 93.0}
SPO2_LOW = {"hr": 75.0, "spo2": 80.0, "rr": 14.0}
SPO2_CYCLE = 20
SPO2_LOW_FROM, SPO2_COMPLETES = 5, 15  # below 85 % from the 5th reading; 10 s later: alarm


def values_for(kind: str, n: int) -> tuple[dict[str, float], str | None, bool]:
    """What device ``kind`` sends as its n-th reading: (values, source, completes an alarm).

    cuff:  every 4 s a cuff reading of systolic 210 (no delay on cuff signals: that reading
           completes a high alarm), 2 s later a normal one that clears it.
    spo2:  every 20 s, SpO2 80 % for 11 readings: the one 10 s after the first completes the
           high alarm's 10 s delay (device time); then 97 % clears it.
    """
    if kind == "cuff":
        if n % 4 == 0:
            return CUFF_HIGH, "nibp", True
        if n % 4 == 2:
            return CUFF_NORMAL, "nibp", False
        return NORMAL, None, False
    if kind == "spo2":
        k = n % SPO2_CYCLE
        if SPO2_LOW_FROM <= k <= SPO2_COMPLETES:
            return SPO2_LOW, None, k == SPO2_COMPLETES
        return NORMAL, None, False
    return NORMAL, None, False


class Dev:
    __slots__ = (
        "id",
        "bed",
        "token",
        "kind",
        "ws",
        "seq",
        "sent",
        "unfed",
        "phase",
        "alarm_sent",
        "acks",
        "errors",
        "closed_code",
        "active",
    )

    def __init__(self, device_id: str, bed: str, token: str, kind: str, phase: float) -> None:
        self.id, self.bed, self.token, self.kind, self.phase = device_id, bed, token, kind, phase
        self.ws: RawWS | None = None
        self.seq = 0
        # Send times by seq: one map for the ack, one for the feed, each emptied by its own
        # answer, whichever of the two arrives first.
        self.sent: dict[int, float] = {}
        self.unfed: dict[int, float] = {}
        self.alarm_sent: float | None = None
        self.acks = 0
        self.errors = 0
        self.closed_code: int | None = None
        self.active = False


class Recorder:
    """Latencies of frames sent inside the measurement window only."""

    def __init__(self) -> None:
        self.window: tuple[float, float] | None = None
        self.ack_lat: list[float] = []
        self.feed_lat: list[float] = []
        self.alarm_lat: dict[str, list[float]] = {"cuff": [], "spo2": []}
        self.sent = 0
        self.acked = 0
        self.fed = 0
        self.unexpected_alarms = 0
        self.errors: dict[str, int] = {}

    def inside(self, t: float) -> bool:
        w = self.window
        return w is not None and w[0] <= t < w[1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    s = sorted(values)

    def at(p: float) -> float:
        return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))] * 1000

    return {"n": len(s), "p50_ms": at(50), "p99_ms": at(99), "max_ms": s[-1] * 1000}


class Ward:
    """Devices at 1 Hz (each in its own phase of the second) plus one panel-like feed reader."""

    def __init__(self, url: str, feed_token: str | None) -> None:
        self.host, self.port = _split(url)
        self.feed_token = feed_token
        self.devs: list[Dev] = []
        self.by_id: dict[str, Dev] = {}
        self.by_bed: dict[str, Dev] = {}
        self.rec = Recorder()
        self.loop = asyncio.get_running_loop()
        # Whole seconds, in the past: ts = t0 + n is never ahead of the moment it is sent.
        self.t0 = float(math.floor(time.time()))
        self.seen_alarms: set[str] = set()
        self.feed: RawWS | None = None
        self.feed_msgs = 0
        self._ticker: asyncio.Task[None] | None = None

    # feed side
    def on_feed(self, raw: bytes) -> None:
        now = time.perf_counter()
        msg = orjson.loads(raw)
        if msg.get("type") == "batch":
            for one in msg["messages"]:
                self.on_message(one, now)
        else:
            self.on_message(msg, now)

    def on_message(self, msg: dict[str, Any], now: float) -> None:
        self.feed_msgs += 1
        kind = msg.get("type")
        if kind == "reading":
            dev = self.by_id.get(msg["device_id"])
            if dev is None:
                return
            t = dev.unfed.pop(msg["seq"], None)
            if t is not None and self.rec.inside(t):
                self.rec.fed += 1
                self.rec.feed_lat.append(now - t)
        elif kind == "alarm":
            a = msg["alarm"]
            if a["id"] in self.seen_alarms or a.get("ended_at") or a.get("state") == "ended":
                return
            self.seen_alarms.add(a["id"])
            dev = self.by_bed.get(a["bed"])
            if dev is None or dev.kind == "normal":
                self.rec.unexpected_alarms += 1
                return
            if dev.alarm_sent is not None:
                if self.rec.inside(dev.alarm_sent):
                    self.rec.alarm_lat[dev.kind].append(now - dev.alarm_sent)
                dev.alarm_sent = None

    async def open_feed(self) -> None:
        if self.feed_token is None:
            return
        # As the panel's relay opens it: readings waiting together come in one frame.
        path = f"/ws/feed?token={quote(self.feed_token)}&batch=1"
        self.feed = await open_ws(self.host, self.port, path, None, self.on_feed, within_s=120)

    # device side
    def _on_device(self, dev: Dev) -> Callable[[bytes], None]:
        def on_text(raw: bytes) -> None:
            rec = self.rec
            now = time.perf_counter()
            msg = orjson.loads(raw)
            seq = msg.get("seq")
            if msg.get("type") == "ack":
                dev.acks += 1
                t = dev.sent.pop(seq, None)
                if t is not None and rec.inside(t):
                    rec.acked += 1
                    rec.ack_lat.append(now - t)
            else:
                dev.errors += 1
                code = str(msg.get("code"))
                rec.errors[code] = rec.errors.get(code, 0) + 1

        return on_text

    async def add(self, devices: list[tuple[str, str, str, str]], concurrency: int = 64) -> None:
        sem = asyncio.Semaphore(concurrency)
        new: list[Dev] = []
        for device_id, bed, token, kind in devices:
            # Spread over the second, so 1 Hz devices do not all speak at once.
            phase = (len(self.devs) * 0.618034) % 1.0
            dev = Dev(device_id, bed, token, kind, phase)
            self.devs.append(dev)
            self.by_id[device_id] = dev
            self.by_bed[bed] = dev
            new.append(dev)

        async def one(dev: Dev) -> None:
            async with sem:
                dev.ws = await open_ws(
                    self.host,
                    self.port,
                    "/ws/device",
                    dev.token,
                    self._on_device(dev),
                    within_s=120,
                )
                # Start at the next whole second of this device's schedule.
                dev.seq = max(0, math.ceil(time.time() - self.t0 - dev.phase))
                dev.active = True

        await asyncio.gather(*(one(d) for d in new))
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """Every 5 ms send what is due: device i sends reading n at t0 + n + phase_i."""
        while True:
            rec = self.rec
            wall = time.time()
            now = time.perf_counter()
            for dev in self.devs:
                if not dev.active:
                    continue
                due = self.t0 + dev.seq + dev.phase
                if due > wall:
                    continue
                n = dev.seq
                values, source, completes = values_for(dev.kind, n)
                # Whole seconds of device time: delays are judged on device time exactly.
                frame = encode_reading(dev.id, n + 1, self.t0 + n, values, source)
                ws = dev.ws
                assert ws is not None
                try:
                    ws.send(frame.encode())
                except WSClosed:
                    dev.active = False
                    dev.closed_code = ws.closed.result() if ws.closed.done() else 1006
                    continue
                dev.sent[n + 1] = now
                if self.feed is not None:
                    dev.unfed[n + 1] = now
                dev.seq = n + 1
                if completes:
                    dev.alarm_sent = now
                if rec.inside(now):
                    rec.sent += 1
            await asyncio.sleep(0.005)

    async def measure(self, warmup_s: float, duration_s: float) -> dict[str, Any]:
        await asyncio.sleep(warmup_s)
        for d in self.devs:
            d.sent.clear()
            d.unfed.clear()
        self.rec = rec = Recorder()
        cpu0, t0 = time.process_time(), time.perf_counter()
        w0 = time.time()
        rec.window = (t0, t0 + duration_s)
        await asyncio.sleep(duration_s)
        # Give late answers to frames sent at the end of the window a moment to arrive.
        await asyncio.sleep(min(2.0, duration_s))
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - t0)
        active = sum(1 for d in self.devs if d.active)
        return {
            "beds": len(self.devs),
            "window": (w0, w0 + duration_s),
            "active": active,
            "sent": rec.sent,
            "acked": rec.acked,
            "fed": rec.fed,
            "expected": round(active * duration_s),
            "ack": summary(rec.ack_lat),
            "feed": summary(rec.feed_lat) if self.feed is not None else None,
            "alarm": {k: summary(v) for k, v in rec.alarm_lat.items()},
            "unexpected_alarms": rec.unexpected_alarms,
            "errors": rec.errors,
            "client_cpu": round(cpu, 2),
        }

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for d in self.devs:
            if d.ws is not None:
                d.ws.close()
        if self.feed is not None:
            self.feed.close()
        await asyncio.sleep(0.2)


def _kinds(cfg: dict[str, Any], devices: list[list[str]]) -> list[tuple[str, str, str, str]]:
    kinds = cfg.get("kinds") or {}
    return [(d, b, t, kinds.get(d, "normal")) for d, b, t in devices]


def paced(cfg: dict[str, Any]) -> dict[str, Any]:
    """Beds at 1 Hz, ramped through ``steps`` (cumulative bed counts).

    cfg: url, devices [[id, bed, token]...], feed_token, steps [int], warmup_s, duration_s,
    kinds {device_id: normal|cuff|spo2}, stop_when {"p99_ms": x} (stop after the first failing
    step). Returns {"steps": [measurement, ...]}.
    """
    _use_uvloop()

    async def run() -> dict[str, Any]:
        ward = Ward(cfg["url"], cfg.get("feed_token"))
        devices = _kinds(cfg, cfg["devices"])
        limit = (cfg.get("stop_when") or {}).get("p99_ms")
        out: list[dict[str, Any]] = []
        try:
            await ward.open_feed()
            for n in cfg["steps"]:
                have = len(ward.devs)
                t_conn = time.monotonic()
                await ward.add(devices[have:n])
                connect_s = time.monotonic() - t_conn
                m = await ward.measure(cfg["warmup_s"], cfg["duration_s"])
                m["connect_s"] = round(connect_s, 1)
                out.append(m)
                if limit is not None and not passes(m, limit):
                    break
        finally:
            await ward.close()
        return {"steps": out}

    return asyncio.run(run())


def passes(m: dict[str, Any], p99_ms: float) -> bool:
    """A step holds when every bed kept its 1 Hz, nearly all frames were answered in the
    window, nothing was refused, and both p99s are within the limit."""
    if m["active"] < m["beds"] or m["errors"]:
        return False
    # A device due within a tick of the window edges may fall either side of it.
    if m["sent"] < 0.97 * m["expected"] - 2 or m["acked"] < 0.99 * m["sent"]:
        return False
    if not m["ack"]["p99_ms"] <= p99_ms:
        return False
    feed = m.get("feed")
    return feed is None or (feed["p99_ms"] <= p99_ms and m["fed"] >= 0.99 * m["sent"])


# --- flood: throughput ----------------------------------------------------------------------


def flood(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every connection keeps ``window`` readings in flight; each ack releases the next one.

    cfg: url, devices [[id, bed, token]...], window, warmup_s, duration_s, feed_token (optional).
    Returns acks/s over the window (after warm-up) and the feed messages/s the panel received.
    """
    _use_uvloop()

    async def run() -> dict[str, Any]:
        host, port = _split(cfg["url"])
        window = int(cfg["window"])
        counting = False
        acks = 0
        errors: dict[str, int] = {}
        feed_count = 0
        conns: list[RawWS] = []
        feed: RawWS | None = None
        seqs = [0] * len(cfg["devices"])
        t_base = time.time()

        def on_feed(raw: bytes) -> None:
            nonlocal feed_count
            if counting:
                # A batch frame (the panel's relay asks for them) counts what it holds.
                feed_count += raw.count(b'{"type":"reading"') or 1

        def make(i: int, device_id: str) -> Callable[[bytes], None]:
            def on_text(raw: bytes) -> None:
                nonlocal acks
                if raw.startswith(b'{"type":"ack"'):
                    if counting:
                        acks += 1
                else:
                    code = str(orjson.loads(raw).get("code"))
                    errors[code] = errors.get(code, 0) + 1
                seqs[i] += 1
                # Device time advances 1 µs a frame from the start: never in the future.
                ws = conns[i]
                with contextlib.suppress(WSClosed):
                    ws.send(
                        encode_reading(device_id, seqs[i], t_base + seqs[i] / 1e6, NORMAL).encode()
                    )

            return on_text

        if cfg.get("feed_token"):
            feed = await open_ws(
                host, port, f"/ws/feed?token={quote(cfg['feed_token'])}&batch=1", None, on_feed
            )
        for i, (device_id, _bed, token) in enumerate(cfg["devices"]):
            conns.append(await open_ws(host, port, "/ws/device", token, make(i, device_id)))
        for i, (device_id, _bed, _token) in enumerate(cfg["devices"]):
            for _ in range(window):
                seqs[i] += 1
                conns[i].send(
                    encode_reading(device_id, seqs[i], t_base + seqs[i] / 1e6, NORMAL).encode()
                )
        await asyncio.sleep(cfg["warmup_s"])
        counting = True
        w0 = time.time()
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(cfg["duration_s"])
        counting = False
        elapsed = time.monotonic() - t0
        cpu = (time.process_time() - cpu0) / elapsed
        # The monitor closes a panel that fell behind: then the figure is void.
        panel_dropped = feed is not None and feed.closed.done()
        for c in conns:
            c.close()
        if feed is not None:
            feed.close()
        await asyncio.sleep(0.2)
        return {
            "window": (w0, w0 + elapsed),
            "acks_per_s": acks / elapsed,
            "panel_dropped": panel_dropped,
            "feed_per_s": feed_count / elapsed,
            "errors": errors,
            "client_cpu": round(cpu, 2),
        }

    return asyncio.run(run())


# --- the simulators' ward with time warp ----------------------------------------------------


def warp_ward(cfg: dict[str, Any]) -> dict[str, Any]:
    """The simulators' ward (patients, scenarios, cuff, nurse driving sessions) at ``speed``.

    cfg: url, api, tokens {device_id: token}, beds, speed, device_hours, state_dir, user, password.
    Device time starts ``device_hours`` in the past and runs until it reaches the present.
    """
    _use_uvloop()
    import logging
    from pathlib import Path

    # The scenarios' artefacts are rejected on purpose; one warning each would flood stderr.
    logging.getLogger("simulators").setLevel(logging.ERROR)

    from simulators.demo import run_demo
    from simulators.nurse import Nurse

    async def run() -> dict[str, Any]:
        nurse = Nurse(cfg["api"], cfg["user"], cfg["password"])
        await nurse.login()
        backlog = cfg["device_hours"] * 3600.0
        task = asyncio.create_task(
            run_demo(
                beds=cfg["beds"],
                url=cfg["url"],
                tokens=cfg["tokens"],
                speed=cfg["speed"],
                seed=cfg.get("seed", 0),
                nurse=nurse,
                state_dir=Path(cfg["state_dir"]),
                backlog_s=backlog,
                status_every_s=3600.0,
            )
        )
        t0 = time.monotonic()
        await asyncio.wait({task}, timeout=backlog / cfg["speed"])
        elapsed = time.monotonic() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return {"wall_s": elapsed}

    return asyncio.run(run())
