"""The async engine: URL normalisation, TLS, pool sizing, orjson codecs, statement counting."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import event, exc
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from persistence.driver import DRIVER_READS
from persistence.outages import is_lost_connection


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _ssl_argument(mode: str) -> ssl.SSLContext | str | None:
    if mode == "disable":
        return None
    if mode == "require":
        return "require"
    context = ssl.create_default_context()  # verify-full: chain and host name
    return context


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


PING_AFTER_IDLE_SECONDS = 10.0
_RETURNED_AT = "assay_returned_at"


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's pool_pre_ping checks every checkout, and its asyncpg adapter does it with
    BEGIN, an empty query and ROLLBACK: three round trips on every unit of work. A
    connection used a moment ago is alive unless the driver already saw it closed (a check
    without I/O); one that sat idle (a failover, a restart, an idle timeout in between) is
    checked, and replaced if dead (DisconnectionError makes the pool retry with a fresh one).
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _fresh(_: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(pool, "checkin")
    def _returned(_: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked(
        dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        driver = record.driver_connection
        if driver is not None and driver.is_closed():
            # The server ended it while it sat in the pool (a restart): the driver knows
            # without a round trip, so no request need meet it.
            raise exc.DisconnectionError("pooled connection was closed by the server")
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise exc.DisconnectionError("idle pooled connection is gone") from error


def _invalidate_when_lost(engine: AsyncEngine) -> None:
    """A statement that failed because the server went away invalidates its connection.

    SQLAlchemy's asyncpg dialect asks the driver whether the connection is closed, and a
    restart's "terminating connection due to administrator command" can arrive before the
    socket's end: the pool then handed out a connection stuck mid-protocol, and its next
    statement failed with "another operation is in progress" (INTERNAL). The same test as
    the one that answers UNAVAILABLE decides here."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _lost(context: ExceptionContext) -> None:
        if not context.is_disconnect and is_lost_connection(context.original_exception):
            context.is_disconnect = True


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    ssl_mode: str = "disable",
    statement_timeout_ms: int = 30_000,
    on_statement: Callable[[], None] | None = None,
    ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS,
    connect_timeout_seconds: float = 10.0,
    pool_timeout_seconds: float = 30.0,
    command_timeout_seconds: float | None = None,
) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout_seconds,
        # Every statement on every checkout waits at most this long for the server to
        # answer: a frozen server costs a request this bound, not its whole outage.
        "command_timeout": command_timeout_seconds,
        "server_settings": {
            "application_name": "assay",
            "statement_timeout": str(statement_timeout_ms),
        },
    }
    ssl_argument = _ssl_argument(ssl_mode)
    if ssl_argument is not None:
        connect_args["ssl"] = ssl_argument
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        pool_timeout=pool_timeout_seconds,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
    )
    _ping_when_idle(engine, ping_after_idle_seconds)
    _invalidate_when_lost(engine)
    callback = on_statement if on_statement is not None else _uncounted
    # Statements run on the driver (persistence/driver.py) count through the same callback.
    engine.update_execution_options(**{DRIVER_READS: callback})
    if on_statement is not None:

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(*_: object) -> None:
            callback()

    return engine


def _uncounted() -> None:
    pass


def without_driver_reads(engine: AsyncEngine) -> None:
    """Every statement through SQLAlchemy, e.g. so its instrumentation sees them all."""
    engine.update_execution_options(**{DRIVER_READS: None})
