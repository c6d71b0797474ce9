"""projects: every key, session, consent, webhook endpoint and consent-log chain belongs to one

Rows from before projects go to the project "default"; keys from before get the admin scope
(they could do everything).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("api_keys", "sessions", "consents", "webhook_endpoints")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as b:
            b.add_column(
                sa.Column("project", sa.String(length=64), nullable=False, server_default="default")
            )
            b.create_index(f"ix_{table}_project", ["project"], unique=False)
    with op.batch_alter_table("api_keys") as b:
        b.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="admin")
        )
    # One chain per project: the key becomes (project, seq). Copied into a new table, the same
    # way on SQLite and PostgreSQL (0001 left the primary key unnamed).
    op.create_table(
        "consent_log_v3",
        sa.Column("project", sa.String(length=64), nullable=False),
        *_log_columns(),
        sa.PrimaryKeyConstraint("project", "seq", name="pk_consent_log"),
        sa.UniqueConstraint("project", "entry_hash", name="uq_consent_log_entry_hash"),
    )
    op.execute(
        f"INSERT INTO consent_log_v3 (project, {_LOG}) SELECT 'default', {_LOG} FROM consent_log"
    )
    op.drop_table("consent_log")
    op.rename_table("consent_log_v3", "consent_log")


_LOG = "seq, kind, content, content_hash, prev_hash, entry_hash, kid, signature"


def _log_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
    ]


def downgrade() -> None:
    # Only a single-project database goes back: older code has one chain.
    op.create_table(
        "consent_log_v2",
        *_log_columns(),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("entry_hash", name="uq_consent_log_v2_entry_hash"),
    )
    op.execute(f"INSERT INTO consent_log_v2 ({_LOG}) SELECT {_LOG} FROM consent_log")
    op.drop_table("consent_log")
    op.rename_table("consent_log_v2", "consent_log")
    with op.batch_alter_table("api_keys") as b:
        b.drop_column("scope")
    for table in _TABLES:
        with op.batch_alter_table(table) as b:
            b.drop_index(f"ix_{table}_project")
            b.drop_column("project")
