"""Spans for slow resolvers, through the OpenTelemetry API alone (not installed: no extension)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.utils.await_maybe import AwaitableOrValue

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

TRACER_NAME = "assay.graph"


def field_path(info: GraphQLResolveInfo[Any]) -> str:
    """`submissions.edges.0.node.id`: where in the response the field sits."""
    return ".".join(str(key) for key in info.path.as_list())


class SlowResolverSpans(SchemaExtension):
    """Times every resolver and records a span only for those slower than the threshold.

    The span is made after the fact, with its real start and end times, so fast resolvers
    (nearly all of them) cost two clock reads and no span at all.
    """

    def __init__(self, tracer: Tracer, threshold_ns: int) -> None:
        self._tracer = tracer
        self._threshold_ns = threshold_ns

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: str,
        **kwargs: Any,
    ) -> AwaitableOrValue[object]:
        started = time.time_ns()
        try:
            result: object = _next(root, info, *args, **kwargs)
        except Exception as error:
            self._record(info, started, error)
            raise
        if isawaitable(result):
            return self._awaited(result, info, started)
        self._record(info, started, None)
        return result

    async def _awaited(
        self, result: Awaitable[object], info: GraphQLResolveInfo[Any], started: int
    ) -> object:
        try:
            value = await result
        except Exception as error:
            self._record(info, started, error)
            raise
        self._record(info, started, None)
        return value

    def _record(self, info: GraphQLResolveInfo[Any], started: int, error: Exception | None) -> None:
        ended = time.time_ns()
        if ended - started < self._threshold_ns:
            return
        from opentelemetry.trace import Status, StatusCode

        span = self._tracer.start_span(
            f"graphql.resolve {info.parent_type.name}.{info.field_name}",
            start_time=started,
            attributes={"graphql.field.path": field_path(info)},
        )
        if error is not None:
            # The type only: messages can quote arguments, and arguments can be secrets.
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=ended)


def slow_resolver_spans(
    threshold_ms: float, tracer_provider: TracerProvider | None = None
) -> Callable[[], SchemaExtension] | None:
    """The extension factory for build_schema, or None when opentelemetry-api is absent."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    threshold_ns = round(threshold_ms * 1_000_000)
    return lambda: SlowResolverSpans(tracer, threshold_ns)
