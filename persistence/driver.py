"""Hot reads on asyncpg itself: compiled once by SQLAlchemy, run without its execution layer.

SQLAlchemy's execution context, result machinery and greenlet hand-off cost ~110 us of CPU a
statement on top of asyncpg's ~60 (measured on a point read), which is most of a point
lookup's server time. `fetch` runs a statement built once (see batching.built_once) straight
on the pooled asyncpg connection when that is safe, and through SQLAlchemy otherwise:

- only in autocommit units of work (read-only ones, and runInference's group write, a
  statement built once that returns the ids it kept): there SQLAlchemy's adapter keeps no
  transaction of its own that a statement beside it could escape;
- only when the engine opted in (create_engine sets DRIVER_READS to its statement counter,
  so /metrics and the per-request count still see every statement); tracing's SQLAlchemy
  instrumentation turns it off, so every statement keeps its span.

The SQL text, parameter order and bind processors come from SQLAlchemy's own compilation for
the engine's dialect; the connection's codecs (orjson for jsonb) are SQLAlchemy's too. A
connection error invalidates the pooled connection, as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.outages import is_lost_connection

DRIVER_READS = "assay_driver_reads"  # execution option: the statement counter, or None
Select = sa.Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bound parameter of $1, $2, ...
    defaults: Mapping[str, Any]  # values bound when the statement was built
    processors: Mapping[str, Callable[[Any], Any]]
    columns: tuple[str, ...]


# By id(): statements that live as long as the process, compiled on first use.
_compiled: dict[int, tuple[Select, _Compiled | None]] = {}
S = TypeVar("S", bound=Select)


def reusable(statement: S) -> S:
    """Mark a statement built once for the process (never per call): `fetch` may compile it
    for the driver. A statement built per call goes through SQLAlchemy, whose cache bounds it."""
    _compiled.setdefault(id(statement), (statement, None))
    return statement


def _compile(statement: Select, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    defaults = {
        name: bind.value
        for name, bind in ((b.key, b) for b in compiled.binds.values())
        if not bind.required and bind.callable is None
    }
    processors: dict[str, Callable[[Any], Any]] = {
        name: process
        for name, process in compiled._bind_processors.items()
        if name in names and callable(process)
    }
    columns = tuple(statement.selected_columns.keys())
    return _Compiled(compiled.string, names, defaults, processors, columns)


def _compiled_for(statement: Select, dialect: Dialect) -> _Compiled | None:
    entry = _compiled.get(id(statement))
    if entry is None or entry[0] is not statement:
        return None
    if entry[1] is None:
        entry = (statement, _compile(statement, dialect))
        _compiled[id(statement)] = entry
    return entry[1]


def _arguments(compiled: _Compiled, parameters: Mapping[str, object]) -> list[Any]:
    arguments = []
    for name in compiled.names:
        value = parameters[name] if name in parameters else compiled.defaults[name]
        process = compiled.processors.get(name)
        arguments.append(process(value) if process is not None else value)
    return arguments


def _driver_counter(conn: Connection) -> Callable[[], None] | None:
    options = conn.get_execution_options()
    if options.get("isolation_level") != "AUTOCOMMIT":
        return None
    counter: Callable[[], None] | None = options.get(DRIVER_READS)
    return counter


async def _invalidate_unless_refused(conn: AsyncConnection, error: Exception) -> None:
    """A statement the server refused leaves the connection fine; anything else (closed,
    reset, no answer within the command timeout) means the pool must not hand it out again."""
    if isinstance(error, asyncpg.PostgresError) and not is_lost_connection(error):
        return
    await conn.invalidate(error)


async def fetch(
    conn: AsyncConnection, statement: Select, parameters: Mapping[str, object]
) -> tuple[Sequence[Any], Sequence[str]]:
    """The rows of a statement built once, and its column names."""
    sync = conn.sync_connection
    count = None if sync is None else _driver_counter(sync)
    compiled = None if count is None or sync is None else _compiled_for(statement, sync.dialect)
    if count is None or sync is None or compiled is None:
        result = await conn.execute(statement, parameters)
        return result.all(), tuple(result.keys())
    arguments = _arguments(compiled, parameters)
    driver = sync.connection.driver_connection
    assert driver is not None
    count()
    try:
        rows: list[Any] = await driver.fetch(compiled.sql, *arguments)
    except Exception as error:
        await _invalidate_unless_refused(conn, error)
        raise
    return rows, compiled.columns


async def fetch_text(conn: AsyncConnection, sql: str, arguments: Sequence[Any]) -> str:
    """The one text value of a statement written in PostgreSQL's own $n form.

    On the driver in autocommit units of work (as `fetch`); through SQLAlchemy's
    exec_driver_sql otherwise, which passes the text and arguments to asyncpg unchanged."""
    sync = conn.sync_connection
    count = None if sync is None else _driver_counter(sync)
    if count is None or sync is None:
        result = await conn.exec_driver_sql(sql, tuple(arguments))
        value = result.scalar_one()
    else:
        driver = sync.connection.driver_connection
        assert driver is not None
        count()
        try:
            value = await driver.fetchval(sql, *arguments)
        except Exception as error:
            await _invalidate_unless_refused(conn, error)
            raise
    assert isinstance(value, str)
    return value
