"""Panel logins, kept where the monitor keeps them: the browser's cookie holds the monitor
access token itself, HttpOnly and SameSite=Strict (Secure under https), so script in the page
cannot read it (docs/security.md). The monitor's ``access_tokens`` table is the one store: a
panel asks it who a token is (``GET /api/auth/me``) and remembers the answer for a few
seconds, so a page load does not cost a round trip per callback.

So a panel restart, or a second panel behind the same proxy, keeps everyone logged in, and a
logout, an expiry or a disabled user ends the login on every panel: the panel that logged
out forgets it at once, the others within ``FRESH_S`` (and the monitor refuses the token
itself from the moment it is revoked, whatever a panel remembers).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from dashboard.client import MonitorClient, MonitorError
from monitor.core.model import parse_rfc3339

COOKIE = "vigil_session"
# How long a panel trusts what the monitor said about a token before asking again.
FRESH_S = 5.0
# At most this many tokens remembered; the least recently asked about goes first.
MAX_REMEMBERED = 10_000


def tag(token: str | None) -> str:
    """A public name for a login (not a secret: it opens nothing, and it is no prefix of the
    monitor's stored token hash). Each tab keeps the tag of the login it made; a cookie that
    now holds another login (someone else logged in in another tab of this browser) is then
    refused, not silently used."""
    if not token:
        return ""
    return hashlib.sha256(b"vigil-panel-tab\x00" + token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Session:
    """A login as the monitor knows it."""

    token: str
    username: str
    role: str | None
    expires_at: float  # epoch seconds


class Sessions:
    """What the monitor said about each token lately (the monitor decides; this remembers)."""

    def __init__(
        self,
        monitor: MonitorClient,
        *,
        fresh_s: float = FRESH_S,
        max_remembered: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monitor = monitor
        self.fresh_s = fresh_s
        self.max_remembered = max_remembered
        self.clock = clock
        self.wall = wall
        # token -> (monotonic time the answer is stale, the login or None for "refused")
        self._known: OrderedDict[str, tuple[float, Session | None]] = OrderedDict()
        # One question per token at a time: a page load's callbacks share the answer.
        self._asking: dict[str, asyncio.Future[Session | None]] = {}

    def remember(self, session: Session) -> None:
        """A login just made: the monitor's answer to the login is as good as asking."""
        self._put(session.token, session)

    async def get(self, token: str | None) -> Session | None:
        """The login the token is, or None (no token, refused, expired, or unknown)."""
        if not token:
            return None
        known = self._known.get(token)
        if known is not None and known[0] > self.clock():
            self._known.move_to_end(token)
            return self._live(known[1])
        asking = self._asking.get(token)
        if asking is None:
            asking = asyncio.get_running_loop().create_future()
            self._asking[token] = asking
            try:
                answer = await self._ask(token, known[1] if known else None)
            except BaseException:
                asking.cancel()  # those waiting on this question ask again next time
                raise
            finally:
                del self._asking[token]
            asking.set_result(answer)
            return self._live(answer)
        return self._live(await asyncio.shield(asking))

    def drop_token(self, token: str) -> None:
        """The token is no longer valid (logged out, or the monitor refused it)."""
        self._put(token, None)

    async def _ask(self, token: str, before: Session | None) -> Session | None:
        try:
            body = await self.monitor.get("/api/auth/me", token)
        except MonitorError as exc:
            if exc.status == 401:
                self._put(token, None)
                return None
            # The monitor cannot answer now (unreachable, failing): a login it confirmed
            # lately stands until it answers again or expires; nothing else is let in.
            return before
        try:
            session = Session(
                token=token,
                username=str(body["username"]),
                role=str(body["role"]) if body.get("role") is not None else None,
                expires_at=parse_rfc3339(body["expires_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # not the monitor's answer: let nobody in on it
        self._put(token, session)
        return session

    def _live(self, session: Session | None) -> Session | None:
        return session if session is not None and session.expires_at > self.wall() else None

    def _put(self, token: str, session: Session | None) -> None:
        self._known[token] = (self.clock() + self.fresh_s, session)
        self._known.move_to_end(token)
        while len(self._known) > self.max_remembered:
            self._known.popitem(last=False)
