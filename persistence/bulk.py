"""Bulk inserts: many rows in one INSERT ... SELECT FROM unnest(arrays), executed once.

asyncpg's executemany runs the statement once per row on the server; a chunk's thousand
results and two thousand events are cheaper as one array per column. JSONB values travel
as text (JSON written once, by orjson) and are cast in the statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, postgresql.JSONB)


def unnest_insert(table: sa.Table, names: Sequence[str]) -> sa.Insert:
    """INSERT INTO table (names) SELECT FROM unnest of one array per column, each array
    bound as `v_<name>` (see column_arrays)."""
    return sa.insert(table).from_select(list(names), unnest_rows(table, names))


def unnest_rows(table: sa.Table, names: Sequence[str], prefix: str = "v_") -> sa.Select[Any]:
    """The rows of unnest_insert's SELECT, to narrow with a WHERE or insert otherwise; the
    arrays bound as `<prefix><name>` (two tables' rows in one statement need two)."""
    columns = [table.c[name] for name in names]
    arrays = [
        sa.bindparam(
            f"{prefix}{c.name}", type_=postgresql.ARRAY(sa.Text() if _is_json(c) else c.type)
        )
        for c in columns
    ]
    rows = sa.func.unnest(*arrays).table_valued(*names).render_derived(name=prefix.rstrip("_"))
    picked = [
        sa.cast(rows.c[c.name], postgresql.JSONB) if _is_json(c) else rows.c[c.name]
        for c in columns
    ]
    return sa.select(*picked)


def column_arrays(
    table: sa.Table, names: Sequence[str], rows: Sequence[Mapping[str, object]], prefix: str = "v_"
) -> dict[str, list[object]]:
    """The bound values of unnest_insert(table, names) (or unnest_rows) for `rows`."""
    values: dict[str, list[object]] = {}
    for name in names:
        if _is_json(table.c[name]):
            values[f"{prefix}{name}"] = [orjson.dumps(row[name]).decode() for row in rows]
        else:
            values[f"{prefix}{name}"] = [row[name] for row in rows]
    return values
