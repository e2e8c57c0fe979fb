"""sessions.patient_id and rems_records: the course of a patient and the REMS sign-off

A patient's course is the sessions of one ``patient_id`` (docs/course.md). Sessions opened
before identifiers existed had only a free-text label, so each distinct label becomes a
provisional patient of its own, ``prov-`` and the first 16 hex digits of the SHA-256 of the
label: the sessions a clinic saw together (by label) stay together, and nothing is joined to a
real identifier by guesswork. docs/course.md says how a clinic merges a provisional patient
into its real identifier (``python -m monitor merge-patient``) or splits one (``assign-patient``).

``rems_records`` holds who signed an esketamine session's REMS monitoring record, why when it
was signed incomplete, and when it was marked filed; the record itself is always rebuilt from
the session.

Revision ID: 0007_course
Revises: 0006_protocol
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0007_course"
down_revision = "0006_protocol"
branch_labels = None
depends_on = None

PROVISIONAL_PREFIX = "prov-"


def provisional_id(label: str) -> str:
    """The provisional patient of a label (kept here: a migration must not change when code does)."""
    return PROVISIONAL_PREFIX + hashlib.sha256(label.encode("utf-8")).hexdigest()[:16]


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_sessions_patient_id", ["patient_id", "opened_at"], unique=False)
    conn = op.get_bind()
    sessions = sa.table(
        "sessions", sa.column("patient_label", sa.String), sa.column("patient_id", sa.String)
    )
    labels = conn.execute(sa.select(sessions.c.patient_label).distinct()).scalars().all()
    for label in labels:
        conn.execute(
            sa.update(sessions)
            .where(sessions.c.patient_label == label, sessions.c.patient_id.is_(None))
            .values(patient_id=provisional_id(str(label)))
        )
    op.create_table(
        "rems_records",
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("signed_at", sa.Float(), nullable=True),
        sa.Column("signed_by", sa.String(length=64), nullable=True),
        sa.Column("signed_incomplete_reason", sa.String(length=1000), nullable=True),
        sa.Column("filed_at", sa.Float(), nullable=True),
        sa.Column("filed_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_rems_records_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_rems_records")),
    )


def downgrade() -> None:
    op.drop_table("rems_records")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_patient_id")
        batch_op.drop_column("patient_id")
