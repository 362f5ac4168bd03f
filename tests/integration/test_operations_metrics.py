"""/metrics additions (loader batches, rate-limit refusals, webhook deliveries) and /readyz."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.services import webhooks
from domain.webhooks import DeliveryStatus
from graph.execution import extension
from persistence.unit_of_work import SqlUnitOfWork
from server.bootstrap import Readiness
from telemetry import metrics
from tests.integration.conftest import TokenFactory, gql


async def test_metrics_show_loader_batch_sizes_and_rate_limit_refusals(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    bearer = token("mo@example.com")
    # webhookEndpoints is not compiled, so this document runs on the reference executor.
    document = "{ viewer { submissions { edges { node { id } } } } webhookEndpoints { id } }"
    await gql(client, document, token=bearer)
    text = (await client.get("/metrics")).text
    assert 'assay_dataloader_batch_size_count{loader="submission_pages"}' in text
    assert "assay_rate_limit_refusals_total" in text


def _executions(path: str, reason: str) -> float:
    labels = {"path": path, "reason": reason}
    return metrics.REGISTRY.get_sample_value("assay_graphql_execution_total", labels) or 0.0


async def test_metrics_count_queries_by_execution_path_and_fallback_reason(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    bearer = token("mo@example.com")
    compiled = _executions("compiled", "")
    unsupported = _executions("fallback", "field:Query.webhookEndpoints")
    unauthenticated = _executions("fallback", "unauthenticated")
    await gql(client, "{ viewer { submissions { edges { node { id } } } } }", token=bearer)
    await gql(client, "{ webhookEndpoints { id } }", token=bearer)
    await gql(client, "{ viewer { id } }")
    await gql(client, 'mutation { updateViewer(input: {name: "Mo"}) { id } }', token=bearer)
    assert _executions("compiled", "") == compiled + 1
    assert _executions("fallback", "field:Query.webhookEndpoints") == unsupported + 1
    assert _executions("fallback", "unauthenticated") == unauthenticated + 1


async def test_webhook_delivery_counts_cover_every_status(db: AsyncEngine) -> None:
    counts = await webhooks.delivery_counts(SqlUnitOfWork(db))
    assert counts == dict.fromkeys(DeliveryStatus, 0)
    metrics.record_webhook_deliveries({str(k): v for k, v in counts.items()})
    body, _ = metrics.render()
    assert b'assay_webhook_deliveries{status="DEAD"} 0.0' in body


async def test_readyz_checks_the_token_issuer_keys(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "failures": {}, "degraded": {}}


async def test_readiness_names_signing_keys_that_cannot_be_loaded(db: AsyncEngine) -> None:
    class Blobs:
        async def check(self) -> None:
            return None

    async def no_keys() -> None:
        raise RuntimeError("JWKS unreachable")

    readiness = Readiness(db, Blobs(), signing_keys=no_keys)  # type: ignore[arg-type]  # only check() is used
    assert await readiness() == {"tokenIssuer": "signing keys unavailable"}


async def test_an_executor_error_is_logged_with_its_operation_and_counted(
    client: httpx.AsyncClient,
    token: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
    executor_errors: list[logging.LogRecord],
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("a bug in the one-statement path")

    monkeypatch.setattr(extension, "project", broken)
    errors = _executions("fallback", "error")
    body = await gql(
        client,
        "query Mine { viewer { submissions { edges { node { id } } } } }",
        token=token("eo@example.com"),
    )
    assert body["data"]["viewer"]["submissions"] == {"edges": []}  # the reference path answered
    assert _executions("fallback", "error") == errors + 1
    [record] = executor_errors
    assert record.levelno == logging.ERROR
    assert "operation Mine" in record.getMessage()
    executor_errors.clear()  # provoked on purpose


def _sample(name: str, labels: dict[str, str]) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_request_refused_before_the_schema_counts_as_a_request_with_its_latency(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    # An unknown persisted-query hash is refused before any operation runs: the pipeline's
    # record step still counts it, as an error, and times it.
    requests = {"operation": "Refused", "type": "unknown", "outcome": "error"}
    latency = {"operation": "Refused"}
    not_found = {"code": "PERSISTED_QUERY_NOT_FOUND"}
    before = (
        _sample("assay_graphql_requests_total", requests),
        _sample("assay_graphql_request_duration_seconds_count", latency),
        _sample("assay_graphql_errors_total", not_found),
    )
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    response = await client.post(
        "/graphql",
        json={"operationName": "Refused", "extensions": extensions},
        headers={"Authorization": f"Bearer {token('refused@example.com')}"},
    )
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]
    after = (
        _sample("assay_graphql_requests_total", requests),
        _sample("assay_graphql_request_duration_seconds_count", latency),
        _sample("assay_graphql_errors_total", not_found),
    )
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)
    text = (await client.get("/metrics")).text
    assert 'assay_graphql_requests_total{operation="Refused",outcome="error",type="unknown"}' in (
        text
    )
