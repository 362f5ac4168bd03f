"""The fast lane for runInference: a known mutation text answered below Strawberry.

graph/execution/inference_plans.py remembers a runInference text once the full pipeline
accepted it. The fast lane (graph/transport/fast_lane.py) hands a POST of that text here, and
this module takes the request pipeline's steps as the full path takes them for a mutation
(authenticate, resolve the document, limits, charge, record; the execute step is the query
paths' compiled run), with the same `Pipeline` methods: it signs the caller in, coerces the
variables and the argument as graphql-core and Strawberry do, applies the limits and the input
hygiene rule, charges the rate limit and the inference budget, calls the resolver's use case
(`SynchronousInference.run`, whose group commits before it answers) and writes the payload
with the plan's builder.

Until the use case is called, anything it is not sure to answer as the full path would (a
caller not signed in, variables that do not coerce, a limit or rate limit that refuses, a
plan it has not got) is handed on, untouched and uncharged. After it, the answer is its own:
a domain error becomes the error the reference executor would give (located at the field,
with its path, code and request id, the inference budget given back as QueryProtection gives
it back), and an unexpected one is logged and masked as there. An answer the plan cannot
write (a value outside GraphQL's types) goes to the full path with the request, whose
resolver returns it instead of running again (RequestState.inference_answer).

`MutationLane` is all of that but the argument and the use case; `InferenceLane` is
runInference's, and graph/transport/batch_lane.py's `BatchLane` batchInference's.
"""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

import orjson
from graphql import GraphQLError, located_error
from graphql.execution.values import VariableValues, get_argument_values
from starlette.requests import Request
from starlette.responses import Response
from strawberry import Schema
from strawberry.types.arguments import convert_arguments

from domain.errors import DomainError
from domain.principal import Principal
from graph.errors import format_error, log_unexpected
from graph.execution.context import Context
from graph.execution.inference_plans import (
    RUN_INFERENCE,
    Answer,
    InferencePlan,
    KnownInference,
    KnownInferences,
)
from graph.execution.pipeline import Pipeline, RequestState
from graph.execution.specs import Fallback
from graph.schema.submissions import RunInferenceInput, inference_request
from graph.transport.http_errors import RETRY_AFTER_SECONDS, UNAVAILABLE
from graph.transport.lanes import admitted, answered, hand_on

# The input's fields that graphql-core's coercion leaves as Strawberry would convert them (an
# ID is its text, JSON its value): built directly, without Strawberry's generic conversion
# (about a third of the lane's own CPU a call). Metadata's nested input objects take it.
_PLAIN_FIELDS = frozenset({"modelId", "input", "assetIds", "idempotencyKey", "metadata"})


def _plain_input(given: object) -> RunInferenceInput | None:
    """The argument as convert_arguments would give it, when only plain fields are set."""
    if not isinstance(given, dict) or given.get("metadata") is not None:
        return None
    if not given.keys() <= _PLAIN_FIELDS:
        return None
    return RunInferenceInput(
        model_id=given["modelId"],
        input=given["input"],
        asset_ids=given.get("assetIds", []),
        idempotency_key=given.get("idempotencyKey"),
    )


A = TypeVar("A")  # what the use case answers
Arg = TypeVar("Arg")  # the resolver's `input` argument


class MutationLane(Generic[A, Arg]):
    """A lane for one mutation root field: the pipeline's steps around its use case."""

    root: str  # the mutation's root field
    input_type: type[Arg]  # its `input` argument's Strawberry input class

    def __init__(self, schema: Schema, pipeline: Pipeline, known: KnownInferences[A]) -> None:
        self.schema = schema
        self.gql_schema = schema._schema
        self.pipeline = pipeline
        self.known = known
        self.field = schema.get_field_for_type(field_name=self.root, type_name="Mutation")

    def _plain_input(self, given: object) -> Arg | None:
        """The argument built directly, when convert_arguments would give the same; else None."""
        return None

    def _ready(self, context: Context) -> bool:
        """Whether the context has what the use case needs (else the full path answers)."""
        return True

    async def _run(
        self, context: Context, principal: Principal, given: Arg, plan: InferencePlan[A]
    ) -> A:
        """The resolver's use case, and what else the plan writes from."""
        raise NotImplementedError

    def _keep(self, request: Request, answer: A) -> None:
        """Give the full path an answer the plan could not write (its resolver returns it)."""
        raise NotImplementedError

    def _input(self, plan: InferencePlan[A], variables: VariableValues) -> Arg | None:
        """The argument as the resolver receives it, or None (the full path answers)."""
        field = self.field
        if field is None or field.extensions:
            return None
        try:
            raw = get_argument_values(plan.gql_field, plan.field_nodes[0], variables)
            plain = self._plain_input(raw.get("input"))
            if plain is not None:
                return plain
            converter = self.schema.schema_converter
            kwargs = convert_arguments(
                raw,
                field.arguments,
                scalar_registry=converter.scalar_registry,
                config=self.schema.config,
            )
        except Exception:
            return None
        given = kwargs.get("input")
        return given if isinstance(given, self.input_type) else None

    async def answer(
        self,
        request: Request,
        known: KnownInference[A],
        query: str,
        variables: dict[str, Any] | None,
        media_type: str,
    ) -> Response | None:
        """The response, or None for the full pipeline (nothing charged, nothing run)."""
        pipeline, schema = self.pipeline, self.gql_schema
        principal = await pipeline.authenticate(request)  # kept for the full path
        if not isinstance(principal, Principal):
            return hand_on("signed_out")
        resolved = await pipeline.resolve_document(query, None, principal, in_memory=True)
        if resolved is None or resolved.document is None:
            return hand_on("persisted_query")
        started = time.perf_counter()
        context = pipeline.context(request, None)
        coerced = known.coerced(schema, variables)
        if coerced is None:
            return hand_on("variables")
        plan = known.plan(schema, coerced)
        if isinstance(plan, str):
            return hand_on("unsupported")
        given = self._input(plan, coerced)
        if given is None or not self._ready(context):
            return hand_on("arguments")
        document = known.query
        admission = await admitted(pipeline, schema, document, variables, context)
        if isinstance(admission, str):
            return hand_on(admission)
        charged, measure = admission

        errors: list[GraphQLError] | None = None
        status = 200
        try:
            answer = await self._run(context, principal, given, plan)
        except Exception as raised:
            error = located_error(raised, list(plan.field_nodes), [plan.key])
            log_unexpected([error], context.request_id)
            if isinstance(raised, DomainError) and pipeline.rate_limiter is not None:
                # As QueryProtection: a refused inference field spent no inference budget.
                returned = sum(n for name, n in measure.inference_fields if name == plan.key)
                pipeline.rate_limiter.refund_inference(charged.key, returned)
            errors = [format_error(error, context.request_id)]
            content = orjson.dumps({"data": None, "errors": [e.formatted for e in errors]})
            if (errors[0].extensions or {}).get("code") == UNAVAILABLE:
                status = 503
        else:
            try:
                data = plan.write(answer)
            except Fallback:
                # A value GraphQL cannot carry: the reference executor reports it at its own
                # path. The full path writes this answer (the resolver returns it, nothing
                # runs twice) and charges the request again, so this charge is given back.
                pipeline.refund(charged)
                self._keep(request, answer)
                return hand_on("answer_fallback")
            content = orjson.dumps({"data": data})  # its failure is the view's, as there
        response = answered(
            pipeline,
            context,
            content,
            media_type,
            operation_name=document.operation_name,
            operation_type="mutation",
            started=started,
            errors=errors,
            status=status,
        )
        if status == 503:  # as the view's process_result: clients and proxies retry
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class InferenceLane(MutationLane[Answer, RunInferenceInput]):
    root = RUN_INFERENCE
    input_type = RunInferenceInput

    def _plain_input(self, given: object) -> RunInferenceInput | None:
        return _plain_input(given)

    def _ready(self, context: Context) -> bool:
        return context.inference is not None

    async def _run(
        self,
        context: Context,
        principal: Principal,
        given: RunInferenceInput,
        plan: InferencePlan[Answer],
    ) -> Answer:
        assert context.inference is not None  # _ready
        return await context.inference.run(principal, inference_request(given))

    def _keep(self, request: Request, answer: Answer) -> None:
        RequestState.of(request).inference_answer = answer
