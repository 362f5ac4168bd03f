"""From a validated query operation to a projection: one statement for the whole operation.

The store builds the response JSON itself (persistence/projections.py); this module says
what to build, from the same field collection as the batched compiler (graphql-core's
`collect_fields`, so keys, order, fragments and @skip/@include mean what they mean on the
reference path) and from the schema's declarations (graph/execution/declarations.py), which say what
each field is. A field declared as something this plan cannot build makes the operation
Unsupported here; the batched plan (compiler.py) may still serve it. Argument values never
enter the projection: each argument-taking field gets a slot, bound per request by the same
functions the batched plan uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    is_non_null_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
)
from graphql.execution.values import VariableValues, get_argument_values

from domain import projections as p
from graph.execution import loads
from graph.execution.collection import FieldCollector
from graph.execution.declarations import (
    Column,
    Declaration,
    Identifier,
    Paged,
    Source,
    Stored,
    ToMany,
    ToOne,
    declarations_of,
)
from graph.execution.specs import Arguments, Unsupported

# ------------------------------------------------------------------ the plan


@dataclass(frozen=True, eq=False)
class Binding:
    """One slot's value from the field's arguments."""

    gql_field: GraphQLField
    node: FieldNode
    bind: Callable[[Arguments], p.SlotValue]

    def value(self, variables: VariableValues) -> p.SlotValue:
        return self.bind(get_argument_values(self.gql_field, self.node, variables))


@dataclass(frozen=True, eq=False)
class ProjectionPlan:
    projection: p.Projection
    bindings: tuple[Binding, ...]

    def slots(self, variables: VariableValues) -> list[p.SlotValue]:
        return [binding.value(variables) for binding in self.bindings]


def snake_case(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


_KINDS: Mapping[str, p.Kind] = {
    "String": p.Kind.TEXT,
    "ID": p.Kind.TEXT,
    "Int": p.Kind.INT,
    "Float": p.Kind.FLOAT,
    "Boolean": p.Kind.BOOLEAN,
    "JSON": p.Kind.JSON,
    "DateTime": p.Kind.MOMENT,
}


def _unwrapped(gql_type: GraphQLOutputType) -> GraphQLOutputType:
    return gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type


def _enum_choices(enum: GraphQLEnumType) -> tuple[str, ...]:
    """The stored values of an enum whose stored values are its names (as the domain's are)."""
    for name, definition in enum.values.items():
        stored = getattr(definition.value, "value", definition.value)
        if stored != name:
            raise Unsupported("enum")
    return tuple(enum.values)


def attribute_of(name: str, gql_type: GraphQLOutputType) -> p.Attribute:
    """How a leaf field's value is written, from its GraphQL type alone."""
    inner = _unwrapped(gql_type)
    required = is_non_null_type(gql_type)
    if isinstance(inner, GraphQLEnumType):
        return p.Attribute(name, p.Kind.TEXT, required, _enum_choices(inner))
    if isinstance(inner, GraphQLList):
        item = inner.of_type
        if isinstance(item, GraphQLNonNull) and getattr(item.of_type, "name", "") == "String":
            return p.Attribute(name, p.Kind.TEXT_LIST, required)
        raise Unsupported("type")
    if isinstance(inner, GraphQLScalarType) and inner.name in _KINDS:
        return p.Attribute(name, _KINDS[inner.name], required)
    raise Unsupported("type")


class ProjectionCompiler(FieldCollector):
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> None:
        super().__init__(schema, fragments, variables, operation)
        declarations = declarations_of(schema)
        self.declared = declarations.fields
        self.entities = declarations.entities
        self.bindings: list[Binding] = []

    def plan(self) -> ProjectionPlan:
        query = self._query_type()
        roots: list[tuple[str, p.Root | p.Constant]] = []
        for key, details in self._fields(self._root_fields()):
            name = details[0].node.name.value
            if name == "__typename":
                roots.append((key, p.Constant(query.name)))
                continue
            roots.append((key, self._root(query, name, details)))
        return ProjectionPlan(p.Projection(tuple(roots)), tuple(self.bindings))

    # ------------------------------------------------------------------ helpers

    def _slot(self, gql_field: GraphQLField, details: FieldDetailsList, bind: Any) -> int:
        self.bindings.append(Binding(gql_field, details[0].node, bind))
        return len(self.bindings) - 1

    def _declared(self, gql_type: GraphQLObjectType, name: str) -> tuple[Declaration, GraphQLField]:
        declaration = self.declared.get(gql_type.name, {}).get(name)
        gql_field = gql_type.fields.get(name)
        if declaration is None or gql_field is None:
            raise Unsupported(f"field:{gql_type.name}.{name}")
        return declaration, gql_field

    def _entity(self, gql_type: GraphQLObjectType) -> str:
        """The domain entity the type shows (where the store finds its rows)."""
        entity = self.entities.get(gql_type.name)
        if entity is None:
            raise Unsupported(f"entity:{gql_type.name}")
        return entity

    # -------------------------------------------------------------------- roots

    def _root(self, query: GraphQLObjectType, name: str, details: FieldDetailsList) -> p.Root:
        declaration, gql_field = self._declared(query, name)
        if isinstance(declaration, Paged):
            window = self._window(declaration, gql_field, details)
            return p.Root(window, rule=declaration.rule)
        if not isinstance(declaration, Source):
            raise Unsupported(f"field:{query.name}.{name}")
        target = _object_type(gql_field.type)
        join = declaration.join(self._entity(target))
        shape = self._shape(target, details)
        if isinstance(_unwrapped(gql_field.type), GraphQLList):
            return p.Root(p.Many(join, shape))
        slot = None
        if declaration.id_of is not None:
            slot = self._slot(gql_field, details, loads.id_of(declaration.id_of))
        return p.Root(p.One(join, shape, is_required=True), slot)

    # ------------------------------------------------------------------ objects

    def _shape(self, gql_type: GraphQLObjectType, details: FieldDetailsList) -> p.Shape:
        fields: list[tuple[str, p.Field]] = []
        for key, subdetails in self._fields_of(gql_type, details):
            name = subdetails[0].node.name.value
            if name == "__typename":
                fields.append((key, p.Constant(gql_type.name)))
                continue
            declaration, gql_field = self._declared(gql_type, name)
            fields.append((key, self._field(gql_type, name, declaration, gql_field, subdetails)))
        return p.Shape(self._entity(gql_type), tuple(fields))

    def _field(
        self,
        parent: GraphQLObjectType,
        name: str,
        declaration: Declaration,
        gql_field: GraphQLField,
        details: FieldDetailsList,
    ) -> p.Field:
        if isinstance(declaration, Column):
            return attribute_of(declaration.attribute or snake_case(name), gql_field.type)
        if isinstance(declaration, Identifier):
            return p.GlobalId(parent.name)
        if isinstance(declaration, ToOne | ToMany):
            target = _object_type(gql_field.type)
            join = declaration.join(self._entity(target))
            shape = self._shape(target, details)
            if isinstance(declaration, ToMany):
                return p.Many(join, shape)
            return p.One(join, shape, is_non_null_type(gql_field.type))
        if isinstance(declaration, Stored):
            return self._stored(declaration, gql_field, details)
        if isinstance(declaration, Paged):
            return self._window(declaration, gql_field, details)
        raise Unsupported(f"field:{parent.name}.{name}")

    def _stored(
        self, declaration: Stored, gql_field: GraphQLField, details: FieldDetailsList
    ) -> p.Nested:
        if not isinstance(_unwrapped(gql_field.type), GraphQLList):
            raise Unsupported("type")
        item_type = _object_type(gql_field.type)
        fields: list[tuple[str, p.NestedValue | p.Constant]] = []
        for key, subdetails in self._fields_of(item_type, details):
            name = subdetails[0].node.name.value
            if name == "__typename":
                fields.append((key, p.Constant(item_type.name)))
                continue
            declaration_of, item_field = self._declared(item_type, name)
            if not isinstance(declaration_of, Column):
                raise Unsupported(f"field:{item_type.name}.{name}")
            attribute = attribute_of(declaration_of.attribute or snake_case(name), item_field.type)
            kinds = (p.Kind.JSON, p.Kind.FLOAT, p.Kind.TEXT)
            if not attribute.is_required or attribute.kind not in kinds or attribute.choices:
                raise Unsupported("type")
            fields.append((key, p.NestedValue(attribute.name, attribute.kind)))
        return p.Nested(declaration.attribute, tuple(fields))

    # -------------------------------------------------------------- connections

    def _window(
        self, declaration: Paged, gql_field: GraphQLField, details: FieldDetailsList
    ) -> p.Window:
        connection = _object_type(gql_field.type)
        join = declaration.join(self._entity(_node_type(connection)))
        slot = self._slot(gql_field, details, declaration.window)
        parts: list[tuple[str, str | p.Constant]] = []
        edges: tuple[tuple[str, p.Cursor | p.Constant | p.Shape], ...] | None = None
        page_info: tuple[tuple[str, str | p.Constant], ...] | None = None
        for key, subdetails in self._fields_of(connection, details):
            name = subdetails[0].node.name.value
            part_type = connection.fields[name].type if name in connection.fields else None
            if name == "__typename":
                parts.append((key, p.Constant(connection.name)))
            elif name == "totalCount":
                parts.append((key, name))
            elif name == "edges" and edges is None and part_type is not None:
                parts.append((key, name))
                edges = self._edges(_object_type(part_type), subdetails)
            elif name == "pageInfo" and page_info is None and part_type is not None:
                parts.append((key, name))
                page_info = self._page_info(_object_type(part_type), subdetails)
            else:
                # Another field, or edges under two keys: one window writes one of each.
                raise Unsupported(f"field:{connection.name}.{name}")
        return p.Window(join, slot, tuple(parts), edges or (), page_info or ())

    def _edges(
        self, edge: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[tuple[str, p.Cursor | p.Constant | p.Shape], ...]:
        parts: list[tuple[str, p.Cursor | p.Constant | p.Shape]] = []
        for key, subdetails in self._fields_of(edge, details):
            name = subdetails[0].node.name.value
            if name == "__typename":
                parts.append((key, p.Constant(edge.name)))
            elif name == "cursor":
                parts.append((key, p.Cursor()))
            elif name == "node":
                parts.append((key, self._shape(_object_type(edge.fields[name].type), subdetails)))
            else:
                raise Unsupported(f"field:{edge.name}.{name}")
        return tuple(parts)

    def _page_info(
        self, info: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[tuple[str, str | p.Constant], ...]:
        parts: list[tuple[str, str | p.Constant]] = []
        for key, subdetails in self._fields_of(info, details):
            name = subdetails[0].node.name.value
            if name == "__typename":
                parts.append((key, p.Constant(info.name)))
            elif name in _PAGE_INFO:
                parts.append((key, name))
            else:
                raise Unsupported(f"field:{info.name}.{name}")
        return tuple(parts)


_PAGE_INFO = frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"})


def _node_type(connection: GraphQLObjectType) -> GraphQLObjectType:
    edges = connection.fields.get("edges")
    if edges is None:
        raise Unsupported(f"field:{connection.name}.edges")
    node = _object_type(edges.type).fields.get("node")
    if node is None:
        raise Unsupported(f"field:{connection.name}.edges")
    return _object_type(node.type)


def _object_type(gql_type: GraphQLOutputType) -> GraphQLObjectType:
    while isinstance(gql_type, GraphQLNonNull | GraphQLList):
        gql_type = gql_type.of_type
    if not isinstance(gql_type, GraphQLObjectType):
        raise Unsupported("abstract_type")
    return gql_type
