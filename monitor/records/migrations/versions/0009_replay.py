"""readings.received_at indexed: a start rebuilds every bed from one range read of what was
received over the replay horizon, instead of scanning each bed's whole history

The rebuild replays the readings measured or received since the horizon (docs/reliability.md,
"Rebuilt from the record"). Device time is bounded by the receive time (a reading more than
``MAX_FUTURE_SKEW_S`` ahead of the monitor's clock is refused), so both are found by a range
on ``received_at``, which grows with every stored reading: the index is appended to at its
end, one entry a reading.

Revision ID: 0009_replay
Revises: 0008_atomic
"""

from __future__ import annotations

from alembic import op

revision = "0009_replay"
down_revision = "0008_atomic"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_readings_received", "readings", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_readings_received", table_name="readings")
