"""submissions without metadata leave ix_submissions_metadata

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 01:15:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Contrary to 0008's hope, GIN gives a row whose jsonb_path_ops yield no key an entry of
    # its own (an "empty item"): every insert and every non-HOT update of a submission, nearly
    # all without metadata, wrote one (a thousand WAL records per thousand rows of a batch).
    # Partial, the index holds only rows with metadata; a filter states the predicate too.
    op.drop_index("ix_submissions_metadata", table_name="submissions")
    op.create_index(
        "ix_submissions_metadata",
        "submissions",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
        postgresql_where="metadata <> '[]'::jsonb",
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_metadata", table_name="submissions")
    op.create_index(
        "ix_submissions_metadata",
        "submissions",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
