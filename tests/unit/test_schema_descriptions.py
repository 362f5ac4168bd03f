"""Every public type, field, argument, enum value and input field has a description."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
)

from graph.schema.record import schema

BUILT_IN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})


def undescribed(built: GraphQLSchema) -> Iterator[str]:
    """The coordinates (`Type.field(argument)`, `Enum.VALUE`) of what has no description."""
    for name, named in sorted(built.type_map.items()):
        if name.startswith("__") or name in BUILT_IN_SCALARS:
            continue
        if not named.description:
            yield name
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                if not field.description:
                    yield f"{name}.{field_name}"
                for arg_name, arg in field.args.items():
                    if not arg.description:
                        yield f"{name}.{field_name}({arg_name}:)"
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                if not input_field.description:
                    yield f"{name}.{field_name}"
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                if not value.description:
                    yield f"{name}.{value_name}"


def test_every_public_schema_member_has_a_description() -> None:
    missing = list(undescribed(build_schema(schema.as_str())))
    assert missing == [], f"{len(missing)} without a description:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_description() -> None:
    built = build_schema('"A root."\ntype Query {\n  "A field."\n  a(b: Int): Int\n  c: Int\n}')
    assert list(undescribed(built)) == ["Query.a(b:)", "Query.c"]
