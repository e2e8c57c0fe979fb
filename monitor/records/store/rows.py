"""The rows the store hands its callers, typed: a ``TypedDict`` per table read as a whole, so
``row["key"]`` keeps working and mypy checks the key and its type. Each mirrors its table in
monitor.records.schema (a column added there is added here)."""

from __future__ import annotations

from typing import Any, TypedDict, cast

from sqlalchemy.engine import Row


class SessionRow(TypedDict):
    """A ``sessions`` row."""

    id: int
    bed_id: str
    patient_label: str
    patient_id: str | None
    age: int | None
    phase: str
    infusion_planned_s: int
    baseline: dict[str, float] | None
    limit_overrides: dict[str, Any] | None
    protocol: str | None
    opened_at: float
    ended_at: float | None
    open_bed: str | None
    version: int


class SessionEventRow(TypedDict):
    """A ``session_events`` row."""

    id: int
    session_id: int
    type: str
    at: float
    recorded_at: float
    by: str | None
    data: dict[str, Any] | None


class RemsRow(TypedDict):
    """A ``rems_records`` row: the REMS record's sign-off (docs/course.md)."""

    session_id: int
    signed_at: float | None
    signed_by: str | None
    signed_incomplete_reason: str | None
    filed_at: float | None
    filed_by: str | None


class AuditRow(TypedDict):
    """An ``audit_log`` row."""

    id: int
    at: float
    actor: str | None
    action: str
    target: str | None
    session_id: int | None
    detail: dict[str, Any] | None


class BedRow(TypedDict):
    """A bed with the devices in service on it (``Store.list_beds``)."""

    id: str
    label: str
    devices: list[str]


def as_session_row(row: Row[Any]) -> SessionRow:
    # A cast, not a copy per key: the columns are the table's, in monitor.records.schema.
    return cast(SessionRow, dict(row._mapping))


def as_session_event_row(row: Row[Any]) -> SessionEventRow:
    return cast(SessionEventRow, dict(row._mapping))


def as_rems_row(row: Row[Any]) -> RemsRow:
    return cast(RemsRow, dict(row._mapping))


def as_audit_row(row: Row[Any]) -> AuditRow:
    return cast(AuditRow, dict(row._mapping))
