"""Bring a database to the newest schema with Alembic, on a synchronous connection."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works: it only has to be the same for every instance migrating one database.
_PG_MIGRATION_LOCK = 0x56494731

# The revision ids before they were renumbered in chain order (docs/deployment.md, "Schema
# migrations"): a database stamped with one of these is at the revision it maps to, whose
# migration is the same code. No current id is a legacy one, so renaming twice is harmless.
LEGACY_REVISIONS: dict[str, str] = {
    "0001": "0001_initial",
    "0003_members": "0002_members",
    "0006_core": "0003_core",
    "0002_hl7": "0004_hl7",
    "0004_pulse": "0005_pulse",
    "0007_protocol": "0006_protocol",
    "0008_course": "0007_course",
    "0009_atomic": "0008_atomic",
}


def sync_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
    return sync_url(url)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def make_sync_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(sync_url(url))


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two instances starting together must not both create the tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            else:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            rename_legacy_revision(conn)
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def rename_legacy_revision(conn: Connection) -> None:
    """Restamp a database whose ``alembic_version`` holds a legacy id with its current id, in
    the caller's transaction: if the upgrade that follows fails, the old stamp stays."""
    if not inspect(conn).has_table("alembic_version"):
        return  # a new database: Alembic creates the table and stamps current ids
    for legacy, current in LEGACY_REVISIONS.items():
        conn.execute(
            text("UPDATE alembic_version SET version_num = :current WHERE version_num = :legacy"),
            {"current": current, "legacy": legacy},
        )
