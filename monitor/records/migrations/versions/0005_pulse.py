"""readings.pr: the pulse rate as its own signal

Revision ID: 0005_pulse
Revises: 0004_hl7
Create Date: 2026-12-01 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pulse"
down_revision = "0004_hl7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: readings stored before this hold no pulse rate ("not measured").
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pr", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_column("pr")
