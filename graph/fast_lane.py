"""The fast lane: known compiled queries answered below Strawberry's HTTP view.

A query document enters the fast lane only after the full pipeline (parsing with the token
limit, validation, introspection policy, the document limits) accepted it and answered it on
the compiled path; `KnownQueries` remembers it by (query text, operation name). A later POST
of the same text then skips re-parsing, Strawberry's per-request view and extension hooks, and
does only what depends on the request: authentication, the variable-dependent limits (depth,
aliases, cost), the rate limit, the compiled plan, the operation metrics and the request log,
each through the same functions the full pipeline uses.

Persisted queries (by hash, or trusted documents) take the lane when this process already
knows what the full pipeline would resolve them to (PersistedQueries.resolve_in_memory).

Whatever the lane is not sure to answer exactly as the full pipeline would, it hands on,
untouched and uncharged: another verb or media type, other extensions, the cost header, a
batch, unknown text, a persisted query to look up or remember, a caller who is not signed
in, a limit or rate limit that would refuse, an input the hygiene rule refuses
(graph/input_hygiene.py), or a compiled run that falls back. The full
pipeline then answers, reusing the body, the caller and the compiled attempt the lane
already made (see AssayGraphQL).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from graphql import GraphQLSchema, get_operation_ast
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http.parse_content_type import parse_content_type

from domain.errors import DomainError
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal
from graph import metrics
from graph.context import Context
from graph.execution.extension import CompiledPlans, KnownQueries, KnownQuery
from graph.input_hygiene import input_problems
from graph.limits import QueryLimits, check_operation
from graph.over_http import JSON, negotiate
from graph.persisted import PersistedQueries
from graph.protection import COST_HEADER, rate_limit_key
from graph.rate_limit import RateLimiter
from graph.request_log import log_operation

_REQUEST_KEYS = frozenset({"query", "operationName", "variables", "extensions"})
_APQ = frozenset({"persistedQuery"})


Authenticate = Callable[[str | None, UnitOfWork], Awaitable[Principal | DomainError]]
ContextFor = Callable[[Request, Response | None, Principal | DomainError], Context]


class FastLane:
    def __init__(
        self,
        schema: GraphQLSchema,
        plans: CompiledPlans,
        known: KnownQueries,
        limits: QueryLimits,
        rate_limiter: RateLimiter | None,
        persisted: PersistedQueries,
        reads: UnitOfWorkFactory,
        *,
        authenticate: Authenticate,
        context_for: ContextFor,
    ) -> None:
        self.schema = schema
        self.plans = plans
        self.known = known
        self.limits = limits
        self.rate_limiter = rate_limiter
        self.persisted = persisted
        self.reads = reads
        self.authenticate = authenticate
        self.context_for = context_for

    async def answer(self, request: Request) -> Response | None:
        """The response, or None for the full pipeline (the body stays readable for it)."""
        headers = request.headers
        if headers.get(COST_HEADER) == "1":
            return _hand_on("not_eligible")
        media_type = negotiate(headers.get("accept"))
        if media_type is None or parse_content_type(headers.get("content-type") or "")[0] != JSON:
            return _hand_on("not_eligible")
        body = await request.body()  # kept on the request: the full pipeline reads it again
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _hand_on("not_eligible")
        if type(payload) is not dict or not payload.keys() <= _REQUEST_KEYS:
            return _hand_on("not_eligible")
        query = payload.get("query")
        operation_name = payload.get("operationName")
        variables = payload.get("variables")
        extensions = payload.get("extensions")
        if (
            not (query is None or type(query) is str)
            or not (operation_name is None or type(operation_name) is str)
            or not (variables is None or type(variables) is dict)
            or not (extensions is None or (type(extensions) is dict and extensions.keys() <= _APQ))
        ):
            return _hand_on("not_eligible")
        known = None
        if query is not None and extensions is None:
            known = self.known.get(query, operation_name)
            if known is None:
                return _hand_on("unknown_document")  # the common case, before any sign-in
        # One connection for the sign-in and the plan (the unit of work is reentrant); it is
        # back in the pool before the full pipeline runs, when the request is handed on.
        reader = self.reads()
        async with reader:
            return await self._answer(
                request, reader, known, query, operation_name, variables, extensions, media_type
            )

    async def _answer(
        self,
        request: Request,
        reader: UnitOfWork,
        known: KnownQuery | None,
        query: str | None,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        extensions: dict[str, Any] | None,
        media_type: str,
    ) -> Response | None:
        principal_or_error = await self.authenticate(request.headers.get("authorization"), reader)
        request.state.principal_or_error = principal_or_error  # no second sign-in
        if not isinstance(principal_or_error, Principal):
            return _hand_on("signed_out")
        document = self.persisted.resolve_in_memory(
            query, extensions, is_admin=principal_or_error.is_admin
        )
        if document is None:
            return _hand_on("persisted_query")
        if known is None:  # named by a persisted query: known by the text it resolved to?
            known = self.known.get(document, operation_name)
            if known is None:
                return _hand_on("unknown_document")
        query = document
        started = time.perf_counter()
        context = self.context_for(request, None, principal_or_error)
        context.read_uow = lambda: reader
        measure = known.measure(self.schema, variables)
        if measure is None or check_operation(measure, self.limits) is not None:
            return _hand_on("limits")
        if _has_input_problems(self.schema, known, variables, self.limits):
            return _hand_on("input")  # the pipeline's QueryProtection answers BAD_USER_INPUT
        limiter = self.rate_limiter
        key = rate_limit_key(context, limiter) if limiter is not None else ""
        if limiter is not None and limiter.wait(key, measure.cost, measure.inference_requests):
            return _hand_on("rate_limit")

        data = await self.plans.answer(
            context, self.schema, known.document, query, known.operation_name, variables
        )
        if data is None:
            request.state.compiled_declined = True  # counted once, tried once
            return _hand_on("fallback")
        # Charged once the answer is ready: a fallback above must leave the bucket to the
        # full pipeline. Another request of the caller's may have drained it meanwhile.
        if limiter is not None and limiter.acquire(key, measure.cost, measure.inference_requests):
            return _hand_on("rate_limit")

        context.cost = measure.cost
        content = orjson.dumps({"data": data})
        duration = time.perf_counter() - started
        metrics.record_operation(known.operation_name, "query", None, duration)
        log_operation(
            context,
            operation_name=known.operation_name,
            operation_type="query",
            duration_seconds=duration,
            errors=None,
        )
        metrics.FAST_LANE.labels("answered").inc()
        return Response(content, media_type=f"{media_type}; charset=utf-8")


def _has_input_problems(
    schema: GraphQLSchema,
    known: KnownQuery,
    variables: dict[str, Any] | None,
    limits: QueryLimits,
) -> bool:
    """The hygiene rule of graph/input_hygiene.py, as QueryProtection applies it."""
    operation = get_operation_ast(known.document, known.operation_name)
    return operation is None or bool(
        input_problems(schema, known.document, operation, variables, limits.inputs)
    )


def _hand_on(reason: str) -> Response | None:
    """None, for the full pipeline, counted by why."""
    metrics.FAST_LANE.labels(reason).inc()
    return None
