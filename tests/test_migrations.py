"""Schema migrations (docs/deployment.md, "Schema migrations"): the files sort in the order
of their chain, and a database stamped with a revision id from before the renumbering is
restamped and upgraded on SQLite and PostgreSQL, its rows kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

from monitor.records.migrate import (
    LEGACY_REVISIONS,
    MIGRATIONS,
    alembic_config,
    head_revision,
    sync_url,
    upgrade,
)
from monitor.records.schema import metadata
from tests.conftest import fresh_database

# The table of docs/deployment.md, spelled out here so that the code is checked against it.
RENUMBERED = {
    "0001": "0001_initial",
    "0003_members": "0002_members",
    "0006_core": "0003_core",
    "0002_hl7": "0004_hl7",
    "0004_pulse": "0005_pulse",
    "0007_protocol": "0006_protocol",
    "0008_course": "0007_course",
    "0009_atomic": "0008_atomic",
}
HEAD = "0009_replay"


def _chain() -> list[tuple[str, str]]:
    """(revision id, file stem) from the base to the head, by each file's down_revision."""
    scripts = ScriptDirectory.from_config(alembic_config())
    (head,) = scripts.get_heads()
    chain: list[tuple[str, str]] = []
    revision = scripts.get_revision(head)
    while revision is not None:
        assert revision.path is not None
        chain.append((revision.revision, Path(revision.path).stem))
        down = revision.down_revision
        assert not isinstance(down, tuple), f"{revision.revision} merges branches"
        revision = scripts.get_revision(down) if down else None
    return chain[::-1]


def test_migration_files_sort_by_name_in_the_order_of_their_chain() -> None:
    """Each file is named by its revision id, numbered 0001, 0002, ... along the chain."""
    chain = _chain()
    files = sorted(p.stem for p in (MIGRATIONS / "versions").glob("*.py"))
    assert [stem for _, stem in chain] == files
    assert [rev for rev, _ in chain] == files
    assert [stem[:5] for stem in files] == [f"{n:04d}_" for n in range(1, len(files) + 1)]
    assert files[-1] == HEAD == head_revision()


def test_the_legacy_ids_are_the_documented_ones_and_none_is_a_current_id() -> None:
    """The restamp maps each old id to one current revision, and no current id is an old one."""
    current = {rev for rev, _ in _chain()}
    assert LEGACY_REVISIONS == RENUMBERED
    assert set(RENUMBERED.values()) <= current
    assert len(set(RENUMBERED.values())) == len(RENUMBERED)
    assert current.isdisjoint(RENUMBERED)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(str(request.param), tmp_path) as url:
        yield url


def _at_legacy_revision(url: str, legacy: str) -> Engine:
    """A database built up to the revision ``legacy`` names, with a bed, a device, a session
    and a reading, and stamped with the old id as a clinic's database is."""
    upgrade(url, RENUMBERED[legacy])
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO beds (id, label, created_at) VALUES ('b1', 'Chair 1', 1)"))
        conn.execute(
            text(
                "INSERT INTO devices (id, bed_id, token_hash, created_at) "
                "VALUES ('d1', 'b1', 'h', 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sessions (id, bed_id, patient_label, phase, infusion_planned_s, "
                "opened_at) VALUES (7, 'b1', 'AB', 'infusion', 2400, 10)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO readings (device_id, seq, bed_id, ts, received_at, hr, spo2) "
                "VALUES ('d1', 1, 'b1', 20, 20, 72, 97)"
            )
        )
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": legacy})
    return engine


def _stamp(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


@pytest.mark.parametrize("legacy", list(RENUMBERED))
def test_a_database_stamped_with_an_old_id_upgrades_to_the_head_and_keeps_its_rows(
    engine_url: str, legacy: str
) -> None:
    """Restamped, then the migrations after it run once: the schema is the current one, and
    the bed, device, session and reading stored before are all still there."""
    engine = _at_legacy_revision(engine_url, legacy)
    try:
        upgrade(engine_url)
        assert _stamp(engine) == [HEAD]
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == []
            assert conn.execute(text("SELECT id, label FROM beds")).all() == [("b1", "Chair 1")]
            assert conn.execute(text("SELECT id, bed_id FROM devices")).all() == [("d1", "b1")]
            assert conn.execute(
                text("SELECT id, patient_label, phase, version FROM sessions")
            ).all() == [(7, "AB", "infusion", 0)]
            reading = conn.execute(text("SELECT device_id, seq, hr, spo2, pr FROM readings"))
            assert reading.all() == [("d1", 1, 72.0, 97.0, None)]
        upgrade(engine_url)  # a second start finds nothing to do
        assert _stamp(engine) == [HEAD]
    finally:
        engine.dispose()


def test_a_failed_upgrade_leaves_the_old_stamp_in_place(engine_url: str) -> None:
    """The restamp is in the upgrade's transaction: when a later migration fails, the
    database keeps its old id and schema, and the next start (the fault gone) upgrades it."""
    engine = _at_legacy_revision(engine_url, "0003_members")
    try:
        # 0003_core creates heartbeats: a table of that name already there makes it fail.
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE heartbeats (x INTEGER)"))
        with pytest.raises(Exception, match="heartbeats"):
            upgrade(engine_url)
        assert _stamp(engine) == ["0003_members"]
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE heartbeats"))
        upgrade(engine_url)
        assert _stamp(engine) == [HEAD]
    finally:
        engine.dispose()


def test_a_start_on_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    """monitor/records/migrate.py: a database at the head is seen to be so without importing
    Alembic (a tenth of a second of every start); a new one is migrated by Alembic."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'v.db'}"
    probe = (
        "import sys; from monitor.records import migrate; "
        f"migrate.upgrade({url!r}); print('alembic' in sys.modules)"
    )

    def loads_alembic() -> bool:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        return out.stdout.strip() == "True"

    assert loads_alembic()  # the new database is created by the migrations
    assert not loads_alembic()
    engine = create_engine(url)
    try:
        assert _stamp(engine) == [HEAD]
    finally:
        engine.dispose()
