"""Statements shaped for DataLoaders: one round trip for many keys, results in key order."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pagination import Keyed, Page, PageRequest
from persistence.driver import fetch, reusable

T = TypeVar("T")
K = TypeVar("K", bound=Keyed)
S = TypeVar("S")
P = ParamSpec("P")
Row = sa.Row[*tuple[Any, ...]]
Select = sa.Select[*tuple[Any, ...]]
Parameters = Mapping[str, object]

NO_PARAMETERS: Parameters = {}


def built_once(build: Callable[P, S]) -> Callable[P, S]:
    """Memoize a statement builder per argument tuple, i.e. per variant of the statement.

    SQLAlchemy memoizes a statement's cache key on the statement object: one built once and
    executed with bound parameters skips construction, coercion and cache-key generation,
    which a statement built anew pays on every call."""

    def once(*args: P.args, **kwargs: P.kwargs) -> S:
        statement = build(*args, **kwargs)
        return reusable(statement) if isinstance(statement, sa.Select) else statement

    # cast: functools.cache types its wrapper as taking any hashable arguments.
    return cast("Callable[P, S]", functools.cache(once))


def _bound_keys() -> sa.BindParameter[Any]:
    return sa.bindparam("keys", type_=ARRAY(sa.Uuid))


def any_key(column: sa.ColumnElement[UUID]) -> sa.ColumnElement[bool]:
    """`column = ANY($1)`, the array bound as `keys` when the statement is executed."""
    return column == sa.any_(_bound_keys())


def any_of(column: sa.ColumnElement[UUID], values: Sequence[UUID]) -> sa.ColumnElement[bool]:
    """`column = ANY($1)`: one bound array, so the statement text is the same for any count."""
    return column == sa.any_(sa.literal(list(values), ARRAY(sa.Uuid)))


def keyset_bounds(
    table: sa.Table, request: PageRequest, moment: str = "created_at"
) -> list[sa.ColumnElement[bool]]:
    """The request's scan bounds: beyond `after`, short of `until`, in its direction, on the
    position (`moment`, id)."""
    position = sa.tuple_(table.c[moment], table.c.id)
    bounds = []
    for keyset, is_start in ((request.after, True), (request.until, False)):
        if keyset is None:
            continue
        cursor = sa.tuple_(
            sa.literal(keyset.created_at, sa.DateTime(timezone=True)),
            sa.literal(keyset.id, sa.Uuid),
        )
        bounds.append(position > cursor if is_start != request.descending else position < cursor)
    return bounds


def scan_order(
    table: sa.Table, request: PageRequest, moment: str = "created_at"
) -> list[sa.ColumnElement[Any]]:
    order = [table.c[moment], table.c.id]
    return [c.desc() for c in order] if request.descending else list(order)


def _bound_keyset(table: sa.Table, descending: bool, name: str = "after") -> sa.ColumnElement[bool]:
    """A keyset bound as `<name>_created_at` and `<name>_id`: rows beyond it in the scan's
    direction ("after"; newest first, that is before it in time), or short of it ("until")."""
    position = sa.tuple_(table.c.created_at, table.c.id)
    cursor = sa.tuple_(
        sa.bindparam(f"{name}_created_at", type_=sa.DateTime(timezone=True)),
        sa.bindparam(f"{name}_id", type_=sa.Uuid),
    )
    return position < cursor if descending == (name == "after") else position > cursor


def _in_key_order(
    rows: Iterable[Any],
    columns: Sequence[str],
    ids: Sequence[UUID],
    key: str,
    to_entity: Callable[[Row], T],
) -> list[T | None]:
    # The key's position is looked up once, so each row is read by position.
    at = list(columns).index(key)
    by_id = {row[at]: to_entity(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def _keyed_rows(
    conn: AsyncConnection,
    statement: Select,
    parameters: Parameters,
    ids: Sequence[UUID],
    to_entity: Callable[[Row], T],
    key: str,
) -> list[T | None]:
    if not ids:
        return []
    rows, columns = await fetch(conn, statement, parameters)
    return _in_key_order(rows, columns, ids, key, to_entity)


async def rows_in_key_order(
    conn: AsyncConnection,
    statement: Select,
    ids: Sequence[UUID],
    to_entity: Callable[[Row], T],
    key: str = "id",
) -> list[T | None]:
    """For a statement built per call, its ids already in it (see any_of)."""
    return await _keyed_rows(conn, statement, NO_PARAMETERS, ids, to_entity, key)


async def rows_for_keys(
    conn: AsyncConnection,
    statement: Select,
    ids: Sequence[UUID],
    to_entity: Callable[[Row], T],
    key: str = "id",
) -> list[T | None]:
    """For a statement built once with any_key: `ids` are bound as `keys` here."""
    return await _keyed_rows(conn, statement, {"keys": list(ids)}, ids, to_entity, key)


async def grouped_in_key_order(
    conn: AsyncConnection,
    statement: Select,
    keys: Sequence[UUID],
    key: str,
    to_entity: Callable[[Row], T],
    parameters: Parameters = NO_PARAMETERS,
) -> list[list[T]]:
    """For a statement built once with any_key: `keys` are bound here, with `parameters`."""
    if not keys:
        return []
    rows, columns = await fetch(conn, statement, {"keys": list(keys), **parameters})
    at = list(columns).index(key)
    groups: dict[UUID, list[T]] = defaultdict(list)
    for row in rows:
        groups[row[at]].append(to_entity(row))
    return [groups.get(k, []) for k in keys]


def pages_statement(
    rows: Select,
    parent: sa.Column[UUID],
    *,
    keyset: bool,
    descending: bool = False,
    until: bool = False,
) -> Select:
    """A keyset page of `rows` for each parent in one statement: unnest the parent ids, then a
    LATERAL ... LIMIT each, so every parent's page uses the (parent, created_at, id) index
    (read backwards when `descending`).

    Bound when executed (pages_for_keys does it): `keys`, `limit`, with `keyset`
    `after_created_at` and `after_id`, with `until` `until_created_at` and `until_id`."""
    table = parent.table
    assert isinstance(table, sa.Table)
    parents = sa.func.unnest(_bound_keys()).table_valued("parent_id").render_derived(name="parents")
    after = [_bound_keyset(table, descending)] if keyset else []
    after += [_bound_keyset(table, descending, "until")] if until else []
    order = (table.c.created_at, table.c.id)
    per_parent = (
        rows.where(parent == parents.c.parent_id, *after)
        .order_by(*(c.desc() for c in order) if descending else order)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .lateral()
    )
    return sa.select(per_parent).select_from(parents).join(per_parent, sa.true())


async def pages_for_keys(
    conn: AsyncConnection,
    statement: Select,
    parent_ids: Sequence[UUID],
    parent_key: str,
    request: PageRequest,
    to_entity: Callable[[Row], K],
    parameters: Parameters = NO_PARAMETERS,
) -> list[Page[K]]:
    """Execute a pages_statement built with `keyset=request.after is not None`,
    `until=request.until is not None` and `descending=request.descending`."""
    bound: dict[str, object] = {"limit": request.first + 1, **parameters}
    if request.after is not None:
        bound["after_created_at"] = request.after.created_at
        bound["after_id"] = request.after.id
    if request.until is not None:
        bound["until_created_at"] = request.until.created_at
        bound["until_id"] = request.until.id
    grouped = await grouped_in_key_order(conn, statement, parent_ids, parent_key, to_entity, bound)
    return [Page.from_overfetch(found, request) for found in grouped]


async def page_per_parent(
    conn: AsyncConnection,
    rows: Select,
    parent: sa.Column[UUID],
    parent_ids: Sequence[UUID],
    request: PageRequest,
    to_entity: Callable[[Row], K],
) -> list[Page[K]]:
    """pages_for_keys for `rows` built per call."""
    statement = pages_statement(
        rows,
        parent,
        keyset=request.after is not None,
        descending=request.descending,
        until=request.until is not None,
    )
    return await pages_for_keys(conn, statement, parent_ids, parent.name, request, to_entity)


def counts_statement(
    parent: sa.Column[UUID], where: Iterable[sa.ColumnElement[bool]] = ()
) -> Select:
    """The number of rows per parent in `keys`, bound when executed (counts_for_keys)."""
    return sa.select(parent, sa.func.count()).where(any_key(parent), *where).group_by(parent)


async def counts_for_keys(
    conn: AsyncConnection,
    statement: Select,
    parent_ids: Sequence[UUID],
    parameters: Parameters = NO_PARAMETERS,
) -> list[int]:
    rows, _ = await fetch(conn, statement, {"keys": list(parent_ids), **parameters})
    counts: dict[UUID, int] = {row[0]: row[1] for row in rows}
    return [counts.get(i, 0) for i in parent_ids]


_counts_of = built_once(counts_statement)


async def count_per_parent(
    conn: AsyncConnection, parent: sa.Column[UUID], parent_ids: Sequence[UUID]
) -> list[int]:
    return await counts_for_keys(conn, _counts_of(parent), parent_ids)
