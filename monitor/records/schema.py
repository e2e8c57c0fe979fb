"""Tables. Times are epoch seconds (UTC) as double precision: device time and receive time
are both kept for readings. Changes to this file need a migration in monitor/records/migrations."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")

beds = Table(
    "beds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("label", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("bed_id", String(64), ForeignKey("beds.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bed_id", String(64), ForeignKey("beds.id"), nullable=False),
    Column("patient_label", String(128), nullable=False),
    # The clinic's own patient identifier (docs/course.md): a patient's sessions are the
    # sessions of one patient_id, never of one label. NULL = admitted without one (the session
    # is a course of its own). "prov-..." ids are the provisional patients a migration made of
    # the labels of sessions opened before identifiers existed.
    Column("patient_id", String(64), nullable=True),
    Column("age", Integer, nullable=True),
    Column("phase", String(16), nullable=False),
    Column("infusion_planned_s", Integer, nullable=False),
    Column("baseline", JSON, nullable=True),
    Column("limit_overrides", JSON, nullable=True),
    # The clinic protocol's id (docs/protocols.md); NULL for sessions opened before protocols.
    Column("protocol", String(48), nullable=True),
    Column("opened_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    # At most one open session per bed: open_bed is the bed id while open, NULL once ended,
    # and a unique index enforces it in the database itself (both engines allow many NULLs).
    Column("open_bed", String(64), nullable=True, unique=True),
    # Bumped by every change to the session (an event, limits, its patient): a change is
    # written with ``WHERE version = <the version its checks read>``, so of two changes judged
    # on the same state only one is stored and the other is judged again (docs/api.md,
    # "Repeats and races").
    Column("version", Integer, nullable=False, server_default="0"),
)
Index("ix_sessions_bed_opened", sessions.c.bed_id, sessions.c.opened_at)
Index("ix_sessions_patient", sessions.c.patient_label)
Index("ix_sessions_patient_id", sessions.c.patient_id, sessions.c.opened_at)

# The esketamine REMS monitoring record's sign-off (docs/course.md): the record itself is built
# from the session every time it is read; only who signed, why (an incomplete record signed by
# charge or admin) and when a user marked it filed are stored.
rems_records = Table(
    "rems_records",
    metadata,
    Column("session_id", BigId, ForeignKey("sessions.id"), primary_key=True),
    Column("signed_at", Float, nullable=True),
    Column("signed_by", String(64), nullable=True),
    Column("signed_incomplete_reason", String(1000), nullable=True),
    Column("filed_at", Float, nullable=True),
    Column("filed_by", String(64), nullable=True),
)

session_events = Table(
    "session_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", BigId, ForeignKey("sessions.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("by", String(64), nullable=True),
    Column("data", JSON, nullable=True),
)
Index("ix_session_events_session", session_events.c.session_id, session_events.c.id)

# A POST's ``Idempotency-Key`` (docs/api.md): written in the transaction of the change it
# made, so a repeat with the same key by the same user gets the first answer and stores
# nothing. ``body`` is that answer, filled in once it is known.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("request", String(64), nullable=False),  # SHA-256 of method, path and body
    Column("status", Integer, nullable=False),
    Column("target", String(200), nullable=True),  # what it changed, e.g. "session:12"
    Column("body", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_idempotency_created", idempotency_keys.c.created_at)

# Which bed each device was bound to, and from when (device time): a reading belongs to the
# bed its device was bound to at its measurement time, whenever it arrives
# (docs/reliability.md). ``until`` is NULL for the binding in force.
device_bindings = Table(
    "device_bindings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=False),
    Column("bed_id", String(64), ForeignKey("beds.id"), nullable=False),
    Column("since", Float, nullable=False),
    Column("until", Float, nullable=True),
)
Index("ix_device_bindings_device", device_bindings.c.device_id, device_bindings.c.since)

readings = Table(
    "readings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("bed_id", String(64), nullable=True),
    # No session column: a reading belongs to the session of its bed whose span holds its
    # device ts, whenever it arrives, so membership is derived (Store.readings), never stored.
    Column("ts", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("source", String(16), nullable=True),
    Column("hr", Float, nullable=True),
    Column("pr", Float, nullable=True),  # pulse rate, kept apart from the ECG heart rate
    Column("spo2", Float, nullable=True),
    Column("rr", Float, nullable=True),
    Column("sbp", Float, nullable=True),
    Column("dbp", Float, nullable=True),
    Column("map", Float, nullable=True),
    UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),
)
Index("ix_readings_bed_ts", readings.c.bed_id, readings.c.ts)
# A rebuild reads every bed's recent record in one range on receive time (device time is
# bounded by it): monitor.records.store.replay.
Index("ix_readings_received", readings.c.received_at)

# Retention deletes readings by device time; the highest seq swept per device is kept so that
# a late resend of a swept (device, seq) is still recognised as already stored.
retention_marks = Table(
    "retention_marks",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("swept_seq", BigInteger, nullable=False),
    Column("swept_at", Float, nullable=False),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("bed_id", String(64), nullable=False),
    Column("session_id", BigInteger, nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("signal", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("priority", String(8), nullable=False),
    Column("condition", String(200), nullable=False),
    Column("state", String(24), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("acknowledged_at", Float, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("escalated", Boolean, nullable=False, default=False),
    Column("audio_paused_until", Float, nullable=True),
    Column("value", Float, nullable=True),
    Column("detail", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
)
Index("ix_alarms_bed_started", alarms.c.bed_id, alarms.c.started_at)
Index("ix_alarms_open", alarms.c.ended_at)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=True),
    Column("action", String(48), nullable=False),
    Column("target", String(200), nullable=True),
    Column("session_id", BigInteger, nullable=True),
    Column("detail", JSON, nullable=True),
)
Index("ix_audit_at", audit_log.c.at)
Index("ix_audit_session", audit_log.c.session_id)

SIGNAL_COLUMNS = ("hr", "pr", "spo2", "rr", "sbp", "dbp", "map")

# One row per monitor instance, written when no reading has been committed for a while, so
# /health can tell a database that takes writes from one that has turned read-only or away.
heartbeats = Table(
    "heartbeats",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("at", Float, nullable=False),
)
