"""Administration: devices, users and the audit log (admin role only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from monitor.api.deps import AdminUser, MonitorDep, SessionFilter, StrictRoute
from monitor.api.ward import check_id, parse_time
from monitor.model import Role, to_rfc3339
from monitor.security import Busy

router = APIRouter(tags=["admin"], route_class=StrictRoute)


class DeviceCreate(BaseModel):
    model_config = {"extra": "forbid"}

    device_id: str = Field(min_length=1, max_length=64)
    bed: str = Field(min_length=1, max_length=64)


class UserCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(min_length=8, max_length=256)
    # An existing name is refused unless this says so: a reset takes a new password and
    # role and revokes every token the user holds.
    reset: bool = False


@router.post("/api/devices", status_code=status.HTTP_201_CREATED)
async def add_device(body: DeviceCreate, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    check_id(body.device_id, "device_id")
    check_id(body.bed, "bed")
    token = await monitor.store.add_device(body.device_id, body.bed, monitor.clock())
    await monitor.store.audit(
        "device_add", actor=user.name, target=body.device_id, detail={"bed": body.bed}
    )
    return {"device_id": body.device_id, "bed": body.bed, "token": token}


@router.delete("/api/devices/{device_id}")
async def revoke_device(device_id: str, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    check_id(device_id, "device_id")
    if not await monitor.store.revoke_device(device_id, monitor.clock()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such active device")
    await monitor.revoke_device(device_id)
    await monitor.store.audit("device_revoke", actor=user.name, target=device_id)
    return {"device_id": device_id, "revoked": True}


@router.post("/api/users", status_code=status.HTTP_201_CREATED)
async def add_user(
    request: Request, body: UserCreate, monitor: MonitorDep, user: AdminUser
) -> dict[str, Any]:
    check_id(body.name, "name")
    try:
        hashed = await request.app.state.login_guard.pool.hash(body.password)
    except Busy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            {"code": "login_busy", "message": "password hashing is busy; try again"},
            {"Retry-After": "1"},
        ) from None
    role = body.role.value
    if await monitor.store.create_user(body.name, role, hashed, monitor.clock()):
        await monitor.store.audit(
            "user_add", actor=user.name, target=body.name, detail={"role": role}
        )
        return {"name": body.name, "role": role}
    if not body.reset:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            {"code": "user_exists", "message": "that user exists; send reset: true to reset it"},
        )
    revoked = await monitor.store.reset_user(body.name, role, hashed)
    if revoked is None:  # deleted between the two statements: no route deletes users
        raise HTTPException(status.HTTP_409_CONFLICT, {"code": "user_exists"})
    await monitor.store.audit(
        "user_reset",
        actor=user.name,
        target=body.name,
        detail={"role": role, "tokens_revoked": revoked},
    )
    return {"name": body.name, "role": role, "reset": True, "tokens_revoked": revoked}


async def _set_disabled(name: str, disabled: bool, monitor: Any, actor: str) -> dict[str, Any]:
    check_id(name, "name")
    revoked = await monitor.store.set_user_disabled(name, disabled)
    if revoked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "no_such_user"})
    await monitor.store.audit(
        "user_disable" if disabled else "user_enable",
        actor=actor,
        target=name,
        detail={"tokens_revoked": revoked} if disabled else None,
    )
    return {"name": name, "disabled": disabled, "tokens_revoked": revoked}


@router.post("/api/users/{name}/disable")
async def disable_user(name: str, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    """The user can no longer log in; every token of theirs is revoked and their open feed
    sockets are closed at the next check (docs/security.md)."""
    return await _set_disabled(name, True, monitor, user.name)


@router.post("/api/users/{name}/enable")
async def enable_user(name: str, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    return await _set_disabled(name, False, monitor, user.name)


@router.get("/api/audit")
async def audit(
    monitor: MonitorDep,
    user: AdminUser,
    session: SessionFilter = None,
    since: str | None = None,
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
