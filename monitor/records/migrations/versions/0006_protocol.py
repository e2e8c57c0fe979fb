"""sessions.protocol: the clinic protocol (session type) a session runs

A session names its protocol's id from the clinic config (docs/protocols.md). Sessions opened
before protocols existed keep NULL: they are judged by no protocol (nothing gated), whatever
the clinic's default is now.

Revision ID: 0006_protocol
Revises: 0005_pulse
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_protocol"
down_revision = "0005_pulse"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol", sa.String(length=48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("protocol")
