"""model monitoring: per-minute rollups, reference profiles, feedback, alert policies, alerts

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05 19:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COUNTS = ARRAY(sa.BigInteger())

# Element-wise sum of two count arrays (the shorter one padded with zeros): how a rollup
# row takes another chunk's tally in its ON CONFLICT DO UPDATE.
_ADD_COUNTS = """
CREATE FUNCTION assay_add_counts(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
  FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$
"""


def upgrade() -> None:
    op.execute(_ADD_COUNTS)
    op.create_table(
        "model_stats",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("predictions", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("model_ms", _COUNTS, nullable=False),
        sa.Column("end_to_end_ms", _COUNTS, nullable=False),
        sa.Column("output", _COUNTS, nullable=False),
        sa.Column("features", _COUNTS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_model_stats_model_id_models", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", "span", "minute", "shard", name="pk_model_stats"),
    )
    op.create_index("ix_model_stats_minute", "model_stats", ["minute"])
    op.create_table(
        "model_profiles",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("features", JSONB(), nullable=False),
        sa.Column("output", _COUNTS, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_model_profiles_model_id_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name="pk_model_profiles"),
    )
    op.create_table(
        "result_feedback",
        sa.Column("result_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("label", JSONB(), nullable=False),
        sa.Column("predicted_class", sa.Text(), nullable=True),
        sa.Column("true_class", sa.Text(), nullable=True),
        sa.Column("predicted_value", sa.Float(), nullable=True),
        sa.Column("true_value", sa.Float(), nullable=True),
        sa.Column("result_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["results.id"],
            name="fk_result_feedback_result_id_results",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_result_feedback_model_id_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", name="pk_result_feedback"),
    )
    op.create_index(
        "ix_result_feedback_model_id_result_created_at",
        "result_feedback",
        ["model_id", "result_created_at"],
    )
    op.create_table(
        "model_alert_policies",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("latency_p95_ms", sa.Float(), nullable=True),
        sa.Column("error_rate", sa.Float(), nullable=True),
        sa.Column("drift", sa.Text(), nullable=True),
        sa.Column("min_accuracy", sa.Float(), nullable=True),
        sa.Column("min_r2", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_model_alert_policies_model_id_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name="pk_model_alert_policies"),
    )
    op.create_table(
        "model_alerts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_model_alerts_model_id_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_alerts"),
    )
    op.create_index("ix_model_alerts_at_id", "model_alerts", ["at", "id"])
    op.create_index("ix_model_alerts_model_id_at_id", "model_alerts", ["model_id", "at", "id"])


def downgrade() -> None:
    op.drop_table("model_alerts")
    op.drop_table("model_alert_policies")
    op.drop_table("result_feedback")
    op.drop_table("model_profiles")
    op.drop_table("model_stats")
    op.execute("DROP FUNCTION assay_add_counts(bigint[], bigint[])")
