"""SQLAlchemy Core tables: the one description of the schema that repositories query."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _uuid_pk() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


users = sa.Table(
    "users",
    metadata,
    _uuid_pk(),
    sa.Column("subject", sa.Text, nullable=False, unique=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("language", sa.Text, nullable=False, server_default="en"),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("groups", ARRAY(sa.Text), nullable=False, server_default="{}"),
    *_timestamps(),
    # Set when the account was erased: the row stays, emptied, as the owner of the events
    # that close its sockets; the identity (subject) is freed for a new account.
    sa.Column("erased_at", sa.DateTime(timezone=True)),
    sa.Index("ix_users_created_at_id", "created_at", "id"),
)

assets = sa.Table(
    "assets",
    metadata,
    _uuid_pk(),
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("object_key", sa.Text, nullable=False, unique=True),
    sa.Column("upload_expires_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.CheckConstraint("status IN ('PENDING_UPLOAD', 'AVAILABLE', 'DELETED')", name="status"),
    sa.CheckConstraint("size_bytes > 0", name="size_positive"),
    sa.Index("ix_assets_owner_created", "owner_id", "created_at", "id"),
    sa.Index(
        "ix_assets_pending_expiry",
        "upload_expires_at",
        postgresql_where=sa.text("status = 'PENDING_UPLOAD'"),
    ),
    sa.Index(
        "ix_assets_deleted_grant_expiry",
        "upload_expires_at",
        postgresql_where=sa.text("status = 'DELETED' AND upload_expires_at IS NOT NULL"),
    ),
    # The retention sweep: live assets, oldest first.
    sa.Index(
        "ix_assets_live_created", "created_at", postgresql_where=sa.text("status <> 'DELETED'")
    ),
)

models = sa.Table(
    "models",
    metadata,
    _uuid_pk(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("input_schema", JSONB, nullable=False),
    sa.Column("output_schema", JSONB, nullable=False),
    sa.Column("runtime", sa.Text, nullable=False),
    sa.Column("runtime_config", JSONB, nullable=False, server_default="{}"),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
    sa.UniqueConstraint("name", "version"),
)

submissions = sa.Table(
    "submissions",
    metadata,
    _uuid_pk(),
    # A user's and a model's id, checked once per INSERT statement by a trigger rather than
    # row by row by a foreign key; users and models are never deleted (migration 0014).
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("model_id", sa.Uuid, nullable=False),
    sa.Column("input", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.Text),
    sa.Column(
        "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.Column("batch_id", sa.Uuid, sa.ForeignKey("batches.id")),
    sa.Column("callback_url", sa.Text),
    # [{"key": ..., "value": ...}] sorted by key (domain/submissions.py), migration 0008.
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.CheckConstraint(
        "status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')", name="status"
    ),
    sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    sa.Index("ix_submissions_owner_created", "owner_id", "created_at", "id"),
    # History filtered by model or by status: the same keyset, read either way.
    sa.Index("ix_submissions_owner_model_created", "owner_id", "model_id", "created_at", "id"),
    sa.Index("ix_submissions_owner_status_created", "owner_id", "status", "created_at", "id"),
    sa.Index(
        "ix_submissions_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
        # Only rows with metadata (migration 0011): GIN would give each empty one an entry.
        postgresql_where=sa.text("metadata <> '[]'::jsonb"),
    ),
    sa.Index(
        "uq_submissions_owner_idempotency_key",
        "owner_id",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    ),
    sa.Index(
        "ix_submissions_pending_queue",
        "available_at",
        "created_at",
        postgresql_where=sa.text("status = 'PENDING'"),
    ),
    sa.Index(
        "ix_submissions_running_lease",
        "lease_expires_at",
        postgresql_where=sa.text("status = 'RUNNING'"),
    ),
    # A batch's submissions in input order, and its counts.
    sa.Index(
        "ix_submissions_batch_created",
        "batch_id",
        "created_at",
        "id",
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    ),
)

# Each model's measured work (domain.batches.WorkTimings): a rollup the workers update with
# every chunk they write, read for batches' estimated completion.
model_timings = sa.Table(
    "model_timings",
    metadata,
    sa.Column(
        "model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("chunks", sa.Float, nullable=False),
    sa.Column("rows", sa.Float, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("rows_squared", sa.Float, nullable=False),
    sa.Column("rows_seconds", sa.Float, nullable=False),
    sa.Column("largest_chunk", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per batchInference; its status and counts are read from its submissions.
batches = sa.Table(
    "batches",
    metadata,
    _uuid_pk(),
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("model_id", sa.Uuid, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("callback_url", sa.Text),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.CheckConstraint("size > 0", name="size_positive"),
    sa.Index("ix_batches_owner_created", "owner_id", "created_at", "id"),
)

submission_assets = sa.Table(
    "submission_assets",
    metadata,
    sa.Column(
        "submission_id",
        sa.Uuid,
        sa.ForeignKey("submissions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("asset_id", sa.Uuid, sa.ForeignKey("assets.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_submission_assets_asset_id", "asset_id"),
)

results = sa.Table(
    "results",
    metadata,
    _uuid_pk(),
    # A submission's id, checked once per INSERT statement by a trigger, not by a foreign
    # key: a batch's results may commit before their submissions (migration 0015,
    # persistence/alongside.py); deleting submissions deletes their results.
    sa.Column("submission_id", sa.Uuid, nullable=False),
    sa.Column("prediction", JSONB, nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("alternatives", JSONB, nullable=False, server_default="[]"),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("processing_time_ms", sa.Integer, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("processing_time_ms >= 0", name="processing_time_non_negative"),
    sa.Index("ix_results_submission_created", "submission_id", "created_at", "id"),
)

# Results written alongside a batch's transaction and not confirmed by it yet: a key of its
# own, and the submissions those results name (persistence/alongside.py, migration 0015).
unconfirmed_results = sa.Table(
    "unconfirmed_results",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("submission_ids", ARRAY(sa.Uuid), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _uuid_pk(),
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", ARRAY(sa.Text), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
    sa.Index("ix_webhook_endpoints_owner_created", "owner_id", "created_at", "id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    # A user's id, unchecked (migration 0012): users are never deleted, and an event is
    # written with its subject, whose owner is checked; the check per event row cost more
    # than the row.
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("subject_id", sa.Uuid, nullable=False),
    # json, not jsonb (migration 0016): PostgreSQL keeps the text as written, checked, where
    # jsonb parses it into its binary form (~45% of an event row's INSERT) and prints it back
    # for every read. Each payload is written once and read whole; the two statements that
    # look inside one (the webhooks' and callbacks' fan-out) cast it.
    sa.Column("payload", JSON, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _uuid_pk(),
    sa.Column(
        "endpoint_id",
        sa.Uuid,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.CheckConstraint("status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD')", name="status"),
    sa.UniqueConstraint("endpoint_id", "event_id"),
    sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    ),
)

webhook_delivery_attempts = sa.Table(
    "webhook_delivery_attempts",
    metadata,
    _uuid_pk(),
    sa.Column(
        "delivery_id",
        sa.Uuid,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_webhook_delivery_attempts_delivery_created", "delivery_id", "created_at"),
)

# The key each user's callbacks are signed with (Standard Webhooks "whsec_" form).
callback_secrets = sa.Table(
    "callback_secrets",
    metadata,
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("secret", sa.Text, nullable=False),
    *_timestamps(),
)

# Callbacks: at most one per submission or batch (subject_id), queued by the webhook fan-out.
callback_deliveries = sa.Table(
    "callback_deliveries",
    metadata,
    _uuid_pk(),
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subject_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.CheckConstraint("status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD')", name="status"),
    sa.Index(
        "ix_callback_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    ),
)

# How far each outbox consumer has read the events table (by event id).
outbox_cursors = sa.Table(
    "outbox_cursors",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
)

# GraphQL documents by the SHA-256 of their text: automatic persisted queries and, with
# is_trusted, the documents registered by `assay operations add`.
persisted_operations = sa.Table(
    "persisted_operations",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("is_trusted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Who registered an automatic persisted query, for the per-caller quota (NULL: trusted).
    sa.Column("registered_by", sa.Uuid),
    sa.Column(
        "last_used_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index(
        "ix_persisted_operations_registered_by_used",
        "registered_by",
        "last_used_at",
        postgresql_where=sa.text("NOT is_trusted"),
    ),
)

# API keys: only a SHA-256 of each secret is stored (see domain/api_keys.py for why that
# suffices); deleted with their user.
api_keys = sa.Table(
    "api_keys",
    metadata,
    _uuid_pk(),
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("ix_api_keys_owner_created", "owner_id", "created_at", "id"),
)

# Stored bytes to remove, written in the transaction that removed their rows (an outbox):
# the blob deleter removes each and forgets it, retrying until the store confirms.
blob_deletions = sa.Table(
    "blob_deletions",
    metadata,
    sa.Column("object_key", sa.Text, primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("last_error", sa.Text),
    # An upload URL still valid when the row was queued: S3 may store bytes until then, so
    # the key is deleted once more after it.
    sa.Column("not_final_before", sa.DateTime(timezone=True)),
    sa.Index("ix_blob_deletions_due", "next_attempt_at"),
)

# ------------------------------------------------------------------ model monitoring

_COUNTS = ARRAY(sa.BigInteger)


def _model_key(*, primary: bool) -> sa.Column[object]:
    return sa.Column(
        "model_id",
        sa.Uuid,
        sa.ForeignKey("models.id", ondelete="CASCADE"),
        primary_key=primary,
        nullable=False,
    )


# Per model version, one row per minute (span 60) and one per hour (span 3600) starting at
# `minute`, added to as work is recorded (domain/monitoring.py says what each array counts);
# assay_add_counts (migration 0009) sums arrays on conflict. A day reads 24 hourly rows and
# the minutes of its partial hours. Writers alternate between two `shard`s of each row, so two
# concurrent commits for one model do not wait on each other's row lock.
model_stats = sa.Table(
    "model_stats",
    metadata,
    _model_key(primary=True),
    sa.Column("span", sa.Integer, primary_key=True),
    sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True, server_default="0"),
    sa.Column("predictions", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("model_ms", _COUNTS, nullable=False),
    sa.Column("end_to_end_ms", _COUNTS, nullable=False),
    sa.Column("output", _COUNTS, nullable=False),
    sa.Column("features", _COUNTS, nullable=False),
    sa.Index("ix_model_stats_minute", "minute"),
)

# The reference made from a model's first predictions, when it ships none.
model_profiles = sa.Table(
    "model_profiles",
    metadata,
    _model_key(primary=True),
    sa.Column("features", JSONB, nullable=False),
    sa.Column("output", _COUNTS, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A result's true label, from its owner; erased with the result.
result_feedback = sa.Table(
    "result_feedback",
    metadata,
    sa.Column(
        "result_id", sa.Uuid, sa.ForeignKey("results.id", ondelete="CASCADE"), primary_key=True
    ),
    _model_key(primary=False),
    sa.Column("label", JSONB, nullable=False),
    sa.Column("predicted_class", sa.Text),
    sa.Column("true_class", sa.Text),
    sa.Column("predicted_value", sa.Float),
    sa.Column("true_value", sa.Float),
    sa.Column("result_created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_result_feedback_model_id_result_created_at", "model_id", "result_created_at"),
)

model_alert_policies = sa.Table(
    "model_alert_policies",
    metadata,
    _model_key(primary=True),
    sa.Column("latency_p95_ms", sa.Float),
    sa.Column("error_rate", sa.Float),
    sa.Column("drift", sa.Text),
    sa.Column("min_accuracy", sa.Float),
    sa.Column("min_r2", sa.Float),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

model_alerts = sa.Table(
    "model_alerts",
    metadata,
    _uuid_pk(),
    _model_key(primary=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_model_alerts_at_id", "at", "id"),
    sa.Index("ix_model_alerts_model_id_at_id", "model_id", "at", "id"),
)
