"""Bring a database to the newest schema with Alembic, on a synchronous connection.

A database already at the newest revision, as at every start but the first after an
upgrade, is seen to be so without Alembic: importing it and loading the migration scripts
cost a monitor's start about 0.17 s of CPU. The files are named by their revision ids,
numbered along the chain (tests/test_migrations.py), so the newest is the last name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

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
    from alembic.config import Config

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
            if revision == "head" and current_revision(conn) == head_revision():
                return
            from alembic import command

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


def head_revision() -> str:
    """The newest revision id: the last migration file's name."""
    return max(p.stem for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))


def current_revision(conn: Connection) -> str | None:
    """The database's one revision stamp; None if it has none (or, merging branches, several:
    then Alembic decides)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    stamps = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(stamps[0]) if len(stamps) == 1 else None
