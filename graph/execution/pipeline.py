"""The one request pipeline: authenticate, resolve the document, limits, charge, execute, record.

Both ways an HTTP request is answered call these steps, in this order, and nothing else
does their work: the full path (the view calls the authenticate and resolve steps, the
latter's refusals recorded by the record step; Strawberry's extensions QueryProtection,
CompiledExecution and OperationRecord apply the limits, charge, execute and record) and
the fast lane (graph/transport/fast_lane.py), which runs the same steps below Strawberry for
a text the full path accepted before. `Pipeline.on_step`
sees each step as it runs; tests/integration/test_pipeline.py fails when the two paths stop
taking the same steps.

`RequestState` is what a request carries from step to step and from the fast lane to the
full path when the lane hands a request on (the caller it signed in, a compiled run that fell
back), in one typed object instead of loose request.state attributes; the `context` step
builds the request's Context from it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, get_operation_ast
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from domain.batches import Batch
from domain.errors import DomainError, Unauthenticated
from domain.ports import UnitOfWork
from domain.principal import Principal
from domain.submissions import Result, Submission
from graph.execution.context import Context
from graph.execution.extension import Arguments, CompiledPlans
from graph.execution.query_protection import address_key, rate_limit_key
from graph.execution.request_log import log_operation
from graph.protection.input_hygiene import input_problems, invalid_input_error
from graph.protection.limits import OperationMeasure, QueryLimits, check_operation
from graph.protection.persisted import PersistedQueries, Resolved
from graph.protection.rate_limit import (
    RATE_LIMIT_HEADER,
    RATE_LIMIT_POLICY_HEADER,
    RateLimiter,
)
from telemetry import metrics

STEPS = ("authenticate", "resolve_document", "limits", "charge", "execute", "record")
_STATE_KEY = "assay"

Authenticate = Callable[[str | None, UnitOfWork | None], Awaitable[Principal | DomainError]]


@dataclass
class RequestState:
    """One HTTP request's progress through the pipeline, kept in its ASGI scope."""

    principal_or_error: Principal | DomainError | None = None  # None: not signed in yet
    compiled_declined: bool = False  # the compiled path was tried and fell back: not again
    sub_response: Response | None = None  # the full path's response under construction
    # runInference's answer when the lane ran it but cannot write it: the full path writes it
    inference_answer: tuple[Submission, Result | None] | None = None
    # batchInference's answer when the batch lane queued it but cannot write it
    batch_answer: tuple[list[Submission], Batch | None] | None = None

    @classmethod
    def of(cls, request: Request | WebSocket) -> RequestState:
        state = request.scope.setdefault("state", {})
        found = state.get(_STATE_KEY)
        if not isinstance(found, RequestState):
            found = state[_STATE_KEY] = cls()
        return found


@dataclass(frozen=True)
class Charge:
    """What a request was charged, to give back if the charge must be undone."""

    key: str
    points: int
    inference_requests: int
    inference_fields: tuple[tuple[str, int], ...]


class Pipeline:
    def __init__(
        self,
        *,
        authenticate: Authenticate,
        persisted: PersistedQueries,
        limits: QueryLimits,
        rate_limiter: RateLimiter | None,
        plans: CompiledPlans,
        shared_context: Context,
    ) -> None:
        self._authenticate = authenticate
        self.shared_context = shared_context
        self.persisted = persisted
        self.query_limits = limits
        self.rate_limiter = rate_limiter
        self.plans = plans
        self.on_step: Callable[[str], None] | None = None  # observation (tests)

    def _step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    async def authenticate(
        self, request: Request, reader: UnitOfWork | None = None
    ) -> Principal | DomainError:
        """The caller, signed in once per request (the fast lane's sign-in is reused)."""
        state = RequestState.of(request)
        if state.principal_or_error is None:
            self._step("authenticate")
            header = request.headers.get("authorization")
            state.principal_or_error = await self._authenticate(header, reader)
            if header and isinstance(state.principal_or_error, Unauthenticated):
                self.charge_refusal(request)
        return state.principal_or_error

    def context(self, request: Request | WebSocket, response: Response | None) -> Context:
        """The request's context, from what its RequestState holds: the caller signed in (a
        WebSocket's signs in later, at connection_init) and whether the compiled path was
        tried already."""
        state = RequestState.of(request)
        signed_in = state.principal_or_error
        context = self.shared_context.for_request(
            request,
            response,
            Unauthenticated() if signed_in is None else signed_in,
            compiled_declined=state.compiled_declined,
        )
        context.inference_answer = state.inference_answer  # the inference lane ran it
        context.batch_answer = state.batch_answer  # the batch lane queued it
        return context

    def charge_refusal(self, request: HTTPConnection) -> None:
        """A credential was presented and refused: its address pays (see rate_limit.py)."""
        if self.rate_limiter is not None:
            self.rate_limiter.charge_refusal(address_key(request, self.rate_limiter))

    async def resolve_document(
        self,
        query: str | None,
        extensions: dict[str, Any] | None,
        principal_or_error: Principal | DomainError,
        *,
        charge: Callable[[], Awaitable[None]] | None = None,
        in_memory: bool = False,
    ) -> Resolved | None:
        """The document text a request stands for (persisted queries by hash). `in_memory`
        (the fast lane): only what this process knows without a database read, else None."""
        self._step("resolve_document")
        is_admin = isinstance(principal_or_error, Principal) and principal_or_error.is_admin
        if in_memory:
            document = self.persisted.resolve_in_memory(query, extensions, is_admin=is_admin)
            return None if document is None else Resolved(document, None)
        return await self.persisted.resolve(query, extensions, is_admin=is_admin, charge=charge)

    def limits(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        measure: OperationMeasure,
        arguments: Arguments | None = None,
    ) -> GraphQLError | None:
        """Depth, aliases and cost, then the input hygiene rule: the first one broken.
        `arguments`: the operation and its argument sites, when the caller kept them."""
        self._step("limits")
        if (too_complex := check_operation(measure, self.query_limits)) is not None:
            return too_complex
        operation, sites = (
            arguments
            if arguments is not None
            else (get_operation_ast(document, operation_name), None)
        )
        if operation is None:
            return None
        bounds = self.query_limits.inputs
        problems = input_problems(schema, document, operation, variables, bounds, sites)
        return invalid_input_error(problems) if problems else None

    async def charge(self, context: Context, measure: OperationMeasure) -> Charge | float:
        """Take the operation's cost from the caller's rate limit; when the bucket cannot
        pay now, the seconds to wait (nothing taken: the path that answers refuses). Only a
        request past its process's lease of a shared bucket waits here, for a settle."""
        self._step("charge")
        context.cost = measure.cost  # for the request log
        limiter = self.rate_limiter
        if limiter is None:
            return Charge("", 0, 0, ())
        key = rate_limit_key(context, limiter)
        wait = limiter.acquire(key, measure.cost, measure.inference_requests)
        if wait > 0:
            wait = await limiter.acquire_settled(key, measure.cost, measure.inference_requests)
        if isinstance(context.principal_or_error, Principal):  # a budget of the caller's own
            context.rate_limit_headers = (
                (RATE_LIMIT_POLICY_HEADER, limiter.policy_header),
                (RATE_LIMIT_HEADER, limiter.state_header(key)),
            )
        if wait > 0:
            return wait
        return Charge(key, measure.cost, measure.inference_requests, measure.inference_fields)

    def refund(self, charge: Charge) -> None:
        """Undo a charge for a request that another path will charge again."""
        if self.rate_limiter is not None and charge.key:
            self.rate_limiter.refund(charge.key, charge.points, charge.inference_requests)

    async def execute(
        self,
        context: Context,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The data from the compiled path, or None: the reference executor answers (once)."""
        self._step("execute")
        if context.compiled_declined:
            return None
        data = await self.plans.answer(context, schema, document, query, operation_name, variables)
        if data is None:
            context.compiled_declined = True
            if isinstance(context.request, Request):
                RequestState.of(context.request).compiled_declined = True
        return data

    def record(
        self,
        context: Context | None,
        *,
        operation_name: str | None,
        operation_type: str,
        duration_seconds: float,
        errors: Sequence[GraphQLError] | None,
    ) -> None:
        """The operation's metrics and its request log line."""
        self._step("record")
        record(context, operation_name, operation_type, duration_seconds, errors)


def record(
    context: Context | None,
    operation_name: str | None,
    operation_type: str,
    duration_seconds: float,
    errors: Sequence[GraphQLError] | None,
) -> None:
    codes = [str((error.extensions or {}).get("code", "INTERNAL")) for error in errors or ()]
    metrics.record_operation(operation_name, operation_type, codes, duration_seconds)
    if context is not None:
        log_operation(
            context,
            operation_name=operation_name,
            operation_type=operation_type,
            duration_seconds=duration_seconds,
            errors=errors,
        )


class OperationRecord(SchemaExtension):
    """The record step for the full path. It wraps ContractErrors, so it records errors with
    their final codes. Without a pipeline (a schema made only to print or inspect), it
    records all the same."""

    def __init__(self, pipeline: Pipeline | None = None) -> None:
        self.pipeline = pipeline

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        execution = self.execution_context
        try:
            kind = execution.operation_type.value
        except RuntimeError:
            kind = "unknown"
        context = execution.context if isinstance(execution.context, Context) else None
        duration = time.perf_counter() - started
        errors = execution.result.errors if execution.result else None
        if self.pipeline is None:
            record(context, execution.operation_name, kind, duration, errors)
            return
        self.pipeline.record(
            context,
            operation_name=execution.operation_name,
            operation_type=kind,
            duration_seconds=duration,
            errors=errors,
        )
