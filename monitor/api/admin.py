"""Administration: devices, users and the audit log (admin role only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel

from monitor.api import errors
from monitor.api.bodies import ID_REGEX, IdField, text
from monitor.api.deps import AdminUser, MonitorDep, SessionFilter, StrictRoute
from monitor.api.errors import ApiError, ErrorCode
from monitor.api.openapi import links
from monitor.api.ward import TimeFilter, parse_time
from monitor.model import Role, to_rfc3339
from monitor.security import hash_password

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


@router.post("/api/devices", status_code=status.HTTP_201_CREATED, openapi_extra=links("add_device"))
async def add_device(body: DeviceCreate, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    token = await monitor.store.add_device(body.device_id, body.bed, monitor.clock())
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


@router.post("/api/users", status_code=status.HTTP_201_CREATED, openapi_extra=links("add_user"))
async def add_user(body: UserCreate, monitor: MonitorDep, user: AdminUser) -> dict[str, Any]:
    await monitor.store.add_user(
        body.name, body.role.value, hash_password(body.password), monitor.clock()
    )
    await monitor.store.audit(
        "user_add", actor=user.name, target=body.name, detail={"role": body.role.value}
    )
    return {"name": body.name, "role": body.role.value}


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
