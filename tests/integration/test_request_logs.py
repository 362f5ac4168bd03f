"""One structured log line per GraphQL operation, with nothing secret in it."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.protection.persisted import document_hash
from server.logging import JsonFormatter
from tests.integration.conftest import TokenFactory, gql

SECRET = "s3cr3t-input-value"


def request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "assay.request"]


async def test_an_operation_logs_its_name_type_principal_timing_cost_and_statements(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="assay.request")
    bearer = token("lou@example.com")
    body = await gql(client, "query Me { viewer { id } }", token=bearer)
    (record,) = request_records(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["logger"] == "assay.request"
    assert entry["operation_name"] == "Me"
    assert entry["operation_type"] == "query"
    assert entry["principal_id"]
    assert entry["error_codes"] == []
    assert entry["cost"] == 1
    assert entry["duration_ms"] >= 0
    assert entry["sql_statements"] >= 1  # the user upsert at least
    assert len(entry["request_id"]) >= 16
    assert body["data"]["viewer"]["id"]


async def test_errors_are_logged_by_code_and_anonymous_callers_have_no_principal(
    client: httpx.AsyncClient, db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assay.request")
    await gql(client, "{ viewer { id } }")
    (record,) = request_records(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["error_codes"] == ["UNAUTHENTICATED"]
    assert entry["principal_id"] is None
    assert entry["operation_name"] is None


async def test_refused_persisted_queries_are_logged_too(
    client: httpx.AsyncClient, db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assay.request")
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": document_hash("# log\n{ a }")}}
    await client.post("/graphql", json={"extensions": extensions})
    (record,) = request_records(caplog)
    assert json.loads(JsonFormatter().format(record))["error_codes"] == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


async def test_no_variables_documents_or_tokens_are_logged(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
    default_models: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    bearer = token("sam@example.com")
    mutation = """mutation Rename($name: String!) { updateViewer(input: {name: $name}) { id } }"""
    await gql(client, mutation, {"name": SECRET}, token=bearer)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"operation_name": "Rename"' in line for line in lines)
    for line in lines:
        assert SECRET not in line
        assert bearer not in line
        assert "updateViewer" not in line
