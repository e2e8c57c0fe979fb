"""readings: drop session_id; a reading's session is derived from its bed and device time

A reading belongs to the session of its bed whose span holds its device ``ts``, whenever it
arrives (docs/reliability.md). The stored ``session_id`` was the session open when the
reading *arrived*, wrong for a backlog that crosses a change of patient, so it is dropped
rather than trusted; ``Store.readings(session_id=...)`` selects by bed and span on
``ix_readings_bed_ts``.

Revision ID: 0002_members
Revises: 0001_initial
Create Date: 2026-12-01 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_members"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index("ix_readings_session_ts")
        batch_op.drop_column("session_id")


def downgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_id", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_readings_session_ts", ["session_id", "ts"], unique=False)
    # Older code trusts the column: fill it by the measurement-time rule (the latest session
    # of the bed admitted by ts, if ts is before its end), the same rule the upgrade derives.
    op.execute(
        sa.text(
            "UPDATE readings SET session_id = ("
            " SELECT s.id FROM sessions s"
            " WHERE s.bed_id = readings.bed_id AND s.opened_at <= readings.ts"
            " ORDER BY s.opened_at DESC, s.id DESC LIMIT 1)"
        )
    )
    op.execute(
        sa.text(
            "UPDATE readings SET session_id = NULL WHERE session_id IS NOT NULL AND EXISTS ("
            " SELECT 1 FROM sessions s WHERE s.id = readings.session_id"
            " AND s.ended_at IS NOT NULL AND readings.ts >= s.ended_at)"
        )
    )
