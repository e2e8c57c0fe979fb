"""sessions.version, idempotency_keys and device_bindings: atomic changes, safe repeats, and
readings placed by the device's binding at their measurement time

``sessions.version`` is bumped by every change to a session and guards it in SQL (a change is
written only if the version its checks read is still the stored one), so two changes judged
on the same state cannot both be stored (docs/api.md, "Repeats and races").

``idempotency_keys`` holds each ``Idempotency-Key`` a user sent with a POST, written in the
transaction of the change it made, and the first answer.

``device_bindings`` keeps which bed each device was bound to, and from when. Each existing
device gets one binding to its present bed from the earliest time on: the history before this
migration is not known, and its readings keep the bed they were stored with.

Revision ID: 0008_atomic
Revises: 0007_course
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_atomic"
down_revision = "0007_course"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "idempotency_keys",
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])
    op.create_table(
        "device_bindings",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("bed_id", sa.String(length=64), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_bindings_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["bed_id"], ["beds.id"], name=op.f("fk_device_bindings_bed_id_beds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_bindings")),
    )
    op.create_index(
        "ix_device_bindings_device", "device_bindings", ["device_id", "since"], unique=False
    )
    devices = sa.table("devices", sa.column("id", sa.String), sa.column("bed_id", sa.String))
    bindings = sa.table(
        "device_bindings",
        sa.column("device_id", sa.String),
        sa.column("bed_id", sa.String),
        sa.column("since", sa.Float),
    )
    op.execute(
        bindings.insert().from_select(
            ["device_id", "bed_id", "since"],
            sa.select(devices.c.id, devices.c.bed_id, sa.literal(0.0, sa.Float)),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_device_bindings_device", table_name="device_bindings")
    op.drop_table("device_bindings")
    op.drop_index("ix_idempotency_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("version")
