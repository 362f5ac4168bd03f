"""What each field of an object type is, declared once on the Strawberry field itself.

A declaration says where a field's value comes from; the reference resolvers (derived here
where they are mechanical), the batched catalog (graph/execution/catalog.py) and the
one-statement plan (graph/execution/projection.py) all read it from the schema. The one
convention: a field with no resolver and no declaration whose GraphQL type is a leaf
(scalar, enum, or a list of them) is a Column named as the Python attribute (`email: str`).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Self, TypeVar, get_args

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
)
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.private import is_private

from domain import projections as p
from domain.access import ReadRule
from domain.errors import NotFound
from graph.execution.specs import Arguments, LoadFn
from graph.ids import to_global_id

T = TypeVar("T")

KEY = "assay"  # the key of a declaration in a Strawberry field's metadata
ID_DESCRIPTION = "Opaque global id, unique across every type; `node(id:)` resolves it."
_BACKREF = "strawberry-definition"  # where Strawberry keeps its definitions in graphql-core's


@dataclass(frozen=True, slots=True)
class Column:
    """A stored attribute of the entity; `attribute` when it is not the field's Python name."""

    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class Identifier:
    """The object's global id, from the entity's `id`."""


@dataclass(frozen=True, slots=True)
class ToOne:
    """One object found by an attribute of the parent (`owner_id`), or None.

    `key` is the parent's attribute, matched against the target's `target_key` (its id,
    unless declared); a target found by another key is the first in `order`. `load` is the
    level load (graph/execution/loads.py) both the batched plan and the reference DataLoader
    call, keyed by the parent's `key`."""

    key: str
    load: LoadFn
    target_key: str = "id"
    order: tuple[p.Sort, ...] = p.BY_CREATION

    def join(self, entity: str) -> p.Join:
        return p.Join(entity, self.target_key, p.Parent(self.key), order=self.order)


@dataclass(frozen=True, slots=True)
class ToMany:
    """A list of objects per parent, found by the parent's id: the targets whose `key`
    holds it, or those a link entity names (`through`), in `order`."""

    load: LoadFn
    key: str = ""
    through: p.Through | None = None
    order: tuple[p.Sort, ...] = p.BY_CREATION

    def __post_init__(self) -> None:
        if bool(self.key) == (self.through is not None):
            raise TypeError("a to-many relation names either its key or its link entity")

    def join(self, entity: str) -> p.Join:
        if self.through is not None:  # the link names the target's id
            return p.Join(entity, "id", p.Parent("id"), through=self.through)
        return p.Join(entity, self.key, p.Parent("id"), order=self.order)


@dataclass(frozen=True, slots=True)
class Stored:
    """Plain objects stored in an attribute (JSON), each of their fields a key of them."""

    attribute: str


BY_PARENT_ID = p.Parent("id")


@dataclass(frozen=True, slots=True)
class Paged:
    """A connection: the targets whose `key` holds the parent's id (or, on the Query root,
    `value`: the viewer's id, or None for every row) and that match each of `where`.

    `pages` and `counts` are level loads keyed by the parent's id (the Query root's one key
    on the root); `arguments` binds the field's arguments for them, `window` for the store's
    one-statement projection. `rule` is the field's own access rule beyond its items'."""

    pages: LoadFn
    counts: LoadFn
    arguments: Callable[[Arguments], Any]
    window: Callable[[Arguments], p.PageArguments]
    key: str = "owner_id"
    value: p.Parent | p.Viewer | None = BY_PARENT_ID
    where: tuple[p.Match, ...] = ()
    rule: ReadRule | None = None

    def join(self, entity: str) -> p.Join:
        return p.Join(entity, self.key, self.value, self.where)


@dataclass(frozen=True, slots=True)
class Source:
    """A root field read through a root load: by its `id` argument when `id_of` names the
    id's type (then `load` is that type's level load by id), else the rows whose `key`
    holds `value` (the viewer's id, or every row for None); all of them matching `where`,
    in `order` when the field is a list."""

    load: LoadFn
    id_of: str | None = None
    key: str = "id"
    value: p.Viewer | None = None
    where: tuple[p.Match, ...] = ()
    order: tuple[p.Sort, ...] = p.BY_CREATION

    def join(self, entity: str) -> p.Join:
        value = p.Argument() if self.id_of is not None else self.value
        return p.Join(entity, self.key, value, self.where, self.order)


@dataclass(frozen=True, slots=True)
class Computed:
    """A value computed in Python per parent by a level load (keyed by the entity itself):
    the batched plan serves it, the one-statement plan cannot (`reason`)."""

    load: LoadFn
    reason: str


@dataclass(frozen=True, slots=True)
class ReferenceOnly:
    """Answered by the reference executor alone, for `reason`."""

    reason: str


Declaration = (
    Column | Identifier | ToOne | ToMany | Stored | Paged | Source | Computed | ReferenceOnly
)


# ------------------------------------------------------------------ on a field


def declared(declaration: Declaration, *, description: str | None = None) -> StrawberryField:
    """A Strawberry field carrying `declaration`, for a hand-written resolver:
    `@declared(Source(...), description=...)` above the method."""
    field: StrawberryField = strawberry.field(description=description, metadata={KEY: declaration})
    return field


def identifier() -> Any:
    """`id: strawberry.ID = identifier()`: the global id, set by `from_entity`."""
    return strawberry.field(description=ID_DESCRIPTION, metadata={KEY: Identifier()})


def to_one(key: str, *, load: LoadFn, description: str | None = None) -> Any:
    """A to-one relation by the parent's `key` (the target's id), with its reference
    resolver: the per-request DataLoader of `load`."""
    declaration = ToOne(key, load)

    async def resolve(self: Any, info: strawberry.Info) -> Any:
        ident = getattr(self.entity, key)
        target, is_optional = _target(field)
        found = None if ident is None else await info.context.loaders.level(load).load(ident)
        if found is not None:
            return from_entity(target, found)
        if is_optional:
            return None
        raise NotFound(_type_name(target), ident)

    field = declared(declaration, description=description)(resolve)
    return field


def to_many(
    load: LoadFn,
    *,
    key: str = "",
    through: p.Through | None = None,
    description: str | None = None,
) -> Any:
    """A list of objects per parent (the targets whose `key` holds its id, or those a link
    entity names), through the per-request DataLoader of `load`."""
    declaration = ToMany(load, key, through)

    async def resolve(self: Any, info: strawberry.Info) -> list[Any]:
        target, _ = _target(field)
        found = await info.context.loaders.level(load).load(self.entity.id)
        return [from_entity(target, item) for item in found]

    field = declared(declaration, description=description)(resolve)
    return field


def stored(attribute: str, *, description: str | None = None) -> Any:
    """Plain objects kept in the entity's `attribute`, each shown as the field's item type."""

    def resolve(self: Any) -> list[Any]:
        target, _ = _target(field)
        return [from_entity(target, item) for item in getattr(self.entity, attribute)]

    field = declared(Stored(attribute), description=description)(resolve)
    return field


def reference_only(reason: str) -> Callable[[type[T]], type[T]]:
    """Marks a type only the reference executor serves: `@reference_only("why")` above
    `@strawberry.type`."""

    def mark(cls: type[T]) -> type[T]:
        _REFERENCE_ONLY_TYPES[cls] = reason
        return cls

    return mark


_REFERENCE_ONLY_TYPES: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _type_name(cls: type) -> str:
    assert has_object_definition(cls), cls
    return cls.__strawberry_definition__.name


@cache  # per field, on its first resolve: the field's type is final once the schema is built
def _target(field: StrawberryField) -> tuple[type, bool]:
    """The object type a relation's values are shown as, and whether it may be null."""
    field_type: Any = field.type
    is_optional = isinstance(field_type, StrawberryOptional)
    while isinstance(field_type, StrawberryOptional | StrawberryList):
        field_type = field_type.of_type
    if isinstance(field_type, LazyType):  # a type from a module that imports this one's
        field_type = field_type.resolve_type()
    return field_type, is_optional


# ---------------------------------------------------------------- from entities


class Entity:
    """A Strawberry type shown from a domain entity: `UserType.from_entity(user)`."""

    @classmethod
    def from_entity(cls, entity: Any) -> Self:
        return from_entity(cls, entity)


def from_entity(cls: type[T], entity: Any) -> T:
    """An object of Strawberry type `cls` from a domain entity, as its declarations say."""
    readers, keeps_entity = _readers(cls)  # type: ignore[arg-type] # a class is hashable
    values = {name: read(entity) for name, read in readers}
    if keeps_entity:
        values["entity"] = entity
    return cls(**values)


@cache  # per Strawberry type: a handful
def _readers(cls: type) -> tuple[tuple[tuple[str, Callable[[Any], Any]], ...], bool]:
    """How to read each field set at construction, and whether the type keeps its entity."""
    assert has_object_definition(cls), cls
    definition = cls.__strawberry_definition__
    readers: list[tuple[str, Callable[[Any], Any]]] = []
    keeps_entity = False
    for field in definition.fields:
        keeps_entity = keeps_entity or field.python_name == "entity"
        if field.base_resolver is not None or is_private(field.type):
            continue
        declaration = field.metadata.get(KEY, Column())
        if isinstance(declaration, Identifier):
            readers.append((field.python_name, _global_id(definition.name)))
        elif isinstance(declaration, Column):
            readers.append(
                (field.python_name, _attribute(declaration.attribute or field.python_name))
            )
        else:
            raise TypeError(
                f"{definition.name}.{field.python_name}: {declaration} needs a resolver"
            )
    return tuple(readers), keeps_entity


def _global_id(type_name: str) -> Callable[[Any], str]:
    return lambda entity: strawberry.ID(to_global_id(type_name, entity.id))


def _attribute(name: str) -> Callable[[Any], Any]:
    return lambda entity: getattr(entity, name)


# ------------------------------------------------------------------ in a schema


@dataclass(frozen=True, slots=True)
class Declarations:
    """Every object type's field declarations, read from a schema once, and the name of the
    domain entity each type shows (its `entity` attribute's class), where it has one."""

    fields: Mapping[str, Mapping[str, Declaration]]
    reference_only_types: Mapping[str, str]
    entities: Mapping[str, str]


_BY_SCHEMA: weakref.WeakKeyDictionary[GraphQLSchema, Declarations] = weakref.WeakKeyDictionary()


def declarations_of(schema: GraphQLSchema) -> Declarations:
    """The schema's declarations; read on first use (build_schema asks at once). Raises
    TypeError for a column the type's domain entity does not have."""
    found = _BY_SCHEMA.get(schema)
    if found is None:
        found = _BY_SCHEMA[schema] = _read(schema)
    return found


def _read(schema: GraphQLSchema) -> Declarations:
    fields: dict[str, dict[str, Declaration]] = {}
    reference_only_types: dict[str, str] = {}
    entities: dict[str, str] = {}
    for gql_type in schema.type_map.values():
        if not isinstance(gql_type, GraphQLObjectType) or gql_type.name.startswith("__"):
            continue
        definition = gql_type.extensions.get(_BACKREF)
        origin = getattr(definition, "origin", None)
        if isinstance(origin, type) and origin in _REFERENCE_ONLY_TYPES:
            reference_only_types[gql_type.name] = _REFERENCE_ONLY_TYPES[origin]
            continue
        declared_here = {}
        for name, gql_field in gql_type.fields.items():
            declaration = declaration_of(gql_field)
            if declaration is not None:
                declared_here[name] = declaration
        fields[gql_type.name] = declared_here
        entity = entity_of(origin) if isinstance(origin, type) else None
        if entity is not None:
            _check_columns(gql_type.name, entity, declared_here)
            entities[gql_type.name] = entity.__name__
    return Declarations(fields, reference_only_types, entities)


def entity_of(cls: type) -> type | None:
    """The domain entity a Strawberry type shows: the class of its private `entity` field."""
    if not has_object_definition(cls):
        return None
    for field in cls.__strawberry_definition__.fields:
        if field.python_name == "entity" and is_private(field.type):
            shown = get_args(field.type)[0]
            return shown if isinstance(shown, type) else None
    return None


def _check_columns(type_name: str, entity: type, declared: Mapping[str, Declaration]) -> None:
    """Every column of a type is an attribute of its entity: `from_entity` reads each one,
    and the store reads the column of that name."""
    known = (
        {f.name for f in dataclasses.fields(entity)} if dataclasses.is_dataclass(entity) else set()
    )
    for name, declaration in declared.items():
        if not isinstance(declaration, Column):
            continue
        attribute = declaration.attribute or name
        if attribute not in known and not hasattr(entity, attribute):
            raise TypeError(f"{type_name}.{name}: {entity.__name__} has no attribute {attribute!r}")


def declaration_of(gql_field: GraphQLField) -> Declaration | None:
    """The field's declaration, or a Column by the convention above, or None."""
    field = gql_field.extensions.get(_BACKREF)
    if not isinstance(field, StrawberryField):
        return None
    declaration: Declaration | None = field.metadata.get(KEY)
    if declaration is None and field.base_resolver is None and _is_leaf(gql_field.type):
        return Column(field.python_name)
    if isinstance(declaration, Column) and declaration.attribute is None:
        return Column(field.python_name)
    return declaration


def _is_leaf(gql_type: GraphQLOutputType) -> bool:
    while isinstance(gql_type, GraphQLNonNull | GraphQLList):
        gql_type = gql_type.of_type
    return isinstance(gql_type, GraphQLScalarType | GraphQLEnumType)
