"""What every entity module shares: the Node interface, connections and their pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from domain.errors import NotFound
from domain.pagination import Keyed, Page, keyset_of
from graph.execution.context import Context
from graph.execution.specs import LoadFn
from graph.ids import parse_id, to_cursor

AppInfo = Info[Context, None]


@strawberry.interface(name="Node", description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


N = TypeVar("N")


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Counted only when selected.")
    async def total_count(self) -> int:
        return await self.count()


E = TypeVar("E", bound=Keyed)


def connection(
    page: Page[E], to_node: Callable[[E], N], count: Callable[[], Awaitable[int]]
) -> Connection[N]:
    edges = [Edge(cursor=to_cursor(keyset_of(item)), node=to_node(item)) for item in page.items]
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
