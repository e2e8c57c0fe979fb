"""heartbeats: the database write probe behind /health

Revision ID: 0003_core
Revises: 0002_members
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_core"
down_revision = "0002_members"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id"),
    )


def downgrade() -> None:
    op.drop_table("heartbeats")
