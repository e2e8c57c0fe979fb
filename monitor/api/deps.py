"""Dependencies shared by the routes: the running monitor, the caller and their role."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import OAuth2PasswordBearer

from monitor.db.store import UserRow
from monitor.model import Role
from monitor.service import Monitor

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]

# Ids are 64-bit integers in storage: a larger one is a 422 here, not a driver overflow (500).
DB_INT_MAX = 2**63 - 1
SessionId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
SessionFilter = Annotated[int | None, Query(ge=1, le=DB_INT_MAX)]


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
