"""What every entity module shares: the Node interface, connections and their pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Annotated, Generic, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from domain import projections as p
from domain.errors import NotFound
from domain.pagination import Keyed, Page, PageRequest, keyset_of
from graph.execution import loads
from graph.execution.context import Context
from graph.execution.declarations import ID_DESCRIPTION, Paged
from graph.execution.specs import LoadFn
from graph.ids import page_request, parse_id, to_cursor

AppInfo = Info[Context, None]

First = Annotated[
    int | None,
    strawberry.argument(
        description="How many to return: 1 to 100, default 20 (null: 20); BAD_USER_INPUT "
        "outside that range."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="Return the ones after this cursor (an `endCursor` or edge `cursor` "
        "this API returned for this kind of list); BAD_USER_INPUT for a malformed cursor or "
        "one from a list of other objects."
    ),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description="Page backwards: the last this many (1 to 100) of the list, or of those "
        "before `before`, still in the list's order. BAD_USER_INPUT outside that range or "
        "together with `first`."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="Return the ones before this cursor (a `startCursor` or edge `cursor` "
        "this API returned for this kind of list), to page backwards with `last`; with "
        "`first`, the page stops short of it. BAD_USER_INPUT for a malformed cursor or one "
        "from a list of other objects."
    ),
]


@dataclass(frozen=True, slots=True)
class Paging:
    """A connection field's first, after, last and before, as given."""

    first: int | None
    after: str | None
    last: int | None = None
    before: str | None = None

    def request(self, kind: str, *, descending: bool = False) -> PageRequest:
        """The page they ask for in a list of `kind` objects; BAD_USER_INPUT naming a bad one."""
        return page_request(
            self.first, self.after, self.last, self.before, kind=kind, descending=descending
        )

    def ordered(self, kind: str, order: Ordered | None, default: Ordered) -> PageRequest:
        """The page they ask for in a list in `order` (`default` when null)."""
        return self.request(kind, descending=(order or default).is_descending)


class Ordered(Protocol):
    """A list's order argument (domain/orders.py, domain/history.py)."""

    @property
    def is_descending(self) -> bool: ...


@strawberry.interface(name="Node", description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


@strawberry.type(description="Where a page sits in its list, and the cursors to page on.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether objects come after this page: pass `endCursor` as `after` for "
        "them. Paging forward, from reading one more than asked (or true when `before` was "
        "given); paging backwards with `last`, true when `before` was given."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether objects come before this page: pass `startCursor` as `before` "
        "(with `last`) for them. Paging backwards, from reading one more than asked (or true "
        "when `after` was given); paging forward, true when `after` was given."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first edge, to pass as `before`; null for an "
        "empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last edge, to pass as `after`; null for an "
        "empty page."
    )


N = TypeVar("N")


@strawberry.type(description="One object of a page, with its cursor.")
class Edge(Generic[N]):
    cursor: str = strawberry.field(
        description="An opaque position in the list, to pass as `after` to continue after it "
        "or as `before` to page back from it."
    )
    node: N = strawberry.field(description="The object.")


@strawberry.type(description="One page of a list, in the list's order (Relay cursor paging).")
class Connection(Generic[N]):
    edges: list[Edge[N]] = strawberry.field(description="The page's objects, in order.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many the whole list holds (not this page), with the same arguments; "
        "counted only when selected, so leave it out when paging a long list."
    )
    async def total_count(self) -> int:
        return await self.count()


E = TypeVar("E", bound=Keyed)
Named = TypeVar("Named", bound=type[Enum])


def described_enum(cls: Named, *, name: str, description: str, values: Mapping[str, str]) -> Named:
    """A domain enum (the domain imports no Strawberry) in the schema, with a description for
    each value: `values` maps every member's name to its description."""
    strawberry.enum(cls, name=name, description=description)
    for value in cls.__strawberry_definition__.values:  # type: ignore[attr-defined]  # set by strawberry.enum just above
        value.description = values[value.name]
    return cls


def connection(
    page: Page[E], to_node: Callable[[E], N], count: Callable[[], Awaitable[int]], kind: str
) -> Connection[N]:
    """A page as a connection of `kind` objects (a type name: its cursors name it)."""
    edges = [
        Edge(cursor=to_cursor(keyset_of(item), kind), node=to_node(item)) for item in page.items
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


async def paged_connection(
    info: AppInfo,
    paged: Paged,
    key: tuple[Hashable, Hashable],
    to_node: Callable[[E], N],
    kind: str,
) -> Connection[N]:
    """The connection a `Paged` declaration stands for, on the reference path: its page and
    (when asked for) its count, through the request's per-level DataLoaders."""
    loaders = info.context.loaders
    page: Page[E] = await loaders.paged(paged.pages).load(key)
    return connection(page, to_node, lambda: loaders.paged(paged.counts).load(key), kind)


def of_the_viewer(paged: Paged, noun: str) -> Paged:
    """The root list of the viewer's own (`assets`, `submissions`), by the per-owner one
    (User's): the same loads, for the caller, named for plans and their tests."""
    return replace(
        paged,
        pages=loads.for_the_viewer(paged.pages, f"viewer_{noun}_page"),
        counts=loads.for_the_viewer(paged.counts, f"viewer_{noun}_count"),
        value=p.Viewer(),
    )


async def by_id(
    info: AppInfo, global_id: str, type_name: str, load: LoadFn, to_node: Callable[[object], N]
) -> N:
    """A root field's object by global id, through its type's level load; NOT_FOUND when the
    caller cannot see it (an id of another type names nothing here either)."""
    ident = parse_id(global_id, type_name)
    found = await info.context.loaders.level(load).load(ident) if ident else None
    if found is None:
        raise NotFound(type_name, global_id)
    return to_node(found)


# Batches are read on the reference path only (graph/schema/batches.py), wherever they appear.
BATCHES = "batches: status, counts and estimate are derived, not yet declared"
