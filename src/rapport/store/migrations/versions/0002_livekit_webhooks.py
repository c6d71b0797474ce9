"""livekit webhook ids

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 02:00:00
"""

import sqlalchemy as sa
from alembic import op

import rapport.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "livekit_webhooks",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("room", sa.Text(), nullable=True),
        sa.Column(
            "received_at", rapport.store.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_livekit_webhooks_received_at"), "livekit_webhooks", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_livekit_webhooks_received_at"), table_name="livekit_webhooks")
    op.drop_table("livekit_webhooks")
