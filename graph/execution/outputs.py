"""Leaf values as graphql-core would serialize them, with fast paths for the common types."""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLScalarType,
    is_non_null_type,
)

from graph.execution.specs import Fallback, Unsupported

Serialize = Callable[[Any], Any]
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _checked(serialize: Serialize) -> Serialize:
    """The scalar's own serializer; a value it refuses is the reference path's error to report."""

    def run(value: Any) -> Any:
        try:
            return serialize(value)
        except (GraphQLError, TypeError, ValueError):
            raise Fallback("coercion") from None

    return run


def _leaf(named: GraphQLOutputType) -> Serialize:
    if isinstance(named, GraphQLEnumType):
        names = {definition.value: name for name, definition in named.values.items()}

        def enum(value: Any) -> str:
            try:
                return str(names[value])
            except (KeyError, TypeError):
                raise Fallback("coercion") from None

        return enum
    if not isinstance(named, GraphQLScalarType):
        raise Unsupported("type")
    fallback = _checked(named.serialize)
    if named.name in ("String", "ID"):
        return lambda value: value if type(value) is str else fallback(value)
    if named.name == "Boolean":
        return lambda value: value if type(value) is bool else fallback(value)
    if named.name == "Int":
        return lambda value: (
            value if type(value) is int and _INT_MIN <= value <= _INT_MAX else fallback(value)
        )
    if named.name == "Float":
        return lambda value: value if type(value) is float and isfinite(value) else fallback(value)
    return fallback


def output(gql_type: GraphQLOutputType) -> Serialize:
    """A function from a Python value to the response value of `gql_type` (leaf or list)."""
    is_required = is_non_null_type(gql_type)
    inner = gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type
    serialize: Serialize
    if isinstance(inner, GraphQLList):
        item = output(inner.of_type)

        def items(value: Any) -> list[Any]:
            return [item(x) for x in value]

        serialize = items
    else:
        serialize = _leaf(inner)
    return required(serialize) if is_required else optional(serialize)


def fast_type(gql_type: GraphQLOutputType) -> type | None:
    """The Python type whose values a leaf field returns as they are (see codegen)."""
    inner = gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type
    if isinstance(inner, GraphQLScalarType):
        return _FAST_TYPES.get(inner.name)
    return None


_FAST_TYPES: dict[str, type] = {"String": str, "ID": str, "Boolean": bool, "Int": int}


def required(serialize: Serialize) -> Serialize:
    def run(value: Any) -> Any:
        if value is None:
            raise Fallback("null")
        return serialize(value)

    return run


def optional(serialize: Serialize) -> Serialize:
    return lambda value: None if value is None else serialize(value)
