"""Query limits and cost analysis, measured on the document before any resolver runs.

Cost model: a scalar costs 0; an object field costs `multiplier * (1 + cost of its selections)`
where the multiplier is the field's `first` for a connection (any field taking `first`; 20 when
absent, clamped to the page size the server ever returns), a fixed bound for a list field
(`len(ids)` for `nodes`), and 1 otherwise. Lists inside a connection type (`edges`) are already
paid for by the connection's `first`. Fragments are counted where they are spread; introspection
fields cost nothing and do not count towards the depth.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_composite_type,
    is_list_type,
    value_from_ast_untyped,
    visit,
)
from graphql.language import Lexer, Source, TokenKind

from domain.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from graph.errors import AssayGraphQLError
from graph.protection.input_hygiene import InputBounds, variables_with_defaults

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
DEFAULT_LIST_BOUND = 10
LIST_BOUNDS: Mapping[tuple[str, str], int] = {("Query", "models"): 100}
INFERENCE_MUTATIONS = frozenset({"createSubmission", "runInference", "batchInference"})


@dataclass(frozen=True)
class QueryLimits:
    max_document_bytes: int = 20 * 1024
    max_tokens: int = 2_000
    max_depth: int = 10
    max_aliases: int = 30
    max_directives: int = 50
    max_root_fields: int = 20
    max_cost: int = 10_000
    hide_suggestions: bool = False
    batching: bool = False
    max_batch_operations: int = 10
    inputs: InputBounds = field(default_factory=InputBounds)  # graph/protection/input_hygiene.py


@dataclass(frozen=True)
class Measure:
    """What a selection set weighs; `width` is the number of fields at its own level."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0
    width: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            depth=max(self.depth, other.depth),
            aliases=self.aliases + other.aliases,
            directives=self.directives + other.directives,
            cost=self.cost + other.cost,
            width=self.width + other.width,
        )


def too_complex(message: str, cost: int, limit: int) -> AssayGraphQLError:
    return AssayGraphQLError(message, QUERY_TOO_COMPLEX, cost=cost, limit=limit)


@functools.lru_cache(maxsize=256)  # clients send the same few documents again and again
def count_tokens(query: str) -> int:
    """Lexical tokens as graphql-core's parser counts them; stops at the first lexing error."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while lexer.advance().kind is not TokenKind.EOF:
            count += 1
    except GraphQLError:
        pass  # the parser reports the syntax error itself
    return count


def check_document(query: str, limits: QueryLimits) -> AssayGraphQLError | None:
    """The size and token limits, checked on the text before it is parsed."""
    size = len(query.encode("utf-8", "surrogatepass"))
    if size > limits.max_document_bytes:
        return too_complex(
            f"query document too large: {size} bytes, limit {limits.max_document_bytes}",
            size,
            limits.max_document_bytes,
        )
    tokens = count_tokens(query)
    if tokens > limits.max_tokens:
        return too_complex(
            f"query has too many tokens: {tokens}, limit {limits.max_tokens}",
            tokens,
            limits.max_tokens,
        )
    return None


def _as_count(value: object, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


@dataclass
class _Analysis:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    _memo: dict[str, Measure] = field(default_factory=dict)
    _visiting: set[str] = field(default_factory=set)

    def selections(self, node: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Measure:
        total = Measure()
        for selection in node.selections if node else ():
            total = total + self.selection(selection, parent)
        return total

    def selection(self, node: SelectionNode, parent: GraphQLNamedType | None) -> Measure:
        own = Measure(directives=len(node.directives or ()))
        if isinstance(node, FieldNode):
            return own + self.field(node, parent)
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            scope = self.schema.get_type(condition.name.value) if condition else parent
            return own + self.selections(node.selection_set, scope)
        if isinstance(node, FragmentSpreadNode):
            return own + self.fragment(node.name.value)
        return own

    def fragment(self, name: str) -> Measure:
        if name in self._memo:
            return self._memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self._visiting:
            return Measure()  # unknown or cyclic: validation reports it
        self._visiting.add(name)
        scope = self.schema.get_type(definition.type_condition.name.value)
        measure = Measure(directives=len(definition.directives or ()))
        measure = measure + self.selections(definition.selection_set, scope)
        self._visiting.discard(name)
        self._memo[name] = measure
        return measure

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        aliases = 1 if node.alias else 0
        if node.name.value.startswith("__"):
            return Measure(aliases=aliases, width=1)
        definition = _field_definition(parent, node.name.value)
        child = get_named_type(definition.type) if definition else None
        inner = self.selections(node.selection_set, child)
        cost = 0
        if node.selection_set is not None and (child is None or is_composite_type(child)):
            multiplier = self.multiplier(node, parent, definition) if definition else 1
            cost = multiplier * (1 + inner.cost)
        return Measure(
            depth=1 + inner.depth,
            aliases=aliases + inner.aliases,
            directives=inner.directives,
            cost=cost,
            width=1,
        )

    def multiplier(
        self, node: FieldNode, parent: GraphQLNamedType | None, definition: GraphQLField
    ) -> int:
        if "first" in definition.args:
            default = _as_count(definition.args["first"].default_value, DEFAULT_PAGE_SIZE)
            first = _as_count(self.argument(node, "first", default), default)
            return max(0, min(first, MAX_PAGE_SIZE))
        if not is_list_type(get_nullable_type(definition.type)):
            return 1
        parent_name = parent.name if parent else ""
        if parent_name.endswith("Connection"):
            return 1
        if (parent_name, node.name.value) == ("Query", "nodes"):
            ids = self.argument(node, "ids", None)
            return len(ids) if isinstance(ids, list) else 1
        return LIST_BOUNDS.get((parent_name, node.name.value), DEFAULT_LIST_BOUND)

    def argument(self, node: FieldNode, name: str, default: object) -> object:
        assert name in MEASURED_ARGUMENTS, name  # measured_variables must know what is read
        for argument in node.arguments or ():
            if argument.name.value == name:
                value = value_from_ast_untyped(argument.value, self.variables)
                return default if value is None or value is Undefined else value
        return default


# The only arguments whose values a measurement reads (see _Analysis.argument's callers).
MEASURED_ARGUMENTS = frozenset({"first", "ids", "input"})


def measured_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables a measurement of any operation in `document` can read: those used in
    the arguments it reads. Measurements of requests that agree on them are equal."""
    names: set[str] = set()

    class Collect(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: object) -> object:
            if node.name.value in MEASURED_ARGUMENTS:
                names.update(found.name.value for found in _variables_in(node.value))
            return self.SKIP

    visit(document, Collect())
    return tuple(sorted(names))


def _variables_in(value: ValueNode) -> Iterator[VariableNode]:
    if isinstance(value, VariableNode):
        yield value
    elif isinstance(value, ListValueNode):
        for item in value.values:
            yield from _variables_in(item)
    elif isinstance(value, ObjectValueNode):
        for entry in value.fields:
            yield from _variables_in(entry.value)


def _field_definition(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        definition: GraphQLField | None = parent.fields.get(name)
        return definition
    return None


@dataclass(frozen=True)
class OperationMeasure:
    depth: int
    aliases: int
    directives: int
    root_fields: int
    cost: int
    inference_requests: int
    # Inference requests per root field, by response key (alias or name): what to give back
    # when that field is refused.
    inference_fields: tuple[tuple[str, int], ...] = ()


def measure_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> OperationMeasure | None:
    """Weigh the operation that would run; None when there is no such operation."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    values = variables_with_defaults(operation, variables)
    analysis = _Analysis(schema, fragments, values)
    root = schema.get_root_type(operation.operation)
    measure = analysis.selections(operation.selection_set, root)
    inference = _inference_requests(analysis, operation)
    return OperationMeasure(
        depth=measure.depth,
        aliases=measure.aliases,
        directives=measure.directives + len(operation.directives or ()),
        root_fields=measure.width,
        cost=measure.cost,
        inference_requests=sum(count for _, count in inference),
        inference_fields=tuple(inference),
    )


def _root_fields(analysis: _Analysis, selection_set: SelectionSetNode) -> list[FieldNode]:
    fields: list[FieldNode] = []
    seen: set[str] = set()
    pending = list(selection_set.selections)
    while pending:
        node = pending.pop(0)
        if isinstance(node, FieldNode):
            fields.append(node)
        elif isinstance(node, InlineFragmentNode):
            pending.extend(node.selection_set.selections)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)  # a fragment spread twice runs its fields once
            if (definition := analysis.fragments.get(node.name.value)) is not None:
                pending.extend(definition.selection_set.selections)
    return fields


def _inference_requests(
    analysis: _Analysis, operation: OperationDefinitionNode
) -> list[tuple[str, int]]:
    """Inference requests a mutation makes, per root field: one per submission it creates."""
    if operation.operation.value != "mutation":
        return []
    fields: list[tuple[str, int]] = []
    for node in _root_fields(analysis, operation.selection_set):
        if node.name.value not in INFERENCE_MUTATIONS:
            continue
        count = 1
        if node.name.value == "batchInference":
            payload = analysis.argument(node, "input", None)
            inputs = payload.get("inputs") if isinstance(payload, dict) else None
            count = max(1, len(inputs)) if isinstance(inputs, list) else 1
        fields.append(((node.alias or node.name).value, count))
    return fields


def check_operation(measure: OperationMeasure, limits: QueryLimits) -> AssayGraphQLError | None:
    """The first limit the operation exceeds, as a QUERY_TOO_COMPLEX error."""
    checks = (
        ("depth", measure.depth, limits.max_depth, "query is too deep"),
        ("aliases", measure.aliases, limits.max_aliases, "query uses too many aliases"),
        ("directives", measure.directives, limits.max_directives, "too many directives"),
        ("root fields", measure.root_fields, limits.max_root_fields, "too many root fields"),
        ("cost", measure.cost, limits.max_cost, "query is too costly"),
    )
    for name, value, limit, summary in checks:
        if value > limit:
            return too_complex(f"{summary}: {name} {value}, limit {limit}", value, limit)
    return None
