"""model timings for batch estimates; drop the finished-by-model index they replace

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_timings",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("chunks", sa.Float(), nullable=False),
        sa.Column("rows", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("rows_squared", sa.Float(), nullable=False),
        sa.Column("rows_seconds", sa.Float(), nullable=False),
        sa.Column("largest_chunk", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id"),
    )
    # Estimates no longer count a model's recently finished submissions; the index only
    # slowed every write that finishes one.
    op.drop_index("ix_submissions_model_finished", table_name="submissions")


def downgrade() -> None:
    op.create_index(
        "ix_submissions_model_finished",
        "submissions",
        ["model_id", "updated_at"],
        postgresql_where=sa.text("status IN ('SUCCEEDED', 'FAILED')"),
    )
    op.drop_table("model_timings")
