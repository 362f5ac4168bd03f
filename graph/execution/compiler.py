"""From a validated query operation to a plan: the loads per level and a response builder.

Field collection is graphql-core's own (`collect_fields`), so response keys, their order,
fragment merging and @skip/@include mean exactly what they mean on the reference path.
Names, aliases and argument values from the document enter the plan only as data (dict
keys, bound values), never as source text.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_nullable_type,
    is_list_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
)
from graphql.execution.values import VariableValues, get_argument_values

from domain.pagination import keyset_of
from graph.execution.catalog import catalog_of
from graph.execution.codegen import (
    Attribute,
    Build,
    Call,
    Constant,
    FieldCode,
    Values,
    Write,
    builder,
)
from graph.execution.collection import FieldCollector
from graph.execution.outputs import fast_type, output
from graph.execution.specs import (
    Arguments,
    Embedded,
    Fallback,
    FieldSpec,
    Loaded,
    LoadFn,
    Paged,
    Related,
    Unsupported,
    Value,
)
from graph.ids import to_cursor


# Plans past this many response fields are left to the reference executor: the bound that
# keeps compiling an adversarial (fragment-multiplied) document cheap (~27 ms at worst,
# bench/compile.py). A document within the default 2,000-token limit that does not reuse
# fragments has fewer fields than this.
@dataclass(eq=False)
class Relation:
    """One batched load: for every parent of a selection, at one level of the response."""

    index: int
    load: LoadFn
    key: Callable[[Any], Hashable]
    bind: Callable[[Arguments], Any]
    gql_field: GraphQLField
    node: FieldNode
    flatten: Callable[[Loaded], list[Any]]
    children: list[Selection] = field(default_factory=list)

    def arguments(self, variables: VariableValues) -> Any:
        return self.bind(get_argument_values(self.gql_field, self.node, variables))


@dataclass(eq=False)
class Selection:
    """A selection set on objects of one type: the loads it needs and how to build it."""

    relations: list[Relation]
    build: Build


@dataclass(frozen=True, eq=False)
class Plan:
    root: Selection
    relations: Sequence[Relation]


def _singles(loaded: Loaded) -> list[Any]:
    return [v for v in loaded.values() if v is not None]


def _lists(loaded: Loaded) -> list[Any]:
    return [item for items in loaded.values() for item in items]


def _pages(loaded: Loaded) -> list[Any]:
    return [item for page in loaded.values() for item in page.items]


def _no_children(_: Loaded) -> list[Any]:
    return []


def _cursor(kind: str) -> Callable[[Any], str]:
    return lambda item: to_cursor(keyset_of(item), kind)


class Compiler(FieldCollector):
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> None:
        super().__init__(schema, fragments, variables, operation)
        self.catalog = catalog_of(schema)
        self.relations: list[Relation] = []

    def plan(self) -> Plan:
        root = self._selection(self._query_type(), self._root_fields())
        return Plan(root, tuple(self.relations))

    def _selection(
        self, gql_type: GraphQLObjectType, grouped: dict[str, FieldDetailsList]
    ) -> Selection:
        relations: list[Relation] = []
        specs = self.catalog.get(gql_type.name, {})
        fields: list[tuple[str, FieldCode]] = []
        for key, details in self._fields(grouped):
            name = details[0].node.name.value
            if name == "__typename":
                fields.append((key, Constant(gql_type.name)))
                continue
            spec = specs.get(name)
            gql_field = gql_type.fields.get(name)
            if spec is None or gql_field is None:
                raise Unsupported(f"field:{gql_type.name}.{name}")
            fields.append((key, self._field(spec, gql_field, details, relations)))
        return Selection(relations, builder(fields))

    def _object_type(self, gql_type: GraphQLOutputType) -> GraphQLObjectType:
        named = _named(gql_type)
        if not isinstance(named, GraphQLObjectType):
            raise Unsupported("abstract_type")
        return named

    def _field(
        self,
        spec: FieldSpec,
        gql_field: GraphQLField,
        details: FieldDetailsList,
        relations: list[Relation],
    ) -> FieldCode:
        if isinstance(spec, Value):
            serialize = output(gql_field.type)
            if spec.attribute is not None:
                return Attribute(spec.attribute, fast_type(gql_field.type), serialize)
            return Call(_value(spec.get, serialize))
        if isinstance(spec, Embedded):
            child = self._selection(
                self._object_type(gql_field.type),
                self._subfields(self._object_type(gql_field.type), details),
            )
            if child.relations:
                raise Unsupported("embedded_load")
            return Call(_embedded(spec.get, child.build, gql_field.type))
        if isinstance(spec, Related):
            return Call(self._related(spec, gql_field, details, relations))
        return Call(self._connection(spec, gql_field, details, relations))

    def _relation(
        self,
        load: LoadFn,
        key: Callable[[Any], Hashable],
        bind: Callable[[Arguments], Any],
        gql_field: GraphQLField,
        details: FieldDetailsList,
        flatten: Callable[[Loaded], list[Any]],
        selection: list[Relation],
    ) -> Relation:
        """A new load, numbered for the plan and run for the parents of `selection`."""
        relation = Relation(
            len(self.relations), load, key, bind, gql_field, details[0].node, flatten
        )
        self.relations.append(relation)
        selection.append(relation)
        return relation

    def _related(
        self,
        spec: Related,
        gql_field: GraphQLField,
        details: FieldDetailsList,
        relations: list[Relation],
    ) -> Write:
        is_list = _is_list(gql_field.type)
        child_type = _named(gql_field.type)
        flatten = _lists if is_list else _singles
        relation = self._relation(
            spec.load, spec.key, spec.bind, gql_field, details, flatten, relations
        )
        if not isinstance(child_type, GraphQLObjectType):
            if is_list:
                raise Unsupported("type")
            relation.flatten = _no_children
            return _loaded_value(relation, output(gql_field.type))
        child = self._selection(child_type, self._subfields(child_type, details))
        relation.children.append(child)
        if is_list:
            return _loaded_list(relation, child.build)
        return _loaded_object(relation, child.build, is_non_null_type(gql_field.type))

    def _connection(
        self,
        spec: Paged,
        gql_field: GraphQLField,
        details: FieldDetailsList,
        relations: list[Relation],
    ) -> Write:
        connection_type = self._object_type(gql_field.type)
        edge_type = self._object_type(connection_type.fields["edges"].type)
        cursor = _cursor(self._object_type(edge_type.fields["node"].type).name)
        pages = self._relation(
            spec.pages, spec.key, spec.bind, gql_field, details, _pages, relations
        )
        counts: Relation | None = None
        writers: list[tuple[str, Callable[[Any, Hashable, Values], Any]]] = []
        for key, subdetails in self._fields_of(connection_type, details):
            name = subdetails[0].node.name.value
            if name == "__typename":
                writers.append((key, _connection_constant(connection_type.name)))
            elif name == "edges":
                grouped = self._subfields(edge_type, subdetails)
                build_edge = self._edge(edge_type, grouped, pages, cursor)
                writers.append((key, _edges(build_edge)))
            elif name == "pageInfo":
                info_type = self._object_type(connection_type.fields["pageInfo"].type)
                writers.append((key, self._page_info(info_type, subdetails, cursor)))
            elif name == "totalCount":
                if counts is None:
                    counts = self._relation(
                        spec.counts,
                        spec.key,
                        spec.bind,
                        gql_field,
                        details,
                        _no_children,
                        relations,
                    )
                writers.append((key, _count(counts.index)))
            else:
                raise Unsupported(f"field:{connection_type.name}.{name}")
        return _paged(spec.key, pages.index, writers)

    def _edge(
        self,
        edge_type: GraphQLObjectType,
        grouped: dict[str, FieldDetailsList],
        pages: Relation,
        cursor: Callable[[Any], str],
    ) -> Build:
        fields: list[tuple[str, FieldCode]] = []
        for key, details in self._fields(grouped):
            name = details[0].node.name.value
            if name == "__typename":
                fields.append((key, Constant(edge_type.name)))
            elif name == "cursor":
                fields.append((key, Call(lambda item, _: cursor(item))))
            elif name == "node":
                node_type = self._object_type(edge_type.fields["node"].type)
                node = self._selection(node_type, self._subfields(node_type, details))
                pages.children.append(node)
                fields.append((key, Call(node.build)))
            else:
                raise Unsupported(f"field:{edge_type.name}.{name}")
        return builder(fields)

    def _page_info(
        self, info_type: GraphQLObjectType, details: FieldDetailsList, cursor: Callable[[Any], str]
    ) -> Callable[[Any, Hashable, Values], Any]:
        fields: list[tuple[str, FieldCode]] = []
        readers = _page_info_readers(cursor)
        for key, subdetails in self._fields_of(info_type, details):
            name = subdetails[0].node.name.value
            reader = readers.get(name)
            if name == "__typename":
                fields.append((key, Constant(info_type.name)))
            elif reader is None:
                raise Unsupported(f"field:{info_type.name}.{name}")
            else:
                fields.append((key, Call(reader)))
        build = builder(fields)
        return lambda page, _, values: build(page, values)


def _page_info_readers(cursor: Callable[[Any], str]) -> dict[str, Write]:
    return {
        "hasNextPage": lambda page, _: page.has_next_page,
        "hasPreviousPage": lambda page, _: page.has_previous_page,
        "startCursor": lambda page, _: cursor(page.items[0]) if page.items else None,
        "endCursor": lambda page, _: cursor(page.items[-1]) if page.items else None,
    }


def _named(gql_type: GraphQLOutputType) -> Any:
    # graphql-core's get_named_type is ~10 us a call here; this loop does the same.
    while isinstance(gql_type, GraphQLNonNull | GraphQLList):
        gql_type = gql_type.of_type
    return gql_type


def _is_list(gql_type: GraphQLOutputType) -> bool:
    return is_list_type(get_nullable_type(gql_type))


def _value(get: Callable[[Any], Any], serialize: Callable[[Any], Any]) -> Write:
    return lambda obj, _: serialize(get(obj))


def _embedded(get: Callable[[Any], Any], build: Build, gql_type: GraphQLOutputType) -> Write:
    if _is_list(gql_type):
        return lambda obj, values: [build(item, values) for item in get(obj)]
    return lambda obj, values: build(get(obj), values)


def _loaded_value(relation: Relation, serialize: Callable[[Any], Any]) -> Write:
    index, key = relation.index, relation.key
    return lambda obj, values: serialize(values[index][key(obj)])


def _loaded_object(relation: Relation, build: Build, is_required: bool) -> Write:
    index, key = relation.index, relation.key

    def write(obj: Any, values: Values) -> Any:
        loaded = values[index][key(obj)]
        if loaded is None:
            if is_required:
                raise Fallback("null")
            return None
        return build(loaded, values)

    return write


def _loaded_list(relation: Relation, build: Build) -> Write:
    index, key = relation.index, relation.key
    return lambda obj, values: [build(item, values) for item in values[index][key(obj)]]


def _paged(
    key: Callable[[Any], Hashable],
    index: int,
    writers: Sequence[tuple[str, Callable[[Any, Hashable, Values], Any]]],
) -> Write:
    pairs = tuple(writers)

    def write(obj: Any, values: Values) -> dict[str, Any]:
        parent = key(obj)
        page = values[index][parent]
        return {name: writer(page, parent, values) for name, writer in pairs}

    return write


def _edges(build: Build) -> Callable[[Any, Hashable, Values], Any]:
    return lambda page, _, values: [build(item, values) for item in page.items]


def _count(index: int) -> Callable[[Any, Hashable, Values], Any]:
    return lambda _, parent, values: values[index][parent]


def _connection_constant(value: str) -> Callable[[Any, Hashable, Values], Any]:
    return lambda _, __, ___: value
