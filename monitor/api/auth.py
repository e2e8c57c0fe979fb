"""Login (OAuth2 password flow) with a per-name and per-address attempt limit."""

from __future__ import annotations

import time
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status

from monitor.api import errors
from monitor.api.bodies import LoginForm
from monitor.api.deps import CurrentUser, MonitorDep, StrictRoute
from monitor.security import DUMMY_PASSWORD_HASH, verify_password

router = APIRouter(
    tags=["auth"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)


class AttemptLimiter:
    """Sliding one-minute window of failed attempts per key (user name, client address)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._fails: dict[str, deque[float]] = {}

    def blocked(self, key: str, now: float) -> bool:
        q = self._fails.get(key)
        if not q:
            return False
        while q and q[0] < now - 60:
            q.popleft()
        return len(q) >= self.per_minute

    def fail(self, key: str, now: float) -> None:
        if len(self._fails) > 100_000:
            self._fails.clear()
        self._fails.setdefault(key, deque()).append(now)


@router.post("/api/auth/token", responses=errors.responses(429))
async def login(
    request: Request,
    monitor: MonitorDep,
    form: Annotated[LoginForm, Form()],
) -> dict[str, Any]:
    limiter: AttemptLimiter = request.app.state.login_limiter
    now = time.monotonic()
    addr = request.client.host if request.client else "?"
    keys = (f"user:{form.username}", f"addr:{addr}")
    if any(limiter.blocked(k, now) for k in keys):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; wait a minute"
        )
    user = await monitor.store.user_by_name(form.username)
    ok = verify_password(user.password_hash if user else DUMMY_PASSWORD_HASH, form.password)
    if user is None or not ok or user.disabled:
        for k in keys:
            limiter.fail(k, now)
        await monitor.store.audit("login_failed", actor=form.username[:64], target=addr)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            {"WWW-Authenticate": "Bearer"},
        )
    ttl = monitor.settings.access_token_ttl_s
    token = await monitor.store.create_access_token(user.id, monitor.clock(), ttl)
    await monitor.store.audit("login", actor=user.name, target=addr)
    return {
        "access_token": token,
        "token_type": "bearer",
        "username": user.name,
        "role": user.role,
        "expires_in": ttl,
    }


@router.get("/api/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"username": user.name, "role": user.role}
