"""Statements shaped for DataLoaders: one round trip for many keys, results in key order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pagination import Keyed, Page, PageRequest

T = TypeVar("T")
K = TypeVar("K", bound=Keyed)
Row = sa.Row[Any]


def any_of(column: sa.ColumnElement[UUID], values: Sequence[UUID]) -> sa.ColumnElement[bool]:
    """`column = ANY($1)`: one bound array, so the statement text is the same for any count."""
    return column == sa.any_(sa.literal(list(values), ARRAY(sa.Uuid)))


def after_keyset(table: sa.Table, request: PageRequest) -> list[sa.ColumnElement[bool]]:
    if request.after is None:
        return []
    return [
        sa.tuple_(table.c.created_at, table.c.id)
        > sa.tuple_(
            sa.literal(request.after.created_at, sa.DateTime(timezone=True)),
            sa.literal(request.after.id, sa.Uuid),
        )
    ]


async def rows_in_key_order(
    conn: AsyncConnection,
    statement: sa.Select[Any],
    ids: Sequence[UUID],
    to_entity: Callable[[Row], T],
    key: str = "id",
) -> list[T | None]:
    if not ids:
        return []
    by_id = {row._mapping[key]: to_entity(row) for row in await conn.execute(statement)}
    return [by_id.get(i) for i in ids]


async def grouped_in_key_order(
    conn: AsyncConnection,
    statement: sa.Select[Any],
    keys: Sequence[UUID],
    key: str,
    to_entity: Callable[[Row], T],
) -> list[list[T]]:
    if not keys:
        return []
    groups: dict[UUID, list[T]] = defaultdict(list)
    for row in await conn.execute(statement):
        groups[row._mapping[key]].append(to_entity(row))
    return [groups.get(k, []) for k in keys]


async def page_per_parent(
    conn: AsyncConnection,
    rows: sa.Select[Any],
    parent: sa.Column[UUID],
    parent_ids: Sequence[UUID],
    request: PageRequest,
    to_entity: Callable[[Row], K],
) -> list[Page[K]]:
    """A keyset page of `rows` for each parent in one statement: unnest the parent ids, then a
    LATERAL ... LIMIT each, so every parent's page uses the (parent, created_at, id) index."""
    table = parent.table
    assert isinstance(table, sa.Table)
    parents = (
        sa.func.unnest(sa.literal(list(parent_ids), ARRAY(sa.Uuid)))
        .table_valued("parent_id")
        .render_derived(name="parents")
    )
    per_parent = (
        rows.where(parent == parents.c.parent_id, *after_keyset(table, request))
        .order_by(table.c.created_at, table.c.id)
        .limit(request.first + 1)
        .lateral()
    )
    statement = sa.select(per_parent).select_from(parents).join(per_parent, sa.true())
    grouped = await grouped_in_key_order(conn, statement, parent_ids, parent.name, to_entity)
    return [Page.from_overfetch(found, request) for found in grouped]


async def count_per_parent(
    conn: AsyncConnection,
    parent: sa.Column[UUID],
    parent_ids: Sequence[UUID],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> list[int]:
    statement = (
        sa.select(parent, sa.func.count())
        .where(any_of(parent, parent_ids), *where)
        .group_by(parent)
    )
    counts: dict[UUID, int] = {row[0]: row[1] for row in await conn.execute(statement)}
    return [counts.get(i, 0) for i in parent_ids]
