"""history indexes, API keys, account erasure, blob deletions, asset retention

Revision ID: 0006
Revises: 0004 (re-chained onto 0005 when merged)
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_submissions_owner_model_created",
        "submissions",
        ["owner_id", "model_id", "created_at", "id"],
    )
    op.create_index(
        "ix_submissions_owner_status_created",
        "submissions",
        ["owner_id", "status", "created_at", "id"],
    )
    op.create_index(
        "ix_assets_live_created",
        "assets",
        ["created_at"],
        postgresql_where=sa.text("status <> 'DELETED'"),
    )
    op.add_column("users", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_api_keys_owner_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_index("ix_api_keys_owner_created", "api_keys", ["owner_id", "created_at", "id"])
    op.create_table(
        "blob_deletions",
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("not_final_before", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("object_key", name="pk_blob_deletions"),
    )
    op.create_index("ix_blob_deletions_due", "blob_deletions", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_blob_deletions_due", table_name="blob_deletions")
    op.drop_table("blob_deletions")
    op.drop_index("ix_api_keys_owner_created", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_column("users", "erased_at")
    op.drop_index("ix_assets_live_created", table_name="assets")
    op.drop_index("ix_submissions_owner_status_created", table_name="submissions")
    op.drop_index("ix_submissions_owner_model_created", table_name="submissions")
