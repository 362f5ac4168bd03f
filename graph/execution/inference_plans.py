"""Known runInference documents and the plans that write their answers without Strawberry.

The full pipeline (parse with the token limit, validation, document limits) accepts a mutation
text once; `RememberInference` (a schema extension, the last one) then remembers it when its
one root field is `runInference` and every field it selects below is a plain value of the
payload, the submission or the result (with `__typename`, aliases, fragments and
@skip/@include, collected by graphql-core as the reference executor collects them). A later
POST of that text is answered by graph/transport/inference_lane.py, which coerces its
variables, calls the resolver's use case and writes the answer with the plan's builder.
The same machinery, with another compiler, knows batchInference texts
(graph/execution/batch_plans.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from graphql.execution.collect_fields import FieldDetailsList, FragmentDetails, collect_fields
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import DocumentNode, FragmentDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType

from domain.submissions import Result, Submission
from graph.execution.codegen import Build, Call, Constant, FieldCode, Values, builder
from graph.execution.compiler import Compiler
from graph.execution.context import Context
from graph.execution.extension import KnownQuery
from graph.execution.extension import _conditions as conditions_of
from graph.execution.specs import Unsupported
from graph.lru import ByText
from graph.protection.limits import measured_variables

RUN_INFERENCE = "runInference"
PAYLOAD = "RunInferencePayload"
MAX_PLANS_PER_DOCUMENT = 32  # one per combination of @skip/@include variable values

Answer = tuple[Submission, Result | None]
A = TypeVar("A")  # what the use case answers: runInference's Answer, batchInference's


@dataclass(frozen=True, eq=False)
class InferencePlan(Generic[A]):
    """One runInference (or batchInference) operation, for one set of @skip/@include values."""

    key: str  # the response key (alias or name)
    field_nodes: tuple[FieldNode, ...]  # where an error of the field is located
    gql_field: GraphQLField
    write: Callable[[A], dict[str, Any]]  # the response's data
    # Whether the answer must hold what the use case does not return (batchInference: the
    # batch, read only then).
    reads_more: bool = False


# A compiler's entry: the plan of an operation for these variables, or Unsupported.
Compile = Callable[
    [GraphQLSchema, dict[str, FragmentDetails], VariableValues, OperationDefinitionNode],
    InferencePlan[A],
]


class InferenceCompiler(Compiler):
    """The payload's selection, through the batched compiler's own field builders: values
    only, so a selection that would need a load (a relation, a connection) is Unsupported."""

    root = RUN_INFERENCE  # the one root field it serves

    def inference_plan(self) -> InferencePlan[Answer]:
        return self.root_plan(lambda answer, build: build(answer, []))

    def root_plan(self, write: Callable[[A, Build], dict[str, Any]]) -> InferencePlan[A]:
        """The operation's plan: `write` runs the root's builder on an answer."""
        mutation = self.schema.mutation_type
        if mutation is None:
            raise Unsupported("operation")
        grouped = collect_fields(
            self.schema, self.fragments, self.variables, mutation, self.operation
        ).grouped_field_set
        roots: list[tuple[str, FieldCode]] = []
        found: tuple[str, FieldDetailsList] | None = None
        for key, details in self._fields(grouped):
            name = details[0].node.name.value
            if name == "__typename":
                roots.append((key, Constant(mutation.name)))
            elif name == self.root and found is None:
                found = key, details
                roots.append((key, Call(self._payload(mutation, details))))
            else:
                raise Unsupported("root_fields")
        if found is None:
            raise Unsupported("root_fields")
        build = builder(roots)
        nodes = tuple(detail.node for detail in found[1])
        gql_field = mutation.fields[self.root]
        return InferencePlan(found[0], nodes, gql_field, lambda answer: write(answer, build))

    def _payload(self, mutation: GraphQLObjectType, details: FieldDetailsList) -> Build:
        payload = self._object_type(mutation.fields[RUN_INFERENCE].type)
        fields: list[tuple[str, FieldCode]] = []
        for sub_key, sub_details in self._fields_of(payload, details):
            name = sub_details[0].node.name.value
            if name == "__typename":
                fields.append((sub_key, Constant(payload.name)))
            elif name in ("submission", "result"):
                child_type = self._object_type(payload.fields[name].type)
                child = self._selection(child_type, self._subfields(child_type, sub_details))
                if child.relations:
                    raise Unsupported("relation")
                fields.append((sub_key, Call(_part(0 if name == "submission" else 1, child.build))))
            else:
                raise Unsupported(f"field:{payload.name}.{name}")
        return builder(fields)


def _part(index: int, build: Build) -> Callable[[Answer, Values], Any]:
    """The submission (0) or the result (1) of the answer, built; a missing result is null."""

    def write(answer: Answer, values: Values) -> Any:
        entity = answer[index]
        return None if entity is None else build(entity, values)

    return write


def compile_inference(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variables: VariableValues,
    operation: OperationDefinitionNode,
) -> InferencePlan[Answer]:
    return InferenceCompiler(schema, fragments, variables, operation).inference_plan()


@dataclass(eq=False)
class KnownInference(Generic[A]):
    """A runInference (or batchInference) text the full pipeline accepted: its measure and
    its plans."""

    query: KnownQuery  # the document, its measurements and argument sites
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    conditions: tuple[str, ...]  # variables that @skip/@include read
    compile: Compile[A]
    plans: dict[tuple[Any, ...], InferencePlan[A] | str] = field(default_factory=dict)

    def coerced(
        self, schema: GraphQLSchema, variables: dict[str, Any] | None
    ) -> VariableValues | None:
        """The variables as the reference executor coerces them; None when they fail (the
        full path answers with its own error)."""
        coerced = get_variable_values(
            schema, self.operation.variable_definitions or (), variables or {}, max_errors=1
        )
        return None if isinstance(coerced, list) else coerced

    def plan(self, schema: GraphQLSchema, variables: VariableValues) -> InferencePlan[A] | str:
        """The plan for these @skip/@include values, or why there is none."""
        condition = tuple(variables.coerced.get(name) for name in self.conditions)
        plan = self.plans.get(condition)
        if plan is None:
            try:
                plan = self.compile(schema, self.fragments, variables, self.operation)
            except Unsupported as unsupported:
                plan = unsupported.reason
            if len(self.plans) < MAX_PLANS_PER_DOCUMENT:
                self.plans[condition] = plan
        return plan


def known_inference(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    compile: Compile[A],
) -> KnownInference[A] | None:
    """The document as the lane knows it, when its operation is one the lane can serve with
    these variables; None otherwise."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return None
    fragments = {
        d.name.value: FragmentDetails(d)
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    if any(
        isinstance(d, FragmentDefinitionNode) and d.variable_definitions
        for d in document.definitions
    ):
        return None
    try:
        conditions = conditions_of(document, operation)
    except Unsupported:
        return None
    name = operation.name.value if operation.name else operation_name
    query = KnownQuery(document, name, measured_variables(document))
    known = KnownInference(query, operation, fragments, conditions, compile)
    coerced = known.coerced(schema, variables)
    if coerced is None or isinstance(known.plan(schema, coerced), str):
        return None
    return known


class KnownInferences(Generic[A]):
    """runInference (or batchInference) texts the full pipeline accepted, by (query, operation
    name) as a request sends them; a document with one operation is also known without a name."""

    def __init__(self, maxsize: int) -> None:
        self._known: ByText[KnownInference[A]] = ByText(maxsize)

    def __len__(self) -> int:
        return len(self._known)

    def get(self, query: str, operation_name: str | None) -> KnownInference[A] | None:
        return self._known.get(query, operation_name)

    def remember(self, query: str, operation_name: str | None, known: KnownInference[A]) -> None:
        self._known.put(query, operation_name, known.query.document, known)


class RememberInference(SchemaExtension, Generic[A]):
    """On the full path: a text whose one root field is `root` (runInference, or
    batchInference) that passed parsing, validation and the limits (nothing refused it
    before execution) is remembered for its lane, when `compile` serves it."""

    def __init__(self, known: KnownInferences[A], root: str, compile: Compile[A]) -> None:
        self.known = known
        self.root = root
        self.compile = compile

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if (
            context.result is None
            and context.graphql_document is not None
            and context.query is not None
            and isinstance(context.context, Context)
            and self.root in context.query  # other mutations: not even parsed for it
            and context.operation_type is StrawberryOperationType.MUTATION
            and self.known.get(context.query, context.operation_name) is None
        ):
            found = known_inference(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
                self.compile,
            )
            if found is not None:
                self.known.remember(context.query, context.operation_name, found)
        yield
