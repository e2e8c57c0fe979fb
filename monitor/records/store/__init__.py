"""The store: every read and write of the database, on SQLAlchemy Core's async engine.

One ``Store`` assembled from one part per aggregate, each in its own module on the shared
engine of ``base``: devices (beds, devices, bindings), users (and access tokens), readings
(and retention), replay (a rebuild's reads, for every bed at once), sessions (and their
events), course (a patient's sessions, REMS sign-off), alarms and audit. Callers see one object and import from ``monitor.records.store`` only.
The rows it hands back are typed in ``rows`` (``SessionRow`` and the others), so mypy checks
each ``row["key"]`` a caller reads.
"""

from __future__ import annotations

from monitor.records.store.alarms import AlarmRecords, alarm_from_row
from monitor.records.store.audit import AuditRecords
from monitor.records.store.base import AuditNote, Conflict, NotFound, StoreBase
from monitor.records.store.course import CourseRecords
from monitor.records.store.devices import DeviceRecords, DeviceRow
from monitor.records.store.readings import ReadingRecords, reading_from_row
from monitor.records.store.replay import ReplayRecords
from monitor.records.store.rows import AuditRow, BedRow, RemsRow, SessionEventRow, SessionRow
from monitor.records.store.sessions import SessionRecords
from monitor.records.store.users import UserRecords, UserRow

__all__ = [
    "AuditNote",
    "AuditRow",
    "BedRow",
    "Conflict",
    "DeviceRow",
    "NotFound",
    "RemsRow",
    "SessionEventRow",
    "SessionRow",
    "Store",
    "StoreBase",
    "UserRow",
    "alarm_from_row",
    "reading_from_row",
]


class Store(
    DeviceRecords,
    UserRecords,
    ReadingRecords,
    ReplayRecords,
    SessionRecords,
    CourseRecords,
    AlarmRecords,
    AuditRecords,
):
    """Every read and write of the database; each method's home is its aggregate's module."""
