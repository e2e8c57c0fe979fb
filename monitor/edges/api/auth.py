"""Login (OAuth2 password flow) with an atomic attempt limit, and logout.

The limit is taken before anything is awaited: a reservation on the user name and on the
client address at once (``monitor.core.security.LoginLimiter``), given back only when the password
was right. So however many wrong attempts arrive together, at most the limit of them reach
the password check; the rest get 429 with Retry-After. The password check runs in a thread
pool, never on the event loop that acknowledges devices. The client address is the
connection's, or what a trusted proxy (``--forwarded-allow-ips``) says it is.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status

from monitor.core.errors import ErrorCode
from monitor.core.model import to_rfc3339
from monitor.core.security import PasswordHashing, dummy_password_hash
from monitor.edges.api import errors
from monitor.edges.api.bodies import LoginForm
from monitor.edges.api.deps import CurrentUser, MonitorDep, StrictRoute, oauth2
from monitor.edges.api.errors import ApiError
from monitor.edges.api.guards import (
    Busy,
    LimiterUnavailable,
    LoginLimiter,
    PasswordPool,
    RedisLoginLimiter,
    retry_after,
)
from monitor.settings import Settings

router = APIRouter(
    tags=["auth"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON)
)

WINDOW_S = 60.0


class LoginGuard:
    """What a login needs besides the store: the limiter and the hashing threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limiter: LoginLimiter | RedisLoginLimiter = (
            RedisLoginLimiter(settings.redis_url, settings.redis_prefix, WINDOW_S)
            if settings.redis_url
            else LoginLimiter(WINDOW_S)
        )
        self.pool = PasswordPool(
            settings.login_hash_workers,
            settings.login_queue_max,
            PasswordHashing(settings.login_hash_profile),
        )

    def keys(self, username: str, addr: str) -> list[tuple[str, int]]:
        return [
            (f"user:{username}", self.settings.login_attempts_per_minute),
            (f"addr:{addr}", self.settings.login_attempts_per_address_per_minute),
        ]

    async def aclose(self) -> None:
        self.pool.close()
        await self.limiter.aclose()


LOGIN_PATH = "/api/auth/token"
_GATE_BODY_MAX = 16 * 1024


TOO_MANY_MESSAGE = "too many failed logins; wait and try again"


def _too_many_body(wait_s: float) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The route's 429 (``_too_many``), written out by hand: the gate answers before FastAPI."""
    body = orjson.dumps(
        {"detail": {"code": ErrorCode.TOO_MANY_LOGINS.value, "message": TOO_MANY_MESSAGE}}
    )
    return body, [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after(wait_s).encode()),
    ]


class LoginGate:
    """Answers a login whose name or address is already at its limit with 429 before FastAPI
    parses anything. Under a flood most attempts are such refusals, and this way each costs
    the event loop (which acknowledges devices) a fraction of a full request. The limit
    itself stays the route's atomic reservation; this only answers early what it would."""

    def __init__(self, app: Any, guard: LoginGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != LOGIN_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if not ctype.startswith(b"application/x-www-form-urlencoded"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= _GATE_BODY_MAX:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
        if not more:
            try:
                fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)
            except ValueError:
                # Too many fields: not a login this gate can read; the route refuses it (422).
                fields = {}
            name = (fields.get("username") or [""])[0]
            addr = scope["client"][0] if scope.get("client") else "?"
            wait = self.guard.limiter.peek(self.guard.keys(name, addr)) if name else 0.0
            if wait > 0:
                payload, headers = _too_many_body(wait)
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
        replay = [{"type": "http.request", "body": body, "more_body": more}]

        async def replayed() -> Any:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def client_address(request: Request) -> str:
    """The connection's address; uvicorn has already replaced it with X-Forwarded-For's
    when, and only when, the connection came from a trusted proxy."""
    return request.client.host if request.client else "?"


def _too_many(wait_s: float) -> ApiError:
    return ApiError(
        status.HTTP_429_TOO_MANY_REQUESTS,
        ErrorCode.TOO_MANY_LOGINS,
        TOO_MANY_MESSAGE,
        headers={"Retry-After": retry_after(wait_s)},
    )


@router.post("/api/auth/token", responses=errors.responses(429))
async def login(
    request: Request,
    monitor: MonitorDep,
    form: Annotated[LoginForm, Form()],
) -> dict[str, Any]:
    guard: LoginGuard = request.app.state.login_guard
    addr = client_address(request)
    try:
        ticket, wait = await guard.limiter.acquire(guard.keys(form.username, addr))
    except LimiterUnavailable:
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ErrorCode.LOGIN_UNAVAILABLE,
            "the login limiter cannot be reached",
            headers={"Retry-After": "5"},
        ) from None
    if ticket is None:
        raise _too_many(wait)
    ok = False
    try:
        user = await monitor.store.user_by_name(form.username)
        stored = user.password_hash if user else dummy_password_hash(guard.pool.profile)
        try:
            ok = await guard.pool.verify(stored, form.password)
        except Busy:
            await guard.limiter.release(ticket)
            ticket = None
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                ErrorCode.LOGIN_BUSY,
                "too many logins at once; try again",
                headers={"Retry-After": "1"},
            ) from None
        ok = ok and user is not None and not user.disabled
    finally:
        if ticket is not None:
            if ok:
                await guard.limiter.release(ticket)
            else:
                await guard.limiter.settle(ticket)
    if not ok or user is None:
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


@router.post("/api/auth/logout")
async def logout(
    request: Request,
    monitor: MonitorDep,
    user: CurrentUser,
    token: Annotated[str | None, Depends(oauth2)],
) -> dict[str, Any]:
    """Revoke the presented token in storage: every instance refuses it from now on, and a
    feed socket it opened is closed at its next check (docs/security.md)."""
    revoked = await monitor.store.revoke_access_token(token or "")
    await monitor.store.audit("logout", actor=user.name, target=client_address(request))
    return {"revoked": revoked}


@router.get("/api/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"username": user.name, "role": user.role}


@router.get("/api/auth/me", responses=errors.responses(401))
async def token_login(
    monitor: MonitorDep, token: Annotated[str | None, Depends(oauth2)]
) -> dict[str, Any]:
    """Who the presented token logs in, and until when: how a panel turns the token in a
    user's cookie into a login, so panel logins live where the monitor keeps its tokens and
    survive a panel restart (docs/security.md). 401 for a missing, unknown, expired or
    revoked token, or a disabled user."""
    held = await monitor.store.access_token_login(token, monitor.clock()) if token else None
    if held is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired token" if token else "not authenticated",
            {"WWW-Authenticate": "Bearer"},
        )
    user, expires_at = held
    return {"username": user.name, "role": user.role, "expires_at": to_rfc3339(expires_at)}
