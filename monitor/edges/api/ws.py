"""Websocket edges: devices push readings in, panels receive the feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from monitor.core.errors import Unavailable
from monitor.core.faults import Point
from monitor.pipeline.service import Monitor
from monitor.wire import device as proto
from monitor.wire import feed

router = APIRouter()
log = logging.getLogger("vigil.ws")

# Acks waiting for their commit, per connection; past this the monitor stops reading the
# socket, so a device bursting a backlog is slowed by TCP rather than by memory.
MAX_IN_FLIGHT = 2000


def bearer(ws: WebSocket) -> str | None:
    auth = ws.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return ws.query_params.get("token") or None


def _too_large(data: str | bytes | None, limit: int) -> bool:
    """Whether a frame's UTF-8 size passes ``limit``; small frames are never encoded to check."""
    if data is None:
        return False
    if isinstance(data, bytes):
        return len(data) > limit
    return len(data) > limit or (
        len(data) * 4 > limit and len(data.encode("utf-8", "replace")) > limit
    )


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    # Keep reading while closing: with a flooder's frames filling the socket's queue the
    # transport stops reading, misses the answering close frame and holds the connection
    # for the whole close timeout (10 s) instead of a round trip.
    drain = asyncio.create_task(_drain(ws))
    try:
        with contextlib.suppress(Exception):
            if ws.application_state != WebSocketState.DISCONNECTED:
                await ws.close(code=code, reason=reason)
    finally:
        drain.cancel()


@router.websocket("/ws/device")
async def device_socket(ws: WebSocket) -> None:
    monitor: Monitor = ws.app.state.monitor
    settings = monitor.settings
    token = bearer(ws)
    await ws.accept()
    dev = await monitor.store.device_by_token(token) if token else None
    if dev is None or dev.revoked:
        log.info("device connection refused: invalid or revoked token")
        await _close(ws, 1008, "invalid or revoked device token")
        return
    device_id, bed_id = dev.id, dev.bed_id
    # Its bed history, once per connection: each reading then goes to the bed of its own
    # measurement time without a query (monitor.core.bindings). A rebinding through the API
    # refreshes it during the connection (Monitor.device_rebound).
    await monitor.load_bindings(device_id)
    monitor.attach_device(device_id, ws)
    await monitor.device_seen(bed_id, device_id)
    loop = asyncio.get_running_loop()
    out = AnswerLine(loop)
    sender = asyncio.create_task(out.send_all(ws, monitor))
    bucket = TokenBucket(settings.device_rate_per_s, settings.device_rate_burst, loop.time())
    # One watchdog per connection rather than a wait_for per frame (a task each on 3.11).
    idle = _IdleWatch(loop, settings.device_idle_timeout_s)
    watchdog = asyncio.create_task(idle.expire(ws, device_id))
    try:
        while True:
            msg = await ws.receive()
            idle.last = loop.time()
            if msg["type"] == "websocket.disconnect":
                if idle.expired:
                    return
                if msg.get("code") not in (1000, 1001, 1005, None):
                    # E.g. the transport failing a frame over the size limit (1009).
                    log.info("device %s connection lost (code %s)", device_id, msg.get("code"))
                return
            if not bucket.take(loop.time()):
                log.warning("device %s closed: rate limit exceeded", device_id)
                await out.put(proto.encode_error(proto.ErrorCode.RATE_LIMITED, "too many frames"))
                await out.put(None)
                await sender
                await _close(ws, 1008, "rate limit exceeded")
                return
            text = msg.get("text")
            if _too_large(text if text is not None else msg.get("bytes"), settings.frame_max_bytes):
                log.warning("device %s closed: frame over the size limit", device_id)
                await out.put(None)
                await sender
                await _close(ws, 1009, f"frame over the {settings.frame_max_bytes} byte limit")
                return
            if text is None:
                log.info("device %s frame rejected: %s", device_id, proto.ErrorCode.BINARY_FRAME)
                await out.put(
                    proto.encode_error(proto.ErrorCode.BINARY_FRAME, "frames must be text (JSON)")
                )
                await monitor.rejected(bed_id, device_id, proto.ErrorCode.BINARY_FRAME)
                continue
            now = monitor.clock()
            try:
                parsed = proto.parse_frame(text, device_id=device_id, now=now)
            except proto.ProtocolError as e:
                log.info("device %s frame rejected: %s", device_id, e.code)
                await out.put(proto.encode_error(e.code, e.detail, e.seq))
                await monitor.rejected(bed_id, device_id, e.code)
                continue
            # Signs of life count for the bed the device is bound to now.
            bed_id = monitor.bindings.current(device_id) or bed_id
            await monitor.device_seen(bed_id, device_id)
            if isinstance(parsed, proto.HeartbeatMsg):
                continue
            reading = monitor.make_reading(
                device_id=device_id,
                bed_id=bed_id,
                seq=parsed.seq,
                ts=parsed.ts,
                values=parsed.values,
                source=parsed.source,  # ingest names a cuff reading's source (Ingest.reading)
                received_at=now,
            )
            await out.put((parsed.seq, monitor.submit(reading)))
    except WebSocketDisconnect:
        return
    finally:
        watchdog.cancel()
        monitor.detach_device(device_id, ws)
        if not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


class _IdleWatch:
    """Closes a device socket (1001) once nothing has arrived for ``timeout`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.last = loop.time()
        self.expired = False

    async def expire(self, ws: WebSocket, device_id: str) -> None:
        while True:
            left = self.last + self.timeout - self.loop.time()
            if left <= 0:
                break
            await asyncio.sleep(left)
        self.expired = True
        log.info("device %s closed: idle past the timeout", device_id)
        await _close(ws, 1001, "idle: nothing received within the idle timeout")


class AnswerLine:
    """One device connection's answers, sent in the order its frames came: an ack once its
    reading is committed (or ``unavailable`` if it could not be), an error at once but after
    the answers before it. The sender waits on one future, woken by a new error or by a
    reading's commit (a done callback): a queue get and then an await of the commit cost two
    task wake-ups a reading (docs/performance.md, "Acks")."""

    __slots__ = ("items", "_loop", "_waiter", "_space")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: deque[tuple[int, asyncio.Future[None]] | str | None] = deque()
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None

    async def put(self, item: tuple[int, asyncio.Future[None]] | str | None) -> None:
        """Queue an answer (None: the sender ends after those before it); waits while
        MAX_IN_FLIGHT are unanswered, so the socket is not read meanwhile."""
        while len(self.items) >= MAX_IN_FLIGHT:
            self._space = self._loop.create_future()
            await self._space
        self.items.append(item)
        if isinstance(item, tuple):
            item[1].add_done_callback(self._wake)
        else:
            self._wake()

    def _wake(self, _: object = None) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _pop(self) -> None:
        self.items.popleft()
        s = self._space
        if s is not None and not s.done():
            s.set_result(None)

    async def send_all(self, ws: WebSocket, monitor: Monitor) -> None:
        """The sender: every answer whose turn has come, then wait for the next."""
        items = self.items
        while True:
            while items:
                item = items[0]
                if isinstance(item, tuple):
                    seq, fut = item
                    if not fut.done():
                        break  # the head's commit comes first: acks stay in order
                    self._pop()
                    if fut.cancelled():
                        return  # the monitor is shutting down
                    exc = fut.exception()
                    if exc is None:
                        await ws.send_text(proto.encode_ack(seq))
                        monitor.faults.hit(Point.AFTER_ACK)
                    elif isinstance(exc, Unavailable):
                        await ws.send_text(
                            proto.encode_error(proto.ErrorCode.UNAVAILABLE, str(exc), seq)
                        )
                    else:
                        raise exc
                else:
                    self._pop()
                    if item is None:
                        return
                    await ws.send_text(item)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


# Feed close reason when the login behind it ends (logout, expiry, user disabled).
LOGIN_ENDED = "login ended: token revoked or expired, or user disabled"


async def _first_message_token(ws: WebSocket, wait_s: float) -> str | None:
    """Browsers cannot set headers on a websocket: they send ``{"type": "auth", ...}`` first."""
    try:
        async with asyncio.timeout(wait_s):
            msg = await ws.receive()
    except (TimeoutError, RuntimeError, WebSocketDisconnect):
        return None
    if msg.get("type") != "websocket.receive":
        return None
    return feed.parse_auth(msg.get("text"))


async def _watch_login(monitor: Monitor, token: str) -> str:
    """Returns (a close reason) once the token stops being valid: it is re-checked in storage
    every ``feed_auth_check_s``, so a logout or a disable on any instance reaches every
    socket, well within the 5 s docs/security.md promises."""
    every = monitor.settings.feed_auth_check_s
    while True:
        await asyncio.sleep(every)
        try:
            user = await monitor.store.user_by_access_token(token, monitor.clock())
        except Exception:
            # Storage trouble is /health's to report; a panel going dark would not help.
            log.warning("feed login check failed; keeping the socket until the next check")
            continue
        if user is None:
            return LOGIN_ENDED


@router.websocket("/ws/feed")
async def feed_socket(ws: WebSocket) -> None:
    monitor: Monitor = ws.app.state.monitor
    token = bearer(ws)
    await ws.accept()
    if token is None:
        token = await _first_message_token(ws, monitor.settings.auth_timeout_s)
    user = await monitor.store.user_by_access_token(token, monitor.clock()) if token else None
    if user is None or token is None:
        log.info("feed connection refused: invalid or expired token")
        await _close(ws, 1008, "invalid or expired token")
        return
    client = monitor.hub.register(f"{user.name}@{ws.client.host if ws.client else '?'}")
    # Opt-in (docs/protocol.md, "Panel feed"): what waits when the sender wakes goes out as
    # one frame. Under load a frame per reading was a fifth of the monitor's CPU.
    batching = ws.query_params.get("batch") == "1"
    limit = monitor.settings.frame_max_bytes
    reader = asyncio.create_task(_drain(ws, limit))
    watch = asyncio.create_task(_watch_login(monitor, token))
    try:
        # Registered before the snapshot is taken, so nothing falls between the two.
        now = monitor.clock()
        beds = await monitor.beds_json()
        await ws.send_text(feed.hello_message(now, beds, monitor.health.failing(now)))
        loop = asyncio.get_running_loop()
        # A panel gone or a login ended stops the sender as a queued message wakes it.
        reader.add_done_callback(client.stop)
        watch.add_done_callback(client.stop)
        # One timeout for the connection, armed around each send (10 s) rather than made
        # anew for each message; when it fires the panel is dropped as too slow.
        try:
            async with asyncio.timeout(None) as send_deadline:
                while (message := await client.next(loop)) is not None:
                    if batching and client.pending:
                        message = feed.batch_message([message, *client.take(feed.BATCH_MAX - 1)])
                    send_deadline.reschedule(loop.time() + 10.0)
                    await ws.send_text(message)
                    send_deadline.reschedule(None)
        except TimeoutError:
            client.drop("too slow: a send to the panel timed out")
        if client.is_dropped:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send_text(feed.bye_message(client.reason)), 1.0)
            await _close(ws, 1013, client.reason[:100])
            return
        if watch.done():
            # No bye first: the panel must see the 1008 (and stop reconnecting with this token).
            log.info("feed client %s closed: %s", client.name, LOGIN_ENDED)
            await _close(ws, 1008, watch.result())
            return
        if reader.result():
            log.info("feed client %s closed: frame over the size limit", client.name)
            await _close(ws, 1009, f"frame over the {limit} byte limit")
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        monitor.hub.unregister(client)
        reader.cancel()
        watch.cancel()


async def _drain(ws: WebSocket, limit: int | None = None) -> bool:
    """Read and discard what a panel sends; ends when the panel goes away (False) or, with
    ``limit``, at the first frame over it (True)."""
    with contextlib.suppress(Exception):
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return False
            if limit is not None and _too_large(msg.get("text") or msg.get("bytes"), limit):
                return True
    return False
