"""Bulk inserts: many rows in one INSERT ... SELECT FROM json_to_recordset(rows), executed once.

asyncpg's executemany runs the statement once per row on the server, so a chunk's thousand
results and two thousand events are sent as one parameter instead: the rows as one JSON
array of objects, written by orjson in a single call (UUIDs, times, numbers and nested JSON
values natively) and read by PostgreSQL with the columns' own types. One array parameter
per column, as before, cost asyncpg two or three `collections.abc` checks per element (a
1,000-input batch sent ~80,000 elements).

A JSON null read into a jsonb column is SQL NULL; every jsonb column written in bulk is NOT
NULL, so such a NULL can only be the JSON value null, and is written as that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, postgresql.JSONB)


def recordset_insert(table: sa.Table, names: Sequence[str]) -> sa.Insert:
    """INSERT INTO table (names) SELECT FROM the JSON rows bound as `v_rows` (see
    recordset_values)."""
    return sa.insert(table).from_select(list(names), recordset_rows(table, names))


def recordset_rows(table: sa.Table, names: Sequence[str], prefix: str = "v_") -> sa.Select[Any]:
    """The rows of recordset_insert's SELECT, to narrow with a WHERE or insert otherwise; the
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
    """The bound value of recordset_insert (or recordset_rows) for `rows`: each row's keys
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
