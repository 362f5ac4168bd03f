"""sweep DELETED assets' late bytes; persisted documents by caller, least recently used first

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_assets_deleted_grant_expiry",
        "assets",
        ["upload_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'DELETED' AND upload_expires_at IS NOT NULL"),
    )
    op.add_column("persisted_operations", sa.Column("registered_by", sa.Uuid(), nullable=True))
    op.add_column(
        "persisted_operations",
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_persisted_operations_registered_by_used",
        "persisted_operations",
        ["registered_by", "last_used_at"],
        unique=False,
        postgresql_where=sa.text("NOT is_trusted"),
    )


def downgrade() -> None:
    op.drop_index("ix_persisted_operations_registered_by_used", table_name="persisted_operations")
    op.drop_column("persisted_operations", "last_used_at")
    op.drop_column("persisted_operations", "registered_by")
    op.drop_index("ix_assets_deleted_grant_expiry", table_name="assets")
