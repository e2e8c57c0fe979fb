"""Administration: devices, users and the audit log (admin role only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel

from monitor.core.errors import ErrorCode
from monitor.core.model import Role, to_rfc3339
from monitor.edges.api import errors
from monitor.edges.api.bodies import ID_REGEX, IdField, text
from monitor.edges.api.deps import AdminUser, MonitorDep, SessionFilter, StrictRoute
from monitor.edges.api.errors import ApiError
from monitor.edges.api.guards import Busy
from monitor.edges.api.openapi import links
from monitor.edges.api.ward import TimeFilter, parse_time

router = APIRouter(
    tags=["admin"], route_class=StrictRoute, responses=errors.responses(*errors.COMMON, 403)
)


class DeviceCreate(BaseModel):
    model_config = {"extra": "forbid"}

    device_id: IdField
    bed: IdField


class UserCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: IdField
    role: Role
    password: str = text(256, min_length=8)
    # An existing name is refused unless this says so: a reset takes a new password and
    # role and revokes every token the user holds.
    reset: bool = False


@router.post("/api/devices", status_code=status.HTTP_201_CREATED, openapi_extra=links("add_device"))
async def add_device(body: DeviceCreate, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    before = await monitor.store.device(body.device_id)
    token = await monitor.store.add_device(body.device_id, body.bed, monitor.clock())
    await monitor.device_rebound(body.device_id, None if before is None else before.bed_id)
    await monitor.store.audit(
        "device_add", actor=user.name, target=body.device_id, detail={"bed": body.bed}
    )
    return {"device_id": body.device_id, "bed": body.bed, "token": token}


@router.delete("/api/devices/{device_id}", responses=errors.responses(404))
async def revoke_device(
    device_id: Annotated[str, Path(max_length=64, pattern=ID_REGEX)],
    monitor: MonitorDep,
    user: AdminUser,
) -> dict[str, Any]:
    if not await monitor.store.revoke_device(device_id, monitor.clock()):
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such active device")
    await monitor.revoke_device(device_id)
    await monitor.store.audit("device_revoke", actor=user.name, target=device_id)
    return {"device_id": device_id, "revoked": True}


@router.post(
    "/api/users",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=links("add_user"),
    responses=errors.responses(409),
)
async def add_user(
    request: Request, body: UserCreate, monitor: MonitorDep, user: AdminUser
) -> dict[str, Any]:
    try:
        hashed = await request.app.state.login_guard.pool.hash(body.password)
    except Busy:
        raise ApiError(
            503,
            ErrorCode.LOGIN_BUSY,
            "password hashing is busy; try again",
            headers={"Retry-After": "1"},
        ) from None
    role = body.role.value
    if await monitor.store.create_user(body.name, role, hashed, monitor.clock()):
        await monitor.store.audit(
            "user_add", actor=user.name, target=body.name, detail={"role": role}
        )
        return {"name": body.name, "role": role}
    if not body.reset:
        raise ApiError(409, ErrorCode.USER_EXISTS, "that user exists; send reset: true to reset it")
    revoked = await monitor.store.reset_user(body.name, role, hashed)
    if revoked is None:  # deleted between the two statements: no route deletes users
        raise ApiError(409, ErrorCode.USER_EXISTS, "that user exists")
    await monitor.store.audit(
        "user_reset",
        actor=user.name,
        target=body.name,
        detail={"role": role, "tokens_revoked": revoked},
    )
    return {"name": body.name, "role": role, "reset": True, "tokens_revoked": revoked}


UserName = Annotated[str, Path(max_length=64, pattern=ID_REGEX)]


async def _set_disabled(name: str, disabled: bool, monitor: Any, actor: str) -> dict[str, Any]:
    revoked = await monitor.store.set_user_disabled(name, disabled)
    if revoked is None:
        raise ApiError(404, ErrorCode.NO_SUCH_USER, "no such user")
    await monitor.store.audit(
        "user_disable" if disabled else "user_enable",
        actor=actor,
        target=name,
        detail={"tokens_revoked": revoked} if disabled else None,
    )
    return {"name": name, "disabled": disabled, "tokens_revoked": revoked}


@router.post("/api/users/{name}/disable", responses=errors.responses(404))
async def disable_user(name: UserName, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    """The user can no longer log in; every token of theirs is revoked and their open feed
    sockets are closed at the next check (docs/security.md)."""
    return await _set_disabled(name, True, monitor, user.name)


@router.post("/api/users/{name}/enable", responses=errors.responses(404))
async def enable_user(name: UserName, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    return await _set_disabled(name, False, monitor, user.name)


@router.get("/api/audit")
async def audit(
    monitor: MonitorDep,
    user: AdminUser,
    session: SessionFilter = None,
    since: TimeFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    rows = await monitor.store.audit_entries(
        session_id=session, since=parse_time(since, "since"), limit=limit
    )
    return {
        "entries": [
            {
                "id": r["id"],
                "at": to_rfc3339(r["at"]),
                "actor": r["actor"],
                "action": r["action"],
                "target": r["target"],
                "session_id": r["session_id"],
                "detail": r["detail"],
            }
            for r in rows
        ]
    }
