"""Dependencies shared by the routes: the running monitor, the caller and their role."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer

from monitor import usecases
from monitor.core.errors import ErrorCode
from monitor.core.model import Role, to_rfc3339
from monitor.edges.api import idempotency
from monitor.edges.api.errors import ApiError, invalid
from monitor.pipeline.service import Monitor
from monitor.records.store import SessionRow, UserRow

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def _no_nul(obj: Any, doc: str) -> None:
    """PostgreSQL text and JSON cannot hold NUL; refuse it at the door on every engine."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if "\x00" in x:
                raise json.JSONDecodeError("strings must not contain NUL (\\u0000)", doc, 0)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


class StrictRequest(Request):
    """JSON bodies parsed strictly: no NaN/Infinity tokens, no overflow to infinity, no lone
    surrogates (orjson refuses all three), no NUL. Refusals become a 422 json_invalid
    (monitor/edges/api/errors.py) instead of a 500 from the database or from echoing a NaN back
    in the error."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = orjson.loads(body)  # orjson.JSONDecodeError is a json.JSONDecodeError
            _no_nul(value, body.decode("utf-8", "replace"))
            self._json = value
        return self._json


class StrictRoute(APIRoute):
    """Every API route: strict JSON bodies and no NUL in the path, query or form fields."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            request = StrictRequest(request.scope, request.receive)
            where = None
            if "\x00" in request.url.path:
                where = "path"
            elif b"%00" in request.scope.get("query_string", b""):
                where = "query"
            elif (
                request.headers.get("content-type", "").startswith(
                    "application/x-www-form-urlencoded"
                )
                and b"%00" in await request.body()
            ):
                where = "body"
            if where is not None:
                raise invalid([where], "NUL characters are not accepted")
            if idempotency.applies(request):
                return await idempotency.run(request, handler)
            return await handler(request)

        return strict_handler


def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]

# Ids are 64-bit integers in storage: a larger one is a 422 here, not a driver overflow (500).
DB_INT_MAX = 2**63 - 1
SessionId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
SessionFilter = Annotated[int | None, Query(ge=1, le=DB_INT_MAX)]


async def session_row(monitor: Monitor, session_id: int) -> SessionRow:
    """The stored session, or the one 404 every session route answers. Called in the route,
    not as a dependency, so authentication is still judged before the lookup."""
    row = await monitor.store.session_row(session_id)
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session")
    return row


def refused(e: usecases.Refusal) -> ApiError:
    """A use case's refusal as the API answers it: the same code, message and detail keys
    (docs/api.md), with the status of its kind and times (``*_at``) in RFC 3339."""
    if isinstance(e, usecases.Invalid):
        return invalid(e.loc, e.message, e.kind)
    status = (
        404
        if isinstance(e, usecases.NotFound)
        else 403
        if isinstance(e, usecases.Forbidden)
        else 409
    )
    detail = {
        k: to_rfc3339(v) if k.endswith("_at") and isinstance(v, float) else v
        for k, v in e.detail.items()
    }
    err = ApiError(status, e.code, e.message)
    err.detail.update(detail)  # type: ignore[attr-defined]
    return err


def actor(user: UserRow) -> usecases.Actor:
    return usecases.Actor(name=user.name, role=user.role)


async def current_user(
    monitor: MonitorDep, token: Annotated[str | None, Depends(oauth2)]
) -> UserRow:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "not authenticated", {"WWW-Authenticate": "Bearer"}
        )
    user = await monitor.store.user_by_access_token(token, monitor.clock())
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", {"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[UserRow, Depends(current_user)]

_RANK = {Role.NURSE: 1, Role.CHARGE: 2, Role.ADMIN: 3}


def require(role: Role) -> Any:
    """A dependency that lets in ``role`` and every role above it."""

    async def check(user: CurrentUser) -> UserRow:
        if _RANK.get(Role(user.role), 0) < _RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role.value} role")
        return user

    return check


ChargeUser = Annotated[UserRow, Depends(require(Role.CHARGE))]
AdminUser = Annotated[UserRow, Depends(require(Role.ADMIN))]
