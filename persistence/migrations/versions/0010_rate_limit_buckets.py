"""rate_limit_buckets: the callers' token buckets that every server process shares

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 20:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # UNLOGGED: no write-ahead log for a row written on every settle; a crash of the database
    # empties the table, which only refills every caller's budget (docs/serving.md).
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limit_buckets (
            bucket text NOT NULL,
            key text NOT NULL,
            tokens double precision NOT NULL,
            per_second double precision NOT NULL,
            burst double precision NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (bucket, key)
        )
        """
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
