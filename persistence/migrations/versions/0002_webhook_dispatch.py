"""webhook dispatch: delivery attempts and the outbox cursor

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_delivery_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery_attempts")),
    )
    op.create_index(
        "ix_webhook_delivery_attempts_delivery_created",
        "webhook_delivery_attempts",
        ["delivery_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "outbox_cursors",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_outbox_cursors")),
    )
    # Start after the events that exist now: endpoints never receive history from before.
    op.execute(
        "INSERT INTO outbox_cursors (name, last_event_id) "
        "SELECT 'webhooks', COALESCE(MAX(id), 0) FROM events"
    )


def downgrade() -> None:
    op.drop_table("outbox_cursors")
    op.drop_index(
        "ix_webhook_delivery_attempts_delivery_created", table_name="webhook_delivery_attempts"
    )
    op.drop_table("webhook_delivery_attempts")
