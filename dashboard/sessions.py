"""Panel logins, held by the panel server: the browser gets only a random session id, in an
HttpOnly, SameSite=Strict cookie (Secure under https). The monitor's access token never
reaches the page, so script injected into it has no token to steal (docs/security.md).

Sessions live in this process's memory: a panel restart asks everyone to log in again, which
costs a nurse a few seconds and keeps no secret on disk.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "vigil_session"
MAX_SESSIONS = 10_000


def tag(sid: str | None) -> str:
    """A public name for a session (not a secret: it opens nothing). Each tab keeps the tag of
    the session it logged in with; a cookie that now names another session (someone else
    logged in in another tab of this browser) is then refused, not silently used."""
    return hashlib.sha256((sid or "").encode()).hexdigest()[:16] if sid else ""


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    username: str
    role: str | None
    expires_at: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, token: str, username: str, role: str | None, ttl_s: float) -> str:
        now = self.clock()
        if len(self._by_id) >= MAX_SESSIONS:
            self._sweep(now)
        if len(self._by_id) >= MAX_SESSIONS:
            # Full of live sessions: the oldest-created goes (its user logs in again).
            self._by_id.pop(next(iter(self._by_id)))
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(token, username, role, now + ttl_s)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is not None and s.expires_at <= self.clock():
            del self._by_id[sid]
            return None
        return s

    def drop(self, sid: str | None) -> Session | None:
        return self._by_id.pop(sid, None) if sid else None

    def drop_token(self, token: str) -> None:
        """Forget every session holding ``token`` (the monitor said it is no longer valid)."""
        for sid in [k for k, s in self._by_id.items() if s.token == token]:
            del self._by_id[sid]

    def _sweep(self, now: float) -> None:
        for sid in [k for k, s in self._by_id.items() if s.expires_at <= now]:
            del self._by_id[sid]
