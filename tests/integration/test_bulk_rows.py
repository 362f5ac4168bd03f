"""persistence.bulk against PostgreSQL: shared_insert binds a column's value once only when
every row would have written it the same, so each row reads back as it was given; in_order
runs statements one after another."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.bulk import Statement, in_order, shared_insert

_rows = sa.Table(
    "bulk_rows",
    sa.MetaData(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("count", sa.Integer),
    sa.Column("share", sa.Float),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("body", JSONB, nullable=False),
)
_NAMES = ("id", "count", "share", "note", "at", "body")
_AT = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)


async def _round_trip(
    db: AsyncEngine, given: list[dict[str, object]]
) -> tuple[set[str], list[tuple[Any, ...]]]:
    statement, values = shared_insert(_rows, _NAMES, given)
    async with db.connect() as conn:
        await conn.execute(sa.text(
            "CREATE TEMP TABLE bulk_rows (id uuid PRIMARY KEY, count integer, share float8,"
            " note text, at timestamptz, body jsonb NOT NULL)"
        ))  # fmt: skip
        await conn.execute(statement, values)
        read = sa.select(*[_rows.c[n] for n in _NAMES[:-1]], sa.cast(_rows.c.body, sa.Text))
        stored = (await conn.execute(read)).all()
        await conn.rollback()
    by_id = {row[0]: tuple(row) for row in stored}
    shared = {key.removeprefix("k_") for key in values if key.startswith("k_")}
    return shared, [by_id[row["id"]] for row in given]


def _row(**values: object) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "count": 1,
        "share": 0.5,
        "note": None,
        "at": _AT,
        "body": {},
    } | values


async def test_what_every_row_holds_alike_is_bound_once(db: AsyncEngine) -> None:
    given = [_row(body={"n": n}) for n in range(3)]
    shared, stored = await _round_trip(db, given)
    assert shared == {"count", "share", "note", "at"}
    assert [tuple(r[1:5]) for r in stored] == [(1, 0.5, None, _AT)] * 3
    assert [r[5] for r in stored] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']


async def test_values_equal_in_python_but_written_otherwise_go_row_by_row(db: AsyncEngine) -> None:
    given = [
        _row(share=0.0, body={"a": 1}, at=_AT),
        _row(share=-0.0, body={"a": 1.0}, at=_AT + timedelta(microseconds=1)),
    ]
    shared, stored = await _round_trip(db, given)
    assert shared == {"count", "note"}
    assert [math.copysign(1.0, r[2]) for r in stored] == [1.0, -1.0]
    assert [r[5] for r in stored] == ['{"a": 1}', '{"a": 1.0}']
    assert [r[4] for r in stored] == [_AT, _AT + timedelta(microseconds=1)]


async def test_one_row_is_written_whole(db: AsyncEngine) -> None:
    given = [_row(count=7, note="x", body=[1, "two", None])]
    _, stored = await _round_trip(db, given)
    assert tuple(stored[0][1:]) == (7, 0.5, "x", _AT, '[1, "two", null]')


_LOG = sa.table("in_order_log", sa.column("n", sa.Integer))


def _logged(n: int) -> Callable[[], Statement]:
    return lambda: (sa.insert(_LOG), {"n": n})


async def _logged_rows(conn: AsyncConnection) -> list[int]:
    return list((await conn.execute(sa.text("SELECT n FROM in_order_log ORDER BY k"))).scalars())


async def test_statements_in_order_run_one_after_another(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        await conn.execute(sa.text("CREATE TEMP TABLE in_order_log (k serial, n integer)"))
        await in_order(conn, [_logged(n) for n in range(5)])
        assert await _logged_rows(conn) == [0, 1, 2, 3, 4]
        await conn.rollback()


async def test_a_statement_that_cannot_be_made_stops_the_rest(db: AsyncEngine) -> None:
    def broken() -> Statement:
        raise ValueError("no rows")

    async with db.connect() as conn:
        await conn.execute(sa.text("CREATE TEMP TABLE in_order_log (k serial, n integer)"))
        with pytest.raises(ValueError, match="no rows"):
            await in_order(conn, [_logged(0), broken, _logged(2)])
        # The statement in flight had ended when the error came out.
        assert not [t for t in asyncio.all_tasks() if "execute" in repr(t) and not t.done()]
        assert await _logged_rows(conn) == [0]
        await conn.rollback()


async def test_a_step_that_makes_no_statement_runs_beside_the_one_in_flight(
    db: AsyncEngine,
) -> None:
    seen: list[bool] = []

    def beside() -> None:
        in_flight = [t for t in asyncio.all_tasks() if "execute" in repr(t) and not t.done()]
        seen.append(bool(in_flight))

    def slow() -> Statement:
        return sa.text("INSERT INTO in_order_log (n) SELECT 1 FROM pg_sleep(0.2)"), {}

    async with db.connect() as conn:
        await conn.execute(sa.text("CREATE TEMP TABLE in_order_log (k serial, n integer)"))
        await in_order(conn, [slow, beside, _logged(2)])
        assert seen == [True], "made after the statement before it had ended"
        assert await _logged_rows(conn) == [1, 2]
        await conn.rollback()
