"""batches tracked as one object; per-request callbacks signed with the user's callback secret

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
        for name in ("created_at", "updated_at")
    ]


def _create_batches() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("size > 0", name=op.f("ck_batches_size_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_batches_model_id_models")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_batches_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(
        "ix_batches_owner_created", "batches", ["owner_id", "created_at", "id"], unique=False
    )


def _extend_submissions() -> None:
    op.add_column("submissions", sa.Column("batch_id", sa.Uuid(), nullable=True))
    op.add_column("submissions", sa.Column("callback_url", sa.Text(), nullable=True))
    op.create_foreign_key(
        op.f("fk_submissions_batch_id_batches"), "submissions", "batches", ["batch_id"], ["id"]
    )
    op.create_index(
        "ix_submissions_batch_created",
        "submissions",
        ["batch_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_submissions_model_finished",
        "submissions",
        ["model_id", "updated_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('SUCCEEDED', 'FAILED')"),
    )


def _create_callbacks() -> None:
    op.create_table(
        "callback_secrets",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_callback_secrets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_callback_secrets")),
    )
    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD')",
            name=op.f("ck_callback_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_callback_deliveries_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_callback_deliveries_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_deliveries")),
        sa.UniqueConstraint("subject_id", name=op.f("uq_callback_deliveries_subject_id")),
    )
    op.create_index(
        "ix_callback_deliveries_due",
        "callback_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    )


def upgrade() -> None:
    _create_batches()
    _extend_submissions()
    _create_callbacks()


def downgrade() -> None:
    op.drop_index("ix_callback_deliveries_due", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
    op.drop_table("callback_secrets")
    op.drop_index("ix_submissions_model_finished", table_name="submissions")
    op.drop_index("ix_submissions_batch_created", table_name="submissions")
    op.drop_constraint(op.f("fk_submissions_batch_id_batches"), "submissions", type_="foreignkey")
    op.drop_column("submissions", "callback_url")
    op.drop_column("submissions", "batch_id")
    op.drop_index("ix_batches_owner_created", table_name="batches")
    op.drop_table("batches")
