"""OpenTelemetry tracing as build_app wires it: request, SQL, slow-resolver and client spans."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.webhooks import SECRET_PREFIX, WebhookMessage
from integrations.blobs.s3 import S3BlobStore
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from server.bootstrap import build_app
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import IRIS_INPUT, TokenFactory, gql
from tests.integration.webhook_receiver import Receiver, running

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

SECRET = "s3cr3t-in-the-query"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@asynccontextmanager
async def traced_client(
    settings: Settings, postgres_url: str, provider: TracerProvider, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of build_app's traced app, its lifespan running (shutdown uninstruments)."""
    traced = variant(settings, tracing=True, **overrides)
    app = build_app(traced, postgres_url, tracer_provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


def attribute_values(spans: tuple[ReadableSpan, ...]) -> str:
    return " ".join(str(v) for span in spans for v in (span.attributes or {}).values())


def resolver_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith("graphql.resolve ")]


async def test_a_query_has_request_sql_and_resolver_spans_and_no_secrets(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    bearer = token("tracy@example.com")
    async with traced_client(
        settings, postgres_url, provider, tracing_resolver_threshold_ms=0
    ) as client:
        # Resolver spans come from the reference executor: webhookEndpoints sends it there.
        body = await gql(client, "{ viewer { id } webhookEndpoints { id } }", token=bearer)
        await client.get(f"/healthz?signature={SECRET}")
    assert body["data"]["viewer"]["id"]
    spans = exporter.get_finished_spans()

    (request,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /graphql"]
    statements = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert any(s.context.trace_id == request.context.trace_id for s in statements)
    viewer = next(s for s in resolver_spans(spans) if s.name == "graphql.resolve Query.viewer")
    assert (viewer.attributes or {})["graphql.field.path"] == "viewer"
    assert viewer.parent is not None
    assert viewer.parent.span_id == request.context.span_id
    assert viewer.start_time is not None
    assert viewer.end_time is not None
    assert viewer.start_time <= viewer.end_time

    (health,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "GET /healthz"]
    assert "/healthz" in attribute_values((health,))
    recorded = attribute_values(spans)
    for secret in (bearer, SECRET, "tracy@example.com"):
        assert secret not in recorded


async def test_resolvers_faster_than_the_threshold_get_no_spans(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    async with traced_client(
        settings, postgres_url, provider, tracing_resolver_threshold_ms=60_000
    ) as client:
        body = await gql(client, "{ viewer { id } }", token=token("quick@example.com"))
    assert body["data"]["viewer"]["id"]
    spans = exporter.get_finished_spans()
    assert any(s.kind is SpanKind.SERVER for s in spans)
    assert resolver_spans(spans) == []


def webhook_message(url: str) -> WebhookMessage:
    secret = SECRET_PREFIX + base64.b64encode(b"k" * 24).decode()
    return WebhookMessage(
        webhook_id="msg_1",
        url=url,
        event_type="submission.succeeded",
        occurred_at=datetime.now(UTC),
        data={"id": "sub_1"},
        secrets=(secret,),
    )


async def test_webhook_posts_get_client_spans_without_their_query_string(
    settings: Settings,
    postgres_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    sender = HttpWebhookSender(DnsUrlGuard(allow_private_networks=True), timeout_seconds=5)
    with running(Receiver()) as receiver:
        async with traced_client(settings, postgres_url, provider):
            outcome = await sender.send(webhook_message(f"{receiver.url}?token={SECRET}"))
        await sender.aclose()
    assert outcome.status_code == 200
    spans = exporter.get_finished_spans()
    (client,) = [s for s in spans if s.kind is SpanKind.CLIENT and s.name == "POST"]
    assert "/hooks/assay" in attribute_values((client,))
    assert SECRET not in attribute_values(spans)


async def test_s3_calls_get_client_spans(
    settings: Settings,
    postgres_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    store = S3BlobStore("assay-test", client=client)
    with Stubber(client) as stub:
        stub.add_response("head_bucket", {}, {"Bucket": "assay-test"})
        async with traced_client(settings, postgres_url, provider):
            await store.check()
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "S3.HeadBucket"]
    assert (call.attributes or {})["rpc.method"] == "HeadBucket"


RUN = """mutation($m: ID!, $i: JSON!) {
  runInference(input: {modelId: $m, input: $i}) { result { id } } }"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_an_inference_has_its_own_span_in_the_callers_w3c_trace(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    default_models: dict[str, str],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    async with traced_client(settings, postgres_url, provider) as client:
        body = await gql(
            client,
            RUN,
            {"m": default_models["iris-species"], "i": IRIS_INPUT},
            token=token("tracy@example.com"),
            headers={"traceparent": traceparent},
        )
    assert body["data"]["runInference"]["result"]["id"]
    spans = exporter.get_finished_spans()
    (inference,) = [s for s in spans if s.name == "inference iris-species"]
    attributes = inference.attributes or {}
    assert attributes["assay.model.version"] == "1.0.0"
    assert attributes["assay.inference.batch_size"] == 1
    assert isinstance(attributes["assay.inference.model_time_ms"], int)
    assert f"{inference.context.trace_id:032x}" == TRACE_ID  # the caller's trace goes on


async def test_an_incoming_x_ray_trace_id_is_continued(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    async with traced_client(settings, postgres_url, provider) as client:
        await client.get("/healthz", headers={"X-Amzn-Trace-Id": header})
    (health,) = [s for s in exporter.get_finished_spans() if s.name == "GET /healthz"]
    assert f"{health.context.trace_id:032x}" == "5759e988bd862e3fe1be46a994272793"
    assert health.parent is not None
    assert f"{health.parent.span_id:016x}" == "53995c3f42cd8ad8"
