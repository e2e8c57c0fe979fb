"""retention marks: the highest seq swept by retention per device

Revision ID: 0004_hl7
Revises: 0003_core
Create Date: 2026-12-01 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_hl7"
down_revision = "0003_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_marks",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("swept_seq", sa.BigInteger(), nullable=False),
        sa.Column("swept_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_retention_marks")),
    )


def downgrade() -> None:
    op.drop_table("retention_marks")
