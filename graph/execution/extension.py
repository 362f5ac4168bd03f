"""The schema extension that answers query operations from compiled plans when it can.

Runs in on_execute after QueryProtection (limits, cost and rate limits have passed, or a
refusal is already the result). Setting the execution context's result makes Strawberry
skip graphql-core's executor; leaving it unset runs the reference path, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_operation_ast,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.values import VariableValues, get_variable_values
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperationType

from domain.errors import DomainError
from domain.principal import Principal
from graph.execution.compiler import Compiler, Plan
from graph.execution.context import Context
from graph.execution.projection import ProjectionCompiler, ProjectionPlan
from graph.execution.runner import execute, project
from graph.execution.specs import Fallback, Run, Unsupported
from graph.lru import ByText, LruCache
from graph.protection.input_hygiene import ArgumentSite, argument_sites
from graph.protection.limits import OperationMeasure, measure_operation, measured_variables
from telemetry import metrics

if TYPE_CHECKING:
    from graph.execution.pipeline import Pipeline

logger = logging.getLogger(__name__)

MAX_PLANS_PER_DOCUMENT = 32  # one per combination of @skip/@include variable values
CONDITIONS = frozenset({"skip", "include"})


@dataclass(eq=False)
class Template:
    """One operation of one document: what it needs to compile, and its compiled plans."""

    operation: OperationDefinitionNode | None
    fragments: dict[str, FragmentDetails]
    conditions: tuple[str, ...]  # variables that @skip/@include read
    unsupported: str | None = None
    plans: dict[tuple[Any, ...], Plan | str] = field(default_factory=dict)
    projections: dict[tuple[Any, ...], ProjectionPlan | str] = field(default_factory=dict)


def _walk(selection_set: SelectionSetNode | None) -> Iterator[DirectiveNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        yield from selection.directives or ()
        if isinstance(selection, FieldNode | InlineFragmentNode):
            yield from _walk(selection.selection_set)


def _conditions(document: DocumentNode, operation: OperationDefinitionNode) -> tuple[str, ...]:
    """Variables read by @skip/@include; any other executable directive is unsupported."""
    names: list[str] = []
    sets = [operation.selection_set] + [
        d.selection_set for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    ]
    for selection_set in sets:
        for directive in _walk(selection_set):
            if directive.name.value not in CONDITIONS:
                raise Unsupported("directive")
            for argument in directive.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.append(argument.value.name.value)
                elif not isinstance(argument.value, BooleanValueNode):
                    raise Unsupported("directive")
    return tuple(sorted(set(names)))


def _template(document: DocumentNode, operation_name: str | None) -> Template:
    operation = get_operation_ast(document, operation_name)
    fragments = {
        d.name.value: FragmentDetails(d)
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    if operation is None or operation.operation is not OperationType.QUERY:
        return Template(None, fragments, (), "operation")
    if any(
        isinstance(d, FragmentDefinitionNode) and d.variable_definitions
        for d in document.definitions
    ):
        return Template(None, fragments, (), "fragment_variables")
    try:
        conditions = _conditions(document, operation)
    except Unsupported as unsupported:
        return Template(None, fragments, (), unsupported.reason)
    return Template(operation, fragments, conditions)


_REASONS = {
    "NotFound": "not_found",
    "Forbidden": "forbidden",
    "InvalidInput": "bad_input",
    "Unauthenticated": "unauthenticated",
}


class CompiledPlans:
    """The bounded cache of templates and plans, and the decision of which path answers."""

    def __init__(self, maxsize: int, *, is_enabled: bool = True) -> None:
        self.templates: LruCache[tuple[str, str | None], Template] = LruCache(maxsize)
        self.is_enabled = is_enabled

    def _coerced(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        key: tuple[str, str | None],
        variables: dict[str, Any],
    ) -> tuple[Template, OperationDefinitionNode, VariableValues, tuple[Any, ...]]:
        template = self.templates.get(key)
        if template is None:
            template = _template(document, key[1])
            self.templates.put(key, template)
        if template.unsupported is not None or template.operation is None:
            raise Unsupported(template.unsupported or "operation")
        coerced = get_variable_values(
            schema, template.operation.variable_definitions or (), variables, max_errors=1
        )
        if isinstance(coerced, list):
            raise Fallback("variables")
        condition = tuple(coerced.coerced.get(name) for name in template.conditions)
        return template, template.operation, coerced, condition

    def projection_for(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        key: tuple[str, str | None],
        variables: dict[str, Any],
    ) -> tuple[ProjectionPlan | str, VariableValues]:
        """The one-statement plan, or why there is none (the batched plan may still serve)."""
        template, operation, coerced, condition = self._coerced(schema, document, key, variables)
        plan = template.projections.get(condition)
        if plan is None:
            try:
                plan = ProjectionCompiler(schema, template.fragments, coerced, operation).plan()
            except Unsupported as unsupported:
                plan = unsupported.reason
            if len(template.projections) < MAX_PLANS_PER_DOCUMENT:
                template.projections[condition] = plan
        return plan, coerced

    def plan_for(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        key: tuple[str, str | None],
        variables: dict[str, Any],
    ) -> tuple[Plan, VariableValues]:
        template, operation, coerced, condition = self._coerced(schema, document, key, variables)
        plan = template.plans.get(condition)
        if plan is None:
            try:
                plan = Compiler(schema, template.fragments, coerced, operation).plan()
            except Unsupported as unsupported:
                plan = unsupported.reason
            if len(template.plans) < MAX_PLANS_PER_DOCUMENT:
                template.plans[condition] = plan
        if isinstance(plan, str):
            raise Unsupported(plan)
        return plan, coerced

    async def answer(
        self,
        context: Context,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The response data from a plan, or None when the reference path must answer."""
        try:
            if not self.is_enabled:
                raise Fallback("disabled")
            principal = context.principal_or_error
            if not isinstance(principal, Principal):
                raise Fallback("unauthenticated")
            key, given = (query, operation_name), variables or {}
            uow = (context.read_uow or context.uow)()
            run = Run(principal, uow, context.blobs, context.download_url_ttl)
            projection, coerced = self.projection_for(schema, document, key, given)
            data, kind = None, "statement"
            if isinstance(projection, ProjectionPlan):
                data = await project(projection, run, coerced)
            if data is None:  # no projection, or a store that cannot answer one
                plan, coerced = self.plan_for(schema, document, key, given)
                data, kind = await execute(plan, run, coerced), "batched"
        except Fallback as fallback:
            metrics.EXECUTION_PATH.labels("fallback", fallback.reason).inc()
            return None
        except DomainError as error:
            reason = _REASONS.get(type(error).__name__, "domain_error")
            metrics.EXECUTION_PATH.labels("fallback", reason).inc()
            return None
        except Exception:
            # A bug here must not cost the caller an answer: the reference path gives it.
            # But it is a bug: an error in the log (and in tests, a failed test), a metric.
            logger.error(
                "compiled execution failed for operation %s; the reference path answers",
                operation_name or "<anonymous>",
                exc_info=True,
            )
            metrics.EXECUTION_PATH.labels("fallback", "error").inc()
            return None
        metrics.labelled(metrics.EXECUTION_PATH, "compiled", "").inc()
        metrics.labelled(metrics.COMPILED_PLANS, kind).inc()
        return data


MAX_MEASURES_PER_QUERY = 64
# A measurement is remembered only under a key this small: a batchInference's inputs (up to
# the request's size, and new with every batch) would fill the memo with megabytes per text
# and hit nothing; measuring again costs ~0.2 ms.
MAX_MEASURE_KEY_BYTES = 4096
Arguments = tuple[OperationDefinitionNode | None, tuple[ArgumentSite, ...]]


@dataclass(frozen=True)
class KnownQuery:
    document: DocumentNode
    operation_name: str | None  # the operation's own name when the request named none
    measured: tuple[str, ...]  # the variables its measurement reads (measured_variables)
    measures: dict[bytes, OperationMeasure] = field(default_factory=dict)
    arguments: list[Arguments] = field(default_factory=list)  # once known: argument_sites

    def argument_sites(self, schema: GraphQLSchema) -> Arguments:
        """The operation and the arguments it passes (the input hygiene rule walks their
        values): the same for every request of this text, so found once."""
        if not self.arguments:
            operation = get_operation_ast(self.document, self.operation_name)
            sites = () if operation is None else argument_sites(schema, self.document, operation)
            self.arguments.append((operation, sites))
        return self.arguments[0]

    def measure(
        self, schema: GraphQLSchema, variables: dict[str, Any] | None
    ) -> OperationMeasure | None:
        """measure_operation, remembered per value of the variables it reads."""
        values = variables or {}
        key = orjson.dumps([values.get(name) for name in self.measured])
        measure = self.measures.get(key)
        if measure is None:
            measure = measure_operation(schema, self.document, self.operation_name, variables)
            if (
                measure is not None
                and len(self.measures) < MAX_MEASURES_PER_QUERY
                and len(key) <= MAX_MEASURE_KEY_BYTES
            ):
                self.measures[key] = measure
        return measure


class KnownQueries:
    """Query texts the full pipeline accepted and answered on the compiled path.

    Accepted means parsed within the token limit, validated (introspection policy included)
    and within the document limits: all that depends on the text alone, so the fast lane
    need not do it again for the same text. Keyed by (query, operation name) as a request
    sends them; a document with one operation is also known without a name.
    """

    def __init__(self, maxsize: int) -> None:
        self._known: ByText[KnownQuery] = ByText(maxsize)

    def __len__(self) -> int:
        return len(self._known)

    def get(self, query: str, operation_name: str | None) -> KnownQuery | None:
        return self._known.get(query, operation_name)

    def remember(self, query: str, operation_name: str | None, document: DocumentNode) -> None:
        if self._known.get(query, operation_name) is not None:
            return  # e.g. a GET of a known text: the pipeline answers those every time
        known = KnownQuery(document, operation_name, measured_variables(document))
        self._known.put(query, operation_name, document, known)


class CompiledExecution(SchemaExtension):
    """The execute step of the request pipeline (graph/execution/pipeline.py) on the full path."""

    def __init__(self, pipeline: Pipeline, known: KnownQueries | None = None) -> None:
        self.pipeline = pipeline
        self.known = known

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if (
            context.result is None
            and context.graphql_document is not None
            and context.query is not None
            and isinstance(context.context, Context)
            and context.operation_type is StrawberryOperationType.QUERY
        ):
            data = await self.pipeline.execute(
                context.context,
                context.schema._schema,
                context.graphql_document,
                context.query,
                context.operation_name,
                context.variables,
            )
            if data is not None:
                context.result = ExecutionResult(data=data, errors=None)
                if self.known is not None:
                    self.known.remember(
                        context.query, context.operation_name, context.graphql_document
                    )
        yield
