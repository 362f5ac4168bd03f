"""OpenTelemetry tracing when ASSAY_TRACING is on; the packages come from the `otel` extra.

Everything OpenTelemetry is imported here lazily, so the server runs without the extra. The
exporter, sampler, resource and batching follow the standard OTEL_ environment variables,
read by the SDK and the exporters themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from domain.models import JSONValue, Model, ModelFailure
from domain.ports import ModelRuntime
from domain.submissions import Prediction
from graph.execution.tracing import slow_resolver_spans
from persistence.database import without_driver_reads
from server.settings import Settings, SettingsError

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'assay[otel]'"
REQUIRED_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.botocore",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.sqlalchemy",
)
DEFAULT_SERVICE_NAME = "assay"
# URL attributes whose query strings can carry signatures, tokens or inference inputs.
URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
QUERY_ATTRIBUTE = "url.query"
REDACTED = "REDACTED"
# Sanitized if an operator turns on header capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_...).
SECRET_HEADERS = ["authorization", "cookie", "set-cookie", "webhook-signature", ".*token.*"]


def check_tracing_available(settings: Settings) -> None:
    """Stop at start, naming the extra, when tracing is on but its packages are missing."""
    if not settings.tracing:
        return
    import importlib

    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise SettingsError(
                f"ASSAY_TRACING is on but OpenTelemetry is not installed ({error.name} is "
                f"missing): {INSTALL_HINT}"
            ) from None


def without_query(url: str) -> str:
    """The URL (or request target) with its query string and fragment dropped."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))


def hide_query(span: Span, *_: object) -> None:
    """Overwrite the URL attributes an instrumentation just set, keeping host and path."""
    attributes: Mapping[str, object] = getattr(span, "attributes", None) or {}
    for key in URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and ("?" in value or "#" in value):
            span.set_attribute(key, without_query(value))
    if attributes.get(QUERY_ATTRIBUTE):
        span.set_attribute(QUERY_ATTRIBUTE, REDACTED)


async def hide_query_async(span: Span, *_: object) -> None:
    hide_query(span)


def exporters_from_environment(settings: Settings) -> list[SpanExporter]:
    """OTEL_TRACES_EXPORTER's exporters (otlp, console, none, ...), chosen as the SDK does.

    `otlp` honours OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (grpc, http/protobuf); each exporter
    reads its own endpoint, headers and timeout from the OTEL_EXPORTER_OTLP_ variables.
    """
    # The SDK's own selection logic; it is what `opentelemetry-instrument` uses.
    from opentelemetry.sdk._configuration import _get_exporter_entry_point, _import_exporters

    names = [name.strip() for name in settings.otel_traces_exporter.split(",") if name.strip()]
    if not names or [name.lower() for name in names] == ["none"]:
        return []
    try:
        entry_points = [str(_get_exporter_entry_point(name, "traces")) for name in names]
        classes, _, _ = _import_exporters(entry_points, [], [])
    except RuntimeError as error:
        raise SettingsError(f"OTEL_TRACES_EXPORTER: {error}") from None
    return [exporter() for exporter in classes.values()]


def provider_from_environment(settings: Settings) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters_from_environment(settings):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@dataclass
class TracingHandles:
    """What configure_tracing set up, for the composition root to attach and to stop."""

    provider: TracerProvider
    resolver_threshold_ms: float
    owns_provider: bool
    is_engine_instrumented: bool = False
    previous_propagator: TextMapPropagator | None = None

    def traced_runtimes(self, runtimes: Mapping[str, ModelRuntime]) -> dict[str, ModelRuntime]:
        """Each runtime with a span per `predict` call (both the queue and runInference)."""
        tracer = self.provider.get_tracer("assay.inference")
        return {name: TracedRuntime(runtime, tracer) for name, runtime in runtimes.items()}

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """Spans for SQL statements: the statement text with placeholders, never parameters."""
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # skip_dep_check: the instrumentation declares sqlalchemy < 2.1, but it only uses the
        # engine's cursor events, which 2.1 keeps.
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True
        )
        without_driver_reads(engine)  # hot reads on asyncpg itself would have no spans
        self.is_engine_instrumented = True

    def schema_extensions(self) -> list[Callable[[], SchemaExtension]]:
        """Spans for resolvers slower than ASSAY_TRACING_RESOLVER_THRESHOLD_MS."""
        extension = slow_resolver_spans(self.resolver_threshold_ms, self.provider)
        return [] if extension is None else [extension]

    def wrap(self, app: Starlette) -> None:
        """Request spans around everything else, the query string left out."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.util.http import get_excluded_urls

        app.add_middleware(
            OpenTelemetryMiddleware,
            excluded_urls=get_excluded_urls("ASGI"),  # OTEL_PYTHON_[ASGI_]EXCLUDED_URLS
            server_request_hook=hide_query,
            tracer_provider=self.provider,
            http_capture_headers_sanitize_fields=SECRET_HEADERS,
            exclude_spans=["receive", "send"],
        )

    async def shutdown(self) -> None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        instrumentors = [HTTPXClientInstrumentor(), _botocore()]
        if self.is_engine_instrumented:
            instrumentors.append(SQLAlchemyInstrumentor())
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        if self.previous_propagator is not None:
            from opentelemetry import propagate

            propagate.set_global_textmap(self.previous_propagator)
        # Exporting what is still batched can block on the network: off the event loop.
        if self.owns_provider:
            await asyncio.to_thread(self.provider.shutdown)
        else:
            await asyncio.to_thread(self.provider.force_flush)


class Instrumentor(Protocol):
    """What BaseInstrumentor offers (its module opts out of type checking)."""

    def instrument(self, **kwargs: Any) -> object: ...

    def uninstrument(self, **kwargs: Any) -> None: ...


def _botocore() -> Instrumentor:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    return BotocoreInstrumentor()  # type: ignore[no-untyped-call]  # its __init__ is unannotated


def configure_tracing(
    settings: Settings, *, tracer_provider: TracerProvider | None = None
) -> TracingHandles | None:
    """Set up tracing when ASSAY_TRACING is on; None when it is off.

    Without `tracer_provider`, one is made from the OTEL_ variables and becomes the global
    provider. Tests pass their own, which stays theirs. httpx (webhooks, JWKS) and botocore
    (S3, SageMaker) are instrumented here, process-wide; the engine and the app are attached
    by the caller through the handles, whose shutdown undoes it all.
    """
    if not settings.tracing:
        return None
    check_tracing_available(settings)
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    owns_provider = tracer_provider is None
    provider = tracer_provider or provider_from_environment(settings)
    if owns_provider:
        trace.set_tracer_provider(provider)
    hooks: dict[str, Any] = {"request_hook": hide_query, "async_request_hook": hide_query_async}
    HTTPXClientInstrumentor().instrument(tracer_provider=provider, **hooks)
    # Spans name the service, operation, region and endpoint host; never parameters or bodies.
    _botocore().instrument(tracer_provider=provider)
    previous = _continue_xray_traces()
    logger.info(
        "tracing on; resolvers slower than %g ms get spans", settings.tracing_resolver_threshold_ms
    )
    return TracingHandles(
        provider, settings.tracing_resolver_threshold_ms, owns_provider, False, previous
    )


def _continue_xray_traces() -> TextMapPropagator:
    """Continue an incoming X-Amzn-Trace-Id (the load balancer adds one to every request)
    as well as what OTEL_PROPAGATORS names (W3C traceparent and baggage by default); a
    traceparent the client sent wins over the balancer's header. Returns the propagator it
    replaced."""
    from opentelemetry import propagate
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.propagators.composite import CompositePropagator

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([AwsXRayPropagator(), previous]))
    return previous


class TracedRuntime:
    """A ModelRuntime whose every `predict` is a span: model, version, runtime, batch size,
    and the model's own time (the sum of what it reports per input)."""

    def __init__(self, runtime: ModelRuntime, tracer: Tracer) -> None:
        self._runtime = runtime
        self._tracer = tracer

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        attributes: dict[str, str | int] = {
            "assay.model.name": model.name,
            "assay.model.version": model.version,
            "assay.model.runtime": model.runtime,
            "assay.inference.batch_size": len(inputs),
        }
        with self._tracer.start_as_current_span(
            f"inference {model.name}", attributes=attributes
        ) as span:
            started = time.perf_counter()
            try:
                predictions = await self._runtime.predict(model, inputs)
            except ModelFailure as failure:
                span.set_attribute("assay.inference.transient", failure.is_transient)
                raise  # the span records the exception and an error status
            span.set_attribute(
                "assay.inference.model_time_ms", sum(p.processing_time_ms for p in predictions)
            )
            span.set_attribute(
                "assay.inference.call_ms", round((time.perf_counter() - started) * 1000, 3)
            )
            return predictions
