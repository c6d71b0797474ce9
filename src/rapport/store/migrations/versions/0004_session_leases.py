"""session leases: a live session is held by one worker at a time

`worker` and `lease_until` name the worker process holding a room session and until when; a
worker renews its lease while it runs the session, and one whose lease lapsed is presumed dead,
so the session is dispatched again. `epoch` counts the holders: each claim increments it, and a
worker writes only while the epoch is still its own (a fence against a worker cut off and still
running). `dispatched_at`: when the API last asked LiveKit to dispatch the room. `next_seq` and
`windows_end` (the end of the last window emitted) are written with each event a worker stores,
so the next holder goes on gap-free even after an erasure deleted the stored events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as b:
        b.add_column(sa.Column("worker", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("next_seq", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("windows_end", sa.Float(), nullable=False, server_default="0"))
        b.create_index("ix_sessions_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as b:
        b.drop_index("ix_sessions_status")
        for column in (
            "windows_end",
            "next_seq",
            "dispatched_at",
            "lease_until",
            "epoch",
            "worker",
        ):
            b.drop_column(column)
