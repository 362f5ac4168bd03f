"""The schema extension that enforces query limits and rate limits before anything executes:
the limits and charge steps of the request pipeline (graph/execution/pipeline.py) on the
full path."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from starlette.requests import HTTPConnection, Request
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from domain.errors import DomainError, RateLimited
from domain.principal import Principal
from graph.errors import AssayGraphQLError, code_for
from graph.execution.context import Context
from graph.protection.limits import check_document, measure_operation, too_complex
from graph.protection.rate_limit import RateLimiter
from telemetry import metrics

if TYPE_CHECKING:
    from graph.execution.pipeline import Pipeline

COST_HEADER = "x-assay-cost"
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)


def strip_suggestions(message: str) -> str:
    """Drop graphql-core's "Did you mean ...?" hints, which reveal the schema."""
    return _SUGGESTION.sub("", message)


# graphql-core's own limits (the parser's token and comment counts, which also count comments,
# and introspection's list depth) answer as syntax or validation errors: they are limits.
_PARSER_LIMIT = re.compile(r"^(?:Syntax Error: )?(?:Document|Source) contains more than (\d+) ")
_INTROSPECTION_DEPTH = "Maximum introspection depth exceeded"
INTROSPECTION_LIST_DEPTH = 3  # graphql-core's MaxIntrospectionDepthRule.MAX_LIST_DEPTH


def parser_limit_error(error: GraphQLError) -> GraphQLError | None:
    """QUERY_TOO_COMPLEX for an error that is one of graphql-core's limits, else None."""
    if (match := _PARSER_LIMIT.match(error.message)) is not None:
        limit = int(match.group(1))
        return too_complex(error.message, limit + 1, limit)
    if error.message.startswith(_INTROSPECTION_DEPTH):
        return too_complex(
            f"{_INTROSPECTION_DEPTH}: introspection lists nest at most "
            f"{INTROSPECTION_LIST_DEPTH} deep",
            INTROSPECTION_LIST_DEPTH + 1,
            INTROSPECTION_LIST_DEPTH,
        )
    return None


def rate_limit_key(context: Context, limiter: RateLimiter) -> str:
    """The caller's user id when authenticated, else its client address."""
    if isinstance(context.principal_or_error, Principal):
        return f"user:{context.principal_or_error.user_id}"
    request = context.request
    if not isinstance(request, Request):
        return "ip:unknown"
    return address_key(request, limiter)


def address_key(request: HTTPConnection, limiter: RateLimiter) -> str:
    """The rate-limit key of the request's client address."""
    peer = request.client.host if request.client else None
    return f"ip:{limiter.client_address(peer, request.headers.get('x-forwarded-for'))}"


def rate_limited_error(retry_after_seconds: float) -> AssayGraphQLError:
    return AssayGraphQLError(
        f"rate limit exceeded; retry after {math.ceil(retry_after_seconds)} s",
        code_for(RateLimited(retry_after_seconds)),
        retryAfterSeconds=round(retry_after_seconds, 3),
    )


class QueryProtection(SchemaExtension):
    """Size and token limits at parse time; depth, aliases, cost and rate limits before execution.

    The errors are results, not exceptions, so ContractErrors still gives them request ids.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.limits = pipeline.query_limits
        self.rate_limiter = pipeline.rate_limiter
        self.rejection: GraphQLError | None = None
        self.cost: int | None = None
        self.charged: tuple[str, tuple[tuple[str, int], ...]] | None = None

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None:
            return
        if self.rejection is not None:
            result.data = None
            result.errors = [self.rejection]
        elif result.errors:
            result.errors = [self._for_client(error) for error in result.errors]

    def _for_client(self, error: GraphQLError) -> GraphQLError:
        if (refused := parser_limit_error(error)) is not None:
            return refused
        if self.limits.hide_suggestions:
            error.message = strip_suggestions(error.message)
        return error

    def on_parse(self) -> Iterator[None]:
        self.rejection = check_document(self.execution_context.query or "", self.limits)
        # Zero tokens makes the parser stop at once; on_operation swaps in the real error.
        limit = 0 if self.rejection is not None else self.limits.max_tokens
        self.execution_context.parse_options["max_tokens"] = limit
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        if _is_subscription(context) and context.graphql_document is not None:
            # A subscription ignores a result set in on_execute, so it is refused here, as a
            # pre-execution error: the client gets an `error` message and nothing runs.
            if context.pre_execution_errors is None:
                context.pre_execution_errors = validate_document(
                    context.schema._schema, context.graphql_document, context.validation_rules
                )
            if not context.pre_execution_errors and (refusal := await self._refusal()) is not None:
                context.pre_execution_errors = [refusal]
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        refuses = not _is_subscription(context) and context.result is None
        if refuses and (error := await self._refusal()) is not None:
            context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield
        self._refund_refused_inference()

    def _refund_refused_inference(self) -> None:
        """Only accepted work spends the inference rate: a root field refused with a domain
        error (invalid input, unknown model, a conflict) queued nothing, so it costs nothing."""
        charged, result = self.charged, self.execution_context.result
        if charged is None or self.rate_limiter is None or result is None or not result.errors:
            return
        key, fields = charged
        refused = {
            error.path[0]
            for error in result.errors
            if error.path and len(error.path) == 1 and isinstance(error.original_error, DomainError)
        }
        returned = sum(count for name, count in fields if name in refused)
        self.rate_limiter.refund_inference(key, returned)

    async def _refusal(self) -> GraphQLError | None:
        """The pipeline's limits (depth, aliases, cost, input hygiene), then its charge; the
        first refusal."""
        context = self.execution_context
        if context.graphql_document is None:
            return None
        document, variables = context.graphql_document, context.variables
        schema = context.schema._schema
        measure = measure_operation(schema, document, context.operation_name, variables)
        if measure is None:
            return None
        refused = self.pipeline.limits(schema, document, context.operation_name, variables, measure)
        if refused is not None:
            return refused  # before the rate limit charges it
        self.cost = measure.cost
        if not isinstance(context.context, Context):
            return None
        charged = await self.pipeline.charge(context.context, measure)
        response = context.context.response
        if response is not None:
            for name, value in context.context.rate_limit_headers:
                response.headers[name] = value
        if isinstance(charged, float):
            metrics.RATE_LIMIT_REFUSALS.inc()
            if response is not None:
                response.headers["Retry-After"] = str(math.ceil(charged))
            return rate_limited_error(charged)
        if measure.inference_requests:
            self.charged = (charged.key, measure.inference_fields)
        return None

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if self.cost is None or not isinstance(context, Context):
            return {}
        request = context.request
        if isinstance(request, Request) and request.headers.get(COST_HEADER) == "1":
            return {"cost": self.cost}
        return {}


def _is_subscription(context: ExecutionContext) -> bool:
    if context.graphql_document is None:
        return False
    try:
        return context.operation_type is OperationType.SUBSCRIPTION
    except RuntimeError:  # no operation by that name: Strawberry reports it
        return False


def query_protection(pipeline: Pipeline) -> Callable[[], SchemaExtension]:
    """A factory for Strawberry, which makes one extension per operation."""
    return lambda: QueryProtection(pipeline)
