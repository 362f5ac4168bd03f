"""submission metadata: up to 16 string key/value pairs per submission, filterable

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # [{"key": ..., "value": ...}, ...] sorted by key; existing rows get none.
    op.add_column(
        "submissions",
        sa.Column("metadata", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    # The history filter by one pair is `metadata @> '[{"key": k, "value": v}]'`; with
    # jsonb_path_ops an empty array adds no index entry, so submissions without metadata
    # cost the index nothing.
    op.create_index(
        "ix_submissions_metadata",
        "submissions",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_metadata", table_name="submissions")
    op.drop_column("submissions", "metadata")
