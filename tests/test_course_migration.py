"""The course migration (docs/course.md "Sessions from before patient identifiers"): each
label of the sessions already stored becomes a provisional patient of its own, and a clinic
merges one into its real identifier, or splits a session off, from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from monitor.records.migrate import sync_url, upgrade
from tests.conftest import fresh_database


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_each_label_becomes_a_provisional_patient_that_the_clinic_can_merge_and_split(
    backend: str, tmp_path: Path
) -> None:
    """0007_course: sessions labelled "AB" share one provisional patient, "A.B." another;
    merge-patient joins both into the MRN, assign-patient moves one session out again."""
    with fresh_database(backend, tmp_path) as url:
        upgrade(url, "0006_protocol")
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO beds (id, label, created_at) VALUES ('b', 'b', 0)"))
                for i, label in enumerate(["AB", "A.B.", "AB"], start=1):
                    conn.execute(
                        text(
                            "INSERT INTO sessions (id, bed_id, patient_label, phase, "
                            "infusion_planned_s, opened_at, ended_at) "
                            "VALUES (:id, 'b', :label, 'ended', 2400, :at, :end)"
                        ),
                        {"id": i, "label": label, "at": 100.0 * i, "end": 100.0 * i + 50},
                    )
            upgrade(url)
            assert "rems_records" in inspect(engine).get_table_names()

            def patients() -> dict[int, str]:
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT id, patient_id FROM sessions ORDER BY id"))
                    return {int(r[0]): str(r[1]) for r in rows}

            before = patients()
            assert before[1] == before[3] != before[2]
            assert all(p.startswith("prov-") for p in before.values())

            for source in {before[1], before[2]}:
                done = _cli("merge-patient", source, "--into", "MRN-0042", "--db", url)
                assert done.returncode == 0, done.stderr
            assert set(patients().values()) == {"MRN-0042"}

            split = _cli("assign-patient", "3", "MRN-0077", "--db", url)
            assert split.returncode == 0, split.stderr
            assert patients() == {1: "MRN-0042", 2: "MRN-0042", 3: "MRN-0077"}
            assert _cli("assign-patient", "99", "MRN-0077", "--db", url).returncode == 1
            with engine.connect() as conn:
                actions = (
                    conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars().all()
                )
            assert actions == ["patient_merge", "patient_merge", "session_patient"]
        finally:
            engine.dispose()
