"""Projections: a read described as data, for a store to answer as JSON in one statement.

A projection names entities, their attributes and their relations (as the domain calls them)
and the response keys to write them under; the store renders it, with the access rules of
domain/access.py, into what its query language does best (persistence renders one SQL
statement). Values that depend on the request (ids, page requests, filters) are not in the
tree: a node names an argument slot, filled per request, so one tree serves every request of
a compiled document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable
from uuid import UUID

from domain.access import ReadRule
from domain.pagination import PageRequest
from domain.principal import Principal


class Kind(Enum):
    """How an attribute's value is written."""

    TEXT = "text"
    INT = "int"  # a 32-bit integer: a larger value is an anomaly
    FLOAT = "float"  # always with a fraction or an exponent, as Python writes a float
    BOOLEAN = "boolean"
    JSON = "json"  # any JSON value, as stored
    MOMENT = "moment"  # RFC 3339 text, as datetime.isoformat() writes an aware UTC time
    TEXT_LIST = "text_list"


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    kind: Kind
    is_required: bool
    choices: tuple[str, ...] | None = None  # an enumeration: any other value is an anomaly


@dataclass(frozen=True, slots=True)
class GlobalId:
    """The entity's opaque id (domain/ids.py)."""

    type_name: str


@dataclass(frozen=True, slots=True)
class Cursor:
    """The keyset cursor of the entity, as graph/ids.py writes it."""


@dataclass(frozen=True, slots=True)
class Constant:
    value: str


@dataclass(frozen=True, slots=True)
class Shape:
    """An object of `entity`: its fields under their response keys, in order."""

    entity: str
    fields: tuple[tuple[str, Field], ...]


@dataclass(frozen=True, slots=True)
class Parent:
    """The parent object's attribute (`owner_id`)."""

    attribute: str


@dataclass(frozen=True, slots=True)
class Argument:
    """The root field's argument (an id), bound per request in the root's slot."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller's user id."""


@dataclass(frozen=True, slots=True)
class Match:
    """Rows whose `attribute` holds `value` (None: no value), or, `negated`, does not."""

    attribute: str
    value: str | bool | None
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    attribute: str
    descending: bool = False


BY_CREATION = (Sort("created_at"), Sort("id"))
NEWEST_FIRST = (Sort("created_at", descending=True), Sort("id", descending=True))


@dataclass(frozen=True, slots=True)
class Through:
    """Rows reached through a link entity: the links whose `key` holds the join's value,
    each naming its row's id in `target`, in the order of `position`."""

    entity: str
    key: str
    target: str
    position: str


@dataclass(frozen=True, slots=True)
class Join:
    """Which rows of `entity` a relation or a root field reads: those whose `key` holds
    `value` (every row when it is None) and that match each of `where`, in `order`.

    A field declares it once (graph/execution/declarations.py); the store renders it. A to-one
    join on another key than `id` reads the first row in `order`."""

    entity: str
    key: str = "id"
    value: Parent | Argument | Viewer | None = None
    where: tuple[Match, ...] = ()
    order: tuple[Sort, ...] = BY_CREATION
    through: Through | None = None

    @property
    def is_unique(self) -> bool:
        return self.key == "id" and self.through is None and self.value is not None


@dataclass(frozen=True, slots=True)
class One:
    """A to-one relation; a missing or invisible target is null, or an anomaly if required."""

    join: Join
    shape: Shape
    is_required: bool


@dataclass(frozen=True, slots=True)
class Many:
    """A to-many relation, in the join's order, the invisible items left out."""

    join: Join
    shape: Shape


@dataclass(frozen=True, slots=True)
class Nested:
    """A list of plain JSON objects stored in an attribute (a result's alternatives, a
    submission's metadata)."""

    attribute: str
    fields: tuple[tuple[str, NestedValue | Constant], ...]


@dataclass(frozen=True, slots=True)
class NestedValue:
    key: str  # the key inside each stored object
    kind: Kind


PageInfoPart = str  # hasNextPage, hasPreviousPage, startCursor, endCursor


@dataclass(frozen=True, slots=True)
class Window:
    """A connection: one keyset page of a join (a relation or a root list), its page info and
    count.

    `edges` are (key, Cursor | Constant | Shape) per edge; `page_info` (key, part name or
    Constant); `parts` the connection's own keys in order, each "edges", "pageInfo",
    "totalCount" or a Constant."""

    join: Join
    slot: int
    parts: tuple[tuple[str, str | Constant], ...]
    edges: tuple[tuple[str, Cursor | Constant | Shape], ...] = ()
    page_info: tuple[tuple[str, PageInfoPart | Constant], ...] = ()


Field = Attribute | GlobalId | Cursor | Constant | One | Many | Nested | Window


@dataclass(frozen=True, slots=True)
class Root:
    """A root field: one object (NotFound when missing), a list or a connection, each of
    rows its join names. `slot` holds the argument a join's Argument reads, if any; `rule`
    is the field's own access rule beyond its items' (users.list_users: administrators)."""

    value: One | Many | Window
    slot: int | None = None
    rule: ReadRule | None = None


@dataclass(frozen=True, slots=True)
class Projection:
    """Every root field of an operation, under their response keys: one statement."""

    roots: tuple[tuple[str, Root | Constant], ...]


@dataclass(frozen=True, slots=True)
class PageArguments:
    """A window's slot value: the page, and filters by attribute (None: not filtered)."""

    request: PageRequest
    filters: tuple[tuple[str, object], ...] = ()


SlotValue = UUID | PageArguments


class Anomaly(Exception):
    """The store met a value the projection cannot write as declared (a null in a required
    field, an integer out of range, an unknown enumeration value, a non-finite float): the
    caller answers some other way."""


class ProjectionReader(Protocol):
    async def read(
        self, principal: Principal, projection: Projection, slots: Sequence[SlotValue]
    ) -> str:
        """The JSON text of the projection's object. Raises Anomaly, NotFound for a root
        field that finds nothing it may see, or Forbidden for a source the principal may
        not read at all."""
        ...


@runtime_checkable
class Projecting(Protocol):
    """A unit of work whose store answers projections (checked once it is entered)."""

    @property
    def projections(self) -> ProjectionReader: ...
