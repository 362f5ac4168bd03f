"""The fields the batched compiler serves, by GraphQL type: built from the schema's declarations.

Each field's declaration (graph/execution/declarations.py) says where its value comes from;
this module turns it into what the batched plan needs (specs.py). A field without one the
batched plan can serve sends its documents to the reference executor;
tests/unit/test_projection_plans.py fails when such a field is not marked ReferenceOnly.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from graphql import GraphQLSchema

from graph.execution import loads, specs
from graph.execution.declarations import (
    Column,
    Computed,
    Declaration,
    Identifier,
    Paged,
    Source,
    Stored,
    ToMany,
    ToOne,
    declarations_of,
)
from graph.execution.specs import ROOT, Embedded, FieldSpec, Related, Value
from graph.ids import to_global_id

Catalog = Mapping[str, Mapping[str, FieldSpec]]

_CATALOGS: weakref.WeakKeyDictionary[GraphQLSchema, Catalog] = weakref.WeakKeyDictionary()


def catalog_of(schema: GraphQLSchema) -> Catalog:
    """The schema's catalog, built once (on first use; build_schema asks at once)."""
    catalog = _CATALOGS.get(schema)
    if catalog is None:
        catalog = _CATALOGS[schema] = _build(schema)
    return catalog


def _build(schema: GraphQLSchema) -> Catalog:
    root = schema.query_type.name if schema.query_type else None
    catalog: dict[str, dict[str, FieldSpec]] = {}
    for type_name, fields in declarations_of(schema).fields.items():
        key = _root if type_name == root else _id
        served = {name: spec_of(type_name, d, key) for name, d in fields.items()}
        catalog[type_name] = {name: spec for name, spec in served.items() if spec is not None}
    return catalog


def spec_of(
    type_name: str, declaration: Declaration, key: Callable[[Any], Any] | None = None
) -> FieldSpec | None:
    """What the batched plan needs for a field so declared, or None when it cannot serve it.

    `key` finds the parent's key for its connections: the Query root's one key, or an id."""
    if isinstance(declaration, Column):
        attribute = declaration.attribute
        assert attribute is not None  # declarations_of names every column's attribute
        return Value(attrgetter(attribute), attribute)
    if isinstance(declaration, Identifier):
        return Value(_global_id(type_name))
    if isinstance(declaration, ToOne):
        return Related(declaration.load, attrgetter(declaration.key))
    if isinstance(declaration, ToMany):
        return Related(declaration.load, _id)
    if isinstance(declaration, Stored):
        return Embedded(attrgetter(declaration.attribute))
    if isinstance(declaration, Paged):
        pages, counts = declaration.pages, declaration.counts
        return specs.Paged(pages, counts, key or _id, declaration.arguments)
    if isinstance(declaration, Source):
        return _source(declaration)
    if isinstance(declaration, Computed):
        return Related(declaration.load, _itself)
    return None  # ReferenceOnly


def _source(declaration: Source) -> Related:
    if declaration.id_of is None:
        return Related(declaration.load, _root)
    return Related(loads.by_argument_id(declaration.load), _root, loads.id_of(declaration.id_of))


def _global_id(type_name: str) -> Callable[[Any], str]:
    def get(entity: Any) -> str:
        return to_global_id(type_name, entity.id)

    return get


def _root(_: Any) -> str:
    return ROOT


def _itself(entity: Any) -> Any:
    return entity


_id = attrgetter("id")
