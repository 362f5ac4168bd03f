"""Prometheus metrics: requests and latency by operation, errors by code, SQL statements."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry()
M = TypeVar("M", Counter, Gauge, Histogram)

REQUESTS = Counter(
    "assay_graphql_requests_total",
    "GraphQL operations executed, by operation name, type and outcome.",
    ["operation", "type", "outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "assay_graphql_request_duration_seconds",
    "GraphQL operation latency, by operation name.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ERRORS = Counter(
    "assay_graphql_errors_total", "GraphQL errors, by code.", ["code"], registry=REGISTRY
)
DB_STATEMENTS = Counter("assay_db_statements_total", "SQL statements executed.", registry=REGISTRY)
EXECUTION_PATH = Counter(
    "assay_graphql_execution_total",
    "Query operations by execution path (compiled, fallback) and the reason for a fallback.",
    ["path", "reason"],
    registry=REGISTRY,
)
SIGN_INS = Counter(
    "assay_sign_ins_total",
    "Callers signed in: from this process's sign-in cache (cached) or by verifying the token "
    "and reading the user (verified).",
    ["source"],
    registry=REGISTRY,
)
COMPILED_PLANS = Counter(
    "assay_graphql_compiled_plan_total",
    "Query operations answered compiled, by plan: one SQL statement, or batched loads.",
    ["plan"],
    registry=REGISTRY,
)
FAST_LANE = Counter(
    "assay_graphql_fast_lane_total",
    "POST requests the fast lane answered (answered) or handed to the full pipeline, by reason.",
    ["outcome"],
    registry=REGISTRY,
)
JWKS_FETCHES = Counter(
    "assay_jwks_fetches_total", "JWKS fetches, by outcome.", ["outcome"], registry=REGISTRY
)


QUEUE_DEPTH = Gauge(
    "assay_queue_depth", "Submissions waiting or running, by status.", ["status"], registry=REGISTRY
)
QUEUE_OLDEST_PENDING_AGE = Gauge(
    "assay_queue_oldest_pending_age_seconds",
    "Age of the oldest PENDING submission (0 when none).",
    registry=REGISTRY,
)
OPEN_SUBSCRIPTIONS = Gauge(
    "assay_open_subscriptions", "Active GraphQL subscriptions in this process.", registry=REGISTRY
)
WEBSOCKETS_REFUSED = Counter(
    "assay_websockets_refused_total",
    "WebSockets refused at the handshake by the per-process or per-address cap.",
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Gauge(
    "assay_webhook_deliveries", "Webhook deliveries, by status.", ["status"], registry=REGISTRY
)
CALLBACK_DELIVERIES = Gauge(
    "assay_callback_deliveries", "Callback deliveries, by status.", ["status"], registry=REGISTRY
)
DATALOADER_BATCH_SIZE = Histogram(
    "assay_dataloader_batch_size",
    "Keys per DataLoader batch, by loader.",
    ["loader"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
RATE_LIMIT_REFUSALS = Counter(
    "assay_rate_limit_refusals_total",
    "Operations refused by a rate limit.",
    registry=REGISTRY,
)
RATE_LIMIT_SETTLES = Counter(
    "assay_rate_limit_settles_total",
    "Settles of this process's rate-limit spending with the shared store, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


# The child of each (metric, label values) once looked up: prometheus_client's labels() takes
# a lock and validates and converts the values on every call (~2% of a point lookup's CPU).
# No new cardinality: the registry keeps every child it made anyway.
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: M, *values: str) -> M:
    """metric.labels(*values), remembered."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


@dataclass
class StatementCount:
    """SQL statements of one request; mutable, so tasks spawned by the request (loader
    batches run in their own tasks, with a copy of the context) add to the same count."""

    value: int = 0


REQUEST_STATEMENTS: ContextVar[StatementCount | None] = ContextVar(
    "assay_request_statements", default=None
)


def start_request_statements() -> StatementCount:
    """Count the statements of the request running in the current context from now on."""
    count = StatementCount()
    REQUEST_STATEMENTS.set(count)
    return count


def record_webhook_deliveries(counts: Mapping[str, int]) -> None:
    for status, count in counts.items():
        WEBHOOK_DELIVERIES.labels(status).set(count)


def record_callback_deliveries(counts: Mapping[str, int]) -> None:
    for status, count in counts.items():
        CALLBACK_DELIVERIES.labels(status).set(count)


def record_queue(pending: int, running: int, oldest_pending_age_seconds: float) -> None:
    QUEUE_DEPTH.labels("PENDING").set(pending)
    QUEUE_DEPTH.labels("RUNNING").set(running)
    QUEUE_OLDEST_PENDING_AGE.set(oldest_pending_age_seconds)


def count_statement() -> None:
    DB_STATEMENTS.inc()
    if (request := REQUEST_STATEMENTS.get()) is not None:
        request.value += 1


def count_jwks_fetch(succeeded: bool) -> None:
    JWKS_FETCHES.labels("success" if succeeded else "failure").inc()


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def record_operation(
    operation_name: str | None,
    kind: str,
    error_codes: Sequence[str],
    duration_seconds: float,
) -> None:
    """Count one operation, its errors by code, and its latency."""
    # Unknown names would let clients create unbounded label values: bucket them.
    name = (operation_name or "anonymous")[:64]
    for code in error_codes:
        labelled(ERRORS, code).inc()
    labelled(REQUESTS, name, kind, "error" if error_codes else "ok").inc()
    labelled(LATENCY, name).observe(duration_seconds)


# The synchronous inference path, by model name and version (the registered models: bounded).
_INFERENCE_SECONDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    5, 10, 30,
)  # fmt: skip
INFERENCE_MODEL_SECONDS = Histogram(
    "assay_inference_model_seconds",
    "runInference: time of one predict call for a group, by model and version.",
    ["model", "version"],
    buckets=_INFERENCE_SECONDS,
    registry=REGISTRY,
)
INFERENCE_QUEUE_WAIT_SECONDS = Histogram(
    "assay_inference_queue_wait_seconds",
    "runInference: time a call waited in the batcher before its group started.",
    ["model", "version"],
    buckets=_INFERENCE_SECONDS,
    registry=REGISTRY,
)
INFERENCE_LATENCY_SECONDS = Histogram(
    "assay_inference_latency_seconds",
    "runInference: from the call's arrival to its committed answer, by model and version.",
    ["model", "version"],
    buckets=_INFERENCE_SECONDS,
    registry=REGISTRY,
)
INFERENCE_BATCH_SIZE = Histogram(
    "assay_inference_batch_size",
    "runInference: inputs per predict call (calls grouped by the batcher).",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)


class ServingMetrics:
    """The synchronous inference path's timings (the domain's ServingObserver port)."""

    def waited(self, name: str, version: str, seconds: float) -> None:
        labelled(INFERENCE_QUEUE_WAIT_SECONDS, name, version).observe(seconds)

    def ran(self, name: str, version: str, size: int, seconds: float) -> None:
        labelled(INFERENCE_MODEL_SECONDS, name, version).observe(seconds)
        labelled(INFERENCE_BATCH_SIZE, name, version).observe(size)

    def answered(self, name: str, version: str, seconds: float) -> None:
        labelled(INFERENCE_LATENCY_SECONDS, name, version).observe(seconds)


# Model monitoring, per model and version, sampled from the rollups each minute (every
# process reports the same values: they come from the database).
_MODEL = ["model", "version"]
MODEL_THROUGHPUT = Gauge(
    "assay_model_predictions_per_second",
    "Predictions per second over the last 5 minutes.",
    _MODEL,
    registry=REGISTRY,
)
MODEL_ERROR_RATE = Gauge(
    "assay_model_error_rate",
    "Failed attempts / (predictions + failures) over the last 5 minutes.",
    _MODEL,
    registry=REGISTRY,
)
MODEL_LATENCY_P95 = Gauge(
    "assay_model_latency_p95_seconds",
    "p95 latency over the last 5 minutes: kind=model (inside the model) or end_to_end.",
    [*_MODEL, "kind"],
    registry=REGISTRY,
)
MODEL_DRIFT = Gauge(
    "assay_model_drift_status",
    "Drift over the last hour: 0 OK, 1 WARNING, 2 DRIFT, -1 not enough data.",
    _MODEL,
    registry=REGISTRY,
)
MODEL_DRIFT_PSI = Gauge(
    "assay_model_drift_psi_max",
    "The largest PSI of any input feature or the output over the last hour.",
    _MODEL,
    registry=REGISTRY,
)
MODEL_ACCURACY = Gauge(
    "assay_model_accuracy",
    "Accuracy over the last hour's results with feedback (classifiers).",
    _MODEL,
    registry=REGISTRY,
)


def record_model_health(
    model: str,
    version: str,
    *,
    predictions_per_second: float,
    error_rate: float,
    p95_seconds: Mapping[str, float | None],
    drift_level: int,
    worst_psi: float | None,
    accuracy: float | None,
) -> None:
    """One model's gauges; a value that cannot be read (no traffic, no labels) is removed
    rather than left at its last reading."""
    labelled(MODEL_THROUGHPUT, model, version).set(predictions_per_second)
    labelled(MODEL_ERROR_RATE, model, version).set(error_rate)
    labelled(MODEL_DRIFT, model, version).set(drift_level)
    for kind, seconds in p95_seconds.items():
        _set_or_remove(MODEL_LATENCY_P95, (model, version, kind), seconds)
    _set_or_remove(MODEL_DRIFT_PSI, (model, version), worst_psi)
    _set_or_remove(MODEL_ACCURACY, (model, version), accuracy)


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is None:
        # The remembered child goes too: set again later, a removed child is never shown.
        _children.pop((id(gauge), labels), None)
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
    else:
        labelled(gauge, *labels).set(value)
