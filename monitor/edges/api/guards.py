"""Guards at the login edge: the password hashing pool and the login limiter.

Argon2 is deliberately slow, so it never runs on the event loop that acknowledges devices:
``PasswordPool`` runs it in a few low-priority threads and refuses logins past a bounded queue.

``LoginLimiter`` counts failed logins per user name and per client address in a sliding
window. The check and the count are one atomic step (a reservation taken before the
password is verified and given back if it was right), so a burst of parallel attempts cannot
all pass the check before any is counted. With Redis the window lives there and holds across
instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from monitor.core.security import PasswordHashing, hash_password, token_hash, verify_password

log = logging.getLogger("vigil.security")


# --- hashing off the event loop --------------------------------------------------------------


class Busy(Exception):
    """More logins are waiting for a hashing thread than the queue allows."""


def _lower_priority() -> None:
    # Linux nice values are per thread, and argon2's own worker threads inherit this one's:
    # under a login flood the event loop (device acks) gets the CPU first.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class PasswordPool:
    """argon2 in ``workers`` threads (argon2-cffi releases the GIL); at most ``queue_max``
    logins waiting or running, past that ``Busy``."""

    def __init__(self, workers: int, queue_max: int, profile: PasswordHashing) -> None:
        self.profile = profile
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="vigil-argon2", initializer=_lower_priority
        )
        self.queue_max = queue_max
        self.pending = 0

    async def verify(self, stored: str, password: str) -> bool:
        if self.pending >= self.queue_max:
            raise Busy()
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, verify_password, stored, password)
        finally:
            self.pending -= 1

    async def hash(self, password: str) -> str:
        if self.pending >= self.queue_max:
            raise Busy()
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, hash_password, password, self.profile)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- failed-login limiter --------------------------------------------------------------------


class LimiterUnavailable(Exception):
    """The shared counter (Redis) cannot be reached: logins are refused, not let through."""


class LoginLimiter:
    """At most ``limits[i]`` failed attempts on ``keys[i]`` in ``window_s``.

    ``acquire(keys)`` either reserves one attempt on every key at once and returns a ticket,
    or reserves nothing and returns the seconds until a slot frees (for Retry-After). A
    reserved attempt counts as failed until ``release(ticket)`` gives it back (right
    password). The in-process version is atomic because nothing awaits between check and
    count; ``RedisLoginLimiter`` does the same in one Lua script.
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[str, list[tuple[float, str]]] = {}
        self._ids = itertools.count(1)
        self._tickets: dict[str, list[str]] = {}

    def _live(self, key: str, now: float) -> list[tuple[float, str]]:
        hits = self._hits.get(key)
        if hits is None:
            return []
        cut = now - self.window_s
        if hits and hits[0][0] <= cut:
            hits[:] = [h for h in hits if h[0] > cut]
        if not hits:
            del self._hits[key]
        return hits

    def _sweep(self, now: float) -> None:
        # Bounded memory under a spray of names or addresses: forget only what has expired,
        # never live counts (clearing everything would reopen the door to a guesser).
        if len(self._hits) > 50_000:
            for key in list(self._hits):
                self._live(key, now)

    async def acquire(self, keys: list[tuple[str, int]]) -> tuple[str | None, float]:
        now = self.clock()
        self._sweep(now)
        wait = 0.0
        for key, limit in keys:
            hits = self._live(key, now)
            if len(hits) >= limit:
                # The slot frees when the hit that put the count at the limit leaves the window.
                wait = max(wait, hits[len(hits) - limit][0] + self.window_s - now)
        if wait > 0:
            return None, wait
        ticket = str(next(self._ids))
        for key, _ in keys:
            self._hits.setdefault(key, []).append((now, ticket))
        self._tickets[ticket] = [k for k, _ in keys]
        return ticket, 0.0

    def peek(self, keys: list[tuple[str, int]]) -> float:
        """Seconds until a slot frees on the fullest key; 0 when every key has room. Reserves
        nothing: a cheap early refusal, the reservation in ``acquire`` stays the limit."""
        now = self.clock()
        wait = 0.0
        for key, limit in keys:
            hits = self._live(key, now)
            if len(hits) >= limit:
                wait = max(wait, hits[len(hits) - limit][0] + self.window_s - now)
        return wait

    async def release(self, ticket: str) -> None:
        for key in self._tickets.pop(ticket, []):
            hits = self._hits.get(key)
            if hits:
                hits[:] = [h for h in hits if h[1] != ticket]

    async def settle(self, ticket: str) -> None:
        """The attempt failed: it stays counted; forget only the ticket."""
        self._tickets.pop(ticket, None)

    async def aclose(self) -> None:
        return None


_ACQUIRE = """
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
  local limit = tonumber(ARGV[3 + i])
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local hit = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    local w = tonumber(hit[2]) + win - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, win)
end
return 0
"""


class RedisLoginLimiter:
    """The same window in Redis sorted sets, shared by every instance with the same prefix."""

    def __init__(self, url: str, prefix: str, window_s: float = 60.0) -> None:
        import redis.asyncio as aioredis

        self.window_s = window_s
        self.prefix = prefix
        self._redis: Any = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._acquire: Callable[..., Awaitable[Any]] = self._redis.register_script(_ACQUIRE)
        self._tickets: dict[str, list[str]] = {}

    def _key(self, key: str) -> str:
        return f"{self.prefix}:login:{token_hash(key)[:32]}"

    async def acquire(self, keys: list[tuple[str, int]]) -> tuple[str | None, float]:
        from redis.exceptions import RedisError

        ticket = secrets.token_hex(8)
        rkeys = [self._key(k) for k, _ in keys]
        now_ms = int(time.time() * 1000)
        win_ms = int(self.window_s * 1000)
        try:
            wait_ms = await self._acquire(
                keys=rkeys, args=[now_ms, win_ms, ticket, *[limit for _, limit in keys]]
            )
        except (RedisError, OSError) as e:
            raise LimiterUnavailable(str(e)) from e
        if int(wait_ms) > 0:
            return None, int(wait_ms) / 1000
        self._tickets[ticket] = rkeys
        return ticket, 0.0

    def peek(self, keys: list[tuple[str, int]]) -> float:
        # The shared window is in Redis: no early answer without a round trip, so the route's
        # atomic reservation answers every login here.
        return 0.0

    async def release(self, ticket: str) -> None:
        from redis.exceptions import RedisError

        keys = self._tickets.pop(ticket, [])
        try:
            pipe = self._redis.pipeline(transaction=False)
            for k in keys:
                pipe.zrem(k, ticket)
            await pipe.execute()
        except (RedisError, OSError):
            # The reservation then expires with the window: a right login costs one slot.
            log.warning("login limiter: could not give back a slot (Redis unreachable)")

    async def settle(self, ticket: str) -> None:
        self._tickets.pop(ticket, None)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def retry_after(wait_s: float) -> str:
    """Whole seconds for the Retry-After header, at least one."""
    return str(max(1, math.ceil(wait_s)))


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every ``/api/`` answer: they carry patient data (or
    tokens), and neither a browser nor a proxy may keep a copy. Pure ASGI, so websockets
    and streaming pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.append((b"cache-control", b"no-store"))
                headers.append((b"pragma", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
