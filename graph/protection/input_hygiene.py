"""One hygiene rule for every input value, checked once before any resolver runs.

Every argument of the operation (literals, and the variables it uses) is walked against its
declared type: a string anywhere (a String, an ID, a key or a string inside a JSON value) must
be valid Unicode without NUL, and within its byte bound; a JSON value must serialise within
its own bound with finite numbers a 64-bit integer can hold. PostgreSQL refuses NUL in text
and jsonb, and an oversized value would fail a b-tree index: without this rule both surface
as INTERNAL from deep inside a mutation. The paths name the argument as the domain does
(`input.name`, `filter.emailContains`, `input.inputs.3`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    ValueNode,
    get_nullable_type,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.type.definition import GraphQLNamedType

from graph.errors import AssayGraphQLError

JSON_SCALAR = "JSON"
MAX_JSON_INTEGER = 2**63 - 1  # what the JSON encoder (orjson) and jsonb round-trip exactly
MAX_PROBLEMS = 20
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class InputBounds:
    max_string_bytes: int = 2048
    max_json_bytes: int = 256 * 1024


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored as text, or None."""
    if "\x00" in text:
        return "must not contain NUL (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _string_problem(text: str, bounds: InputBounds) -> str | None:
    problem = text_problem(text)
    if problem is None and len(text.encode("utf-8")) > bounds.max_string_bytes:
        problem = f"must be at most {bounds.max_string_bytes} UTF-8 bytes"
    return problem


def _json_items(value: object) -> Iterator[tuple[object, int]]:
    """Every value and key inside a JSON value with its depth, without recursion."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        yield item, depth
        if isinstance(item, Mapping):
            pending.extend((key, depth + 1) for key in item)
            pending.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((inner, depth + 1) for inner in item)


def _is_clean(text: str) -> bool:
    """text_problem(text) is None; an ASCII text (most keys) without encoding it."""
    return "\x00" not in text and (text.isascii() or text_problem(text) is None)


def _is_plain_flat(value: object) -> bool:
    """Whether `value` is an object of clean scalars: a batch's typical row, checked in one
    loop. False sends it to the full walk, which names its problem (if it has one)."""
    if type(value) is not dict:
        return False
    for key, item in value.items():
        if type(key) is not str or not _is_clean(key):
            return False
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is int:
            if abs(item) > MAX_JSON_INTEGER:
                return False
        elif kind is str:
            if not _is_clean(item):
                return False
        elif kind is not bool and item is not None:
            return False
    return True


def json_problem(value: object, bounds: InputBounds) -> str | None:
    """Why `value` (a JSON scalar's input) cannot be stored as jsonb, or None."""
    if not _is_plain_flat(value):
        problem = _walk_problem(value)
        if problem is not None:
            return problem
    size = len(orjson.dumps(value))
    if size > bounds.max_json_bytes:
        return f"must be at most {bounds.max_json_bytes} bytes of JSON, got {size}"
    return None


def _walk_problem(value: object) -> str | None:
    for item, depth in _json_items(value):
        if depth > MAX_JSON_DEPTH:  # the encoder (orjson) refuses deeper values
            return f"must nest at most {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return problem
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and abs(item) > MAX_JSON_INTEGER:
            return f"numbers must be between -{MAX_JSON_INTEGER} and {MAX_JSON_INTEGER}"
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite"
    return None


class _Walk:
    def __init__(self, bounds: InputBounds) -> None:
        self.bounds = bounds
        self.problems: dict[str, str] = {}

    def value(self, value: object, type_: GraphQLInputType, path: str) -> None:
        if value is None or value is Undefined or len(self.problems) >= MAX_PROBLEMS:
            return
        nullable = get_nullable_type(type_)
        if is_list_type(nullable):
            item_type = nullable.of_type
            if isinstance(value, list) and _is_json(item_type):
                self.json_items(value, path)  # batchInference's inputs: one loop
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    self.value(item, item_type, f"{path}.{index}")
            else:  # a single value coerced into a list of one
                self.value(value, item_type, path)
            return
        if isinstance(nullable, GraphQLInputObjectType):
            if isinstance(value, Mapping):
                for key, item in value.items():
                    field = nullable.fields.get(key)
                    if field is not None:
                        self.value(item, field.type, f"{path}.{key}")
            return
        problem = None
        if _is_json(nullable):
            problem = json_problem(value, self.bounds)
        elif isinstance(value, str):
            problem = _string_problem(value, self.bounds)
        if problem is not None:
            self.problems.setdefault(path, problem)

    def json_items(self, values: list[object], path: str) -> None:
        """value() of each item of a list of JSON values, without its per-item dispatch."""
        bounds, problems = self.bounds, self.problems
        for index, item in enumerate(values):
            if len(problems) >= MAX_PROBLEMS:
                return
            if item is not None and item is not Undefined:
                problem = json_problem(item, bounds)
                if problem is not None:
                    problems.setdefault(f"{path}.{index}", problem)


def _is_json(type_: object) -> bool:
    """Whether `type_` is the JSON scalar, required or not."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLNamedType) and type_.name == JSON_SCALAR


def _fields(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType | None,
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: set[str],
) -> Iterator[tuple[FieldNode, Mapping[str, GraphQLArgument]]]:
    """Every field of a selection set with its arguments' definitions, through fragments."""
    for node in selection_set.selections if selection_set else ():
        if isinstance(node, FieldNode):
            definition = getattr(parent, "fields", {}).get(node.name.value)
            if definition is None:
                continue  # introspection or unknown: validation's business
            yield node, definition.args
            child = _named(definition.type)
            yield from _fields(node.selection_set, child, schema, fragments, seen)
        elif isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            scope = schema.get_type(condition.name.value) if condition else parent
            yield from _fields(node.selection_set, scope, schema, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)
            if (fragment := fragments.get(node.name.value)) is not None:
                scope = schema.get_type(fragment.type_condition.name.value)
                yield from _fields(fragment.selection_set, scope, schema, fragments, seen)


def _named(type_: Any) -> GraphQLNamedType | None:
    while hasattr(type_, "of_type"):
        type_ = type_.of_type
    return type_ if isinstance(type_, GraphQLNamedType) else None


def variables_with_defaults(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The operation's variables as sent, with its declared defaults for those left out."""
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None:
            values[definition.variable.name.value] = value_from_ast_untyped(
                definition.default_value
            )
    values.update(variables or {})
    return values


@dataclass(frozen=True)
class ArgumentSite:
    """One argument the operation passes: its value as written (a literal or variables)
    and its declared type; the same for every request of one document."""

    value: ValueNode
    type: GraphQLInputType
    name: str


def argument_sites(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> tuple[ArgumentSite, ...]:
    """Every argument of the operation, through fragments, with its definition."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = schema.get_root_type(operation.operation)
    sites = []
    for node, arguments in _fields(operation.selection_set, root, schema, fragments, set()):
        for argument in node.arguments or ():
            definition = arguments.get(argument.name.value)
            if definition is not None:
                sites.append(ArgumentSite(argument.value, definition.type, argument.name.value))
    return tuple(sites)


def input_problems(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    bounds: InputBounds,
    sites: tuple[ArgumentSite, ...] | None = None,
) -> dict[str, str]:
    """Argument path -> why its value is refused, for every argument the operation passes.
    `sites`: argument_sites of this operation, when the caller kept them."""
    if sites is None:
        sites = argument_sites(schema, document, operation)
    values = variables_with_defaults(operation, variables)
    walk = _Walk(bounds)
    for site in sites:
        walk.value(value_from_ast_untyped(site.value, values), site.type, site.name)
    return walk.problems


def invalid_input_error(problems: Mapping[str, str]) -> AssayGraphQLError:
    summary = "; ".join(f"{path}: {text}" for path, text in problems.items())
    return AssayGraphQLError(f"invalid input: {summary}", "BAD_USER_INPUT", fields=dict(problems))
