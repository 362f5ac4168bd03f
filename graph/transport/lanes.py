"""What the two fast lanes (graph/transport/fast_lane.py for queries,
graph/transport/inference_lane.py for runInference) do alike: admit a known text (its limits
and the caller's charge), hand a request on to the full pipeline counted by why, and answer
as the pipeline would (recorded, counted, with the rate-limit headers after the body's)."""

from __future__ import annotations

import time
from typing import Any

from graphql import GraphQLError, GraphQLSchema
from starlette.responses import Response

from graph.execution.context import Context
from graph.execution.extension import KnownQuery
from graph.execution.pipeline import Charge, Pipeline
from graph.protection.limits import OperationMeasure
from telemetry import metrics


def hand_on(reason: str) -> Response | None:
    """None, for the full pipeline, counted by why."""
    metrics.labelled(metrics.FAST_LANE, reason).inc()
    return None


async def admitted(
    pipeline: Pipeline,
    schema: GraphQLSchema,
    known: KnownQuery,
    variables: dict[str, Any] | None,
    context: Context,
) -> tuple[Charge, OperationMeasure] | str:
    """The request's charge and measure once the limits and the rate limit let it through;
    else why the full path should answer it (which refuses it as it does: QUERY_TOO_COMPLEX,
    BAD_USER_INPUT or RATE_LIMITED; nothing was taken)."""
    measure = known.measure(schema, variables)
    if measure is None:
        return "limits"
    refused = pipeline.limits(
        schema,
        known.document,
        known.operation_name,
        variables,
        measure,
        known.argument_sites(schema),
    )
    if refused is not None:
        return "input" if (refused.extensions or {}).get("code") == "BAD_USER_INPUT" else "limits"
    charged = await pipeline.charge(context, measure)
    if isinstance(charged, float):
        return "rate_limit"
    return charged, measure


def answered(
    pipeline: Pipeline,
    context: Context,
    content: bytes,
    media_type: str,
    *,
    operation_name: str | None,
    operation_type: str,
    started: float,
    errors: list[GraphQLError] | None = None,
    status: int = 200,
) -> Response:
    """The lane's answer, recorded by the pipeline's record step as the full path's is."""
    pipeline.record(
        context,
        operation_name=operation_name,
        operation_type=operation_type,
        duration_seconds=time.perf_counter() - started,
        errors=errors,
    )
    metrics.labelled(metrics.FAST_LANE, "answered").inc()
    response = Response(content, status_code=status, media_type=f"{media_type}; charset=utf-8")
    for name, value in context.rate_limit_headers:  # after the body's, as the pipeline's
        response.headers[name] = value
    return response
