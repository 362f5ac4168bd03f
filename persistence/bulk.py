"""Bulk inserts: many rows in one INSERT ... SELECT FROM json_to_recordset(rows), executed once.

asyncpg's executemany runs the statement once per row on the server, so a chunk's thousand
submissions and results are sent as one parameter instead (events go as four arrays of
their own: persistence/events.py): the rows as one JSON
array of objects, written by orjson in a single call (UUIDs, times, numbers and nested JSON
values natively) and read by PostgreSQL with the columns' own types. One array parameter
per column, as before, cost asyncpg two or three `collections.abc` checks per element (a
1,000-input batch sent ~80,000 elements).

A JSON null read into a jsonb column is SQL NULL; every jsonb column written in bulk is NOT
NULL, so such a NULL can only be the JSON value null, and is written as that.

`shared_insert` sends only what differs: a column whose rows all hold one value is bound once
beside the document (a batch's owner, model, batch, times and most statuses), so its rows
carry five keys, not fifteen: less JSON to write and for PostgreSQL to read (1,000
submissions: 26 -> 22 ms).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, postgresql.JSONB)


def recordset_rows(table: sa.Table, names: Sequence[str], prefix: str = "v_") -> sa.Select[Any]:
    """The rows of an INSERT ... SELECT FROM json_to_recordset, to narrow with a WHERE; the
    JSON bound as `<prefix>rows` (two tables' rows in one statement need two)."""
    columns = [table.c[name] for name in names]
    typed = [sa.column(c.name, c.type) for c in columns]
    document = sa.cast(sa.bindparam(f"{prefix}rows", type_=sa.Text()), postgresql.JSON)
    rows = (
        sa.func.json_to_recordset(document)
        .table_valued(*typed)
        .render_derived(name=prefix.rstrip("_"), with_types=True)
    )
    picked = [
        sa.func.coalesce(rows.c[c.name], sa.text("'null'::jsonb"))
        if _is_json(c)
        else rows.c[c.name]
        for c in columns
    ]
    return sa.select(*picked)


def recordset_values(rows: Sequence[Mapping[str, object]], prefix: str = "v_") -> dict[str, str]:
    """The bound value of recordset_rows for `rows`: each row's keys
    name its columns (a key no column is named for is ignored)."""
    return {f"{prefix}rows": dumps(rows)}


def dumps(value: object) -> str:
    """JSON text of rows as orjson writes it; asyncpg's own UUIDs (ids read back from the
    database) too."""
    return orjson.dumps(value, default=_uuid_text).decode()


def _uuid_text(value: object) -> str:
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def shared_insert(
    table: sa.Table, names: Sequence[str], rows: Sequence[Mapping[str, object]]
) -> tuple[sa.Insert, dict[str, object]]:
    """The INSERT of `rows` (one or more, each with every name as a key) and its bound
    values: the columns whose values differ as JSON rows (the first name always), each other
    column once, as `k_<name>`."""
    shared: dict[str, object] = {}
    for name in names[1:]:
        first = rows[0][name]
        same = _same_json if _is_json(table.c[name]) else _same
        if all(same(row[name], first) for row in rows):
            shared[name] = first
    differing = [name for name in names if name not in shared]
    values: dict[str, object] = {
        f"k_{name}": _bound(table.c[name], v) for name, v in shared.items()
    }
    values |= recordset_values([{name: row[name] for name in differing} for row in rows])
    return _shared_statement(table, tuple(names), frozenset(shared)), values


@functools.lru_cache(maxsize=256)  # a shape per set of shared columns: a few per table
def _shared_statement(table: sa.Table, names: tuple[str, ...], shared: frozenset[str]) -> sa.Insert:
    differing = [name for name in names if name not in shared]
    read = dict(zip(differing, recordset_rows(table, differing).selected_columns, strict=True))
    picked = [_shared_value(table.c[name]) if name in shared else read[name] for name in names]
    return sa.insert(table).from_select(list(names), sa.select(*picked))


def _shared_value(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if _is_json(column):  # as its JSON text, as in the rows
        return sa.cast(sa.bindparam(f"k_{column.name}", type_=sa.Text()), column.type)
    return sa.cast(sa.bindparam(f"k_{column.name}", type_=column.type), column.type)


def _bound(column: sa.Column[Any], value: object) -> object:
    return dumps(value) if _is_json(column) else value


def _same_json(value: object, first: object) -> bool:
    """Whether `value` is written as the JSON text `first` is ({"a": 1} and {"a": 1.0} are
    equal in Python, not as text)."""
    return value is first or dumps(value) == dumps(first)


def _same(value: object, first: object) -> bool:
    """Whether `value` is written as `first` is: 1, 1.0 and True differ, as do 0.0 and -0.0."""
    if value is first:
        return True
    if type(value) is not type(first) or value != first:
        return False
    return not isinstance(value, float) or math.copysign(1.0, value) == math.copysign(
        1.0,
        first,  # type: ignore[arg-type]  # a float as well: the types are the same
    )


Statement = tuple[sa.Executable, Mapping[str, object]]


async def in_order(
    conn: AsyncConnection, statements: Iterable[Callable[[], Statement | None]]
) -> None:
    """Execute the statements one after another on `conn`, each made (its rows turned into
    parameters) while PostgreSQL executes the one before: one statement on the connection
    at a time, and the Python work beside it rather than between. A step that makes None
    is work of its own done there, beside the statement in flight. If making one fails,
    the statement in flight has ended when the error comes out."""
    pending: asyncio.Future[Any] | None = None
    try:
        for make in statements:
            made = make()
            if made is None:
                continue
            statement, values = made
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(conn.execute(statement, values))
            await asyncio.sleep(0)  # it goes out before the next is made
        if pending is not None:
            await pending
    except BaseException:
        if pending is not None:  # ended, its own error (the transaction's anyway) taken
            await asyncio.gather(pending, return_exceptions=True)
        raise
