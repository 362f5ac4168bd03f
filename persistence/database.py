"""The async engine: URL normalisation, TLS, pool sizing, orjson codecs, statement counting,
and the autocommit connections kept for read-only units of work."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

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
_READ_CONNECTIONS = "assay_read_connections"  # execution option: the engine's ReadConnections
_KEPT_SINCE = "assay_kept_since"  # a kept read connection's last use, for the pool's ping
_FIRST_KEPT = "assay_first_kept"  # when a connection was first kept: its age, for recycling
# What ReadConnections._check found of a kept connection: usable as it is, or given back to
# the pool (the server closed it, or it is due for recycling), or given back after its ping
# went unanswered.
_Check = Literal["usable", "returned", "unanswered"]
POOL_RECYCLE_SECONDS = 1800


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
        # A connection kept for reads (ReadConnections) was last used when it was kept.
        record.info[_RETURNED_AT] = record.info.pop(_KEPT_SINCE, None) or time.monotonic()

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


def _drop_invalidated_at_once(engine: AsyncEngine) -> None:
    """An invalidated connection is dropped (its socket closed), not closed politely.

    Only a connection found broken is invalidated: one the server closed, or one whose
    statement went unanswered until the command timeout. SQLAlchemy's asyncpg adapter closes
    it politely first (asyncpg's close, waiting up to 2 s for the timed-out statement's
    cancel request and the server's goodbye), which a frozen server never answers: every
    request that met one waited the command timeout and then that again. The server ends the
    session when it sees the socket closed, as it would after the goodbye."""

    def terminate(dbapi_connection: Any) -> None:
        dbapi_connection._terminate_force_close()

    # The dialect's hook for an invalidated connection (default: dbapi_connection.terminate()).
    setattr(engine.sync_engine.dialect, "do_terminate", terminate)  # noqa: B010


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 0,
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
        pool_recycle=POOL_RECYCLE_SECONDS,
        # The connection given back last goes out first: after a burst opened them all, a
        # steady flow reuses a few, whose prepared statements are warm; first-in-first-out
        # handed each unit of work the one idle longest (B1 after S3, in-process: medians
        # 160-196 -> 122-140 ms). Idle ones stay idle, and the recycle age ends them.
        pool_use_lifo=True,
        pool_timeout=pool_timeout_seconds,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
    )
    _ping_when_idle(engine, ping_after_idle_seconds)
    _invalidate_when_lost(engine)
    _drop_invalidated_at_once(engine)
    if pool_size // 2 > 0:
        reads = ReadConnections(engine, pool_size // 2, ping_after_idle_seconds)
        engine.update_execution_options(**{_READ_CONNECTIONS: reads})
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


class ReadConnections:
    """Autocommit connections kept checked out between read-only units of work (and
    autocommit ones: runInference's group writes, one statement each).

    Taking a connection from SQLAlchemy's pool and giving it back costs ~45 us of CPU (the
    Connection object, checkout and checkin with their events, the autocommit level set and
    reset, two greenlet hand-offs): about an eighth of a point lookup's server CPU. A
    read-only unit of work takes one kept here instead (a list pop) and gives it back here.

    A kept connection is still one of the pool's: the pool's bound on connections holds, and
    at most `capacity` (half the pool size) are kept. What the pool's checkout does is done
    here: one the driver saw closed is dropped, one idle for `ping_after_idle_seconds` is
    pinged (and dropped if dead; after a ping that went unanswered, as a frozen server's
    does only at the command timeout, the rest go back to the pool unpinged rather than cost
    the request a timeout each), one kept for longer than the pool's recycle age in all goes
    back through the pool's checkout (which replaces it). One that failed is not kept
    (SQLAlchemy or persistence/driver.py invalidated it). A writer that finds no idle
    connection in the pool gets one kept here back there first (`make_room`); while any unit
    of work waits in the pool's checkout, connections given back (and those kept) go to the
    pool, so the one waiting longest gets the next, and disposing the engine closes them all.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        capacity: int,
        ping_after_idle_seconds: float,
        recycle_seconds: float = POOL_RECYCLE_SECONDS,
    ) -> None:
        self._engine = engine
        self.capacity = capacity
        self._ping_after = ping_after_idle_seconds
        self.recycle_seconds = recycle_seconds
        self._kept: list[tuple[AsyncConnection, float]] = []  # newest last
        # Units of work waiting in the pool's checkout (`checkout`): while any wait, a read's
        # connection goes back to the pool, to the longest waiter, rather than being kept
        # for whichever read comes next.
        self._waiting = 0
        event.listen(engine.sync_engine, "engine_disposed", self._close_all)

    @property
    def kept(self) -> int:
        return len(self._kept)

    async def take(self) -> AsyncConnection:
        if self._waiting:
            # Others came first and wait in the pool: the kept ones go to them.
            while self._kept:
                await self._return(*self._kept.pop(0))
        while self._kept:
            conn, kept_since = self._kept.pop()
            check = await self._check(conn, kept_since)
            if check == "usable":
                return conn
            if check == "unanswered":
                # A frozen server makes each ping wait out the command timeout: one is
                # enough. The others go back to the pool unpinged; its checkout decides.
                # The dead one goes last: the pool hands out the one given back last, and
                # this one connects anew rather than being pinged.
                while self._kept:
                    await self._return(*self._kept.pop())
                await self._return(conn, kept_since)
        conn = await self.checkout()
        # asyncpg's adapter only records the level (no I/O): no greenlet hand-off needed.
        assert conn.sync_connection is not None
        conn.sync_connection.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    async def checkout(self) -> AsyncConnection:
        """A connection from the pool, waiting for one (up to its timeout) when none is idle.
        Kept connections served whoever came next, so under more units of work than
        connections one waiting in the pool could starve past its timeout while reads that
        came after it went on; now a connection given back while any wait goes to them."""
        self._waiting += 1
        try:
            return await self._engine.connect()
        finally:
            self._waiting -= 1

    async def give_back(self, conn: AsyncConnection) -> None:
        sync = conn.sync_connection
        driver = None if sync is None or conn.invalidated else sync.connection.driver_connection
        if (
            sync is None
            or driver is None
            or driver.is_closed()
            or len(self._kept) >= self.capacity
            or self._waiting
        ):
            await self._return(conn, time.monotonic())
            return
        if conn.in_transaction():
            # SQLAlchemy began its own (autocommit: no BEGIN was sent); ending it sends nothing.
            await conn.rollback()
        now = time.monotonic()
        sync.connection.info.setdefault(_FIRST_KEPT, now)
        self._kept.append((conn, now))

    async def make_room(self) -> None:
        """Give the longest-kept connection back to the pool when the pool has none idle."""
        pool = self._engine.sync_engine.pool  # a new one after dispose()
        if self._kept and isinstance(pool, QueuePool) and pool.checkedin() == 0:
            conn, kept_since = self._kept.pop(0)
            await self._return(conn, kept_since)

    async def _check(self, conn: AsyncConnection, kept_since: float) -> _Check:
        sync = conn.sync_connection
        driver = None if sync is None or conn.invalidated else sync.connection.driver_connection
        if sync is None or driver is None or driver.is_closed():
            # The server ended it while it was kept (a restart): no request need meet it.
            await self._return(conn, kept_since)
            return "returned"
        now = time.monotonic()
        if now - sync.connection.info.get(_FIRST_KEPT, now) >= self.recycle_seconds:
            # Kept in steady use, it never meets the pool's recycling: hand it back there.
            await self._return(conn, kept_since)
            return "returned"
        if now - kept_since < self._ping_after:
            return "usable"
        try:
            await driver.fetchrow(";")
        except Exception as error:
            await conn.invalidate(error)
            return "unanswered"  # take() gives it back
        return "usable"

    @staticmethod
    async def _return(conn: AsyncConnection, kept_since: float) -> None:
        sync = conn.sync_connection
        if sync is not None and not conn.invalidated:
            sync.connection.info[_KEPT_SINCE] = kept_since
        try:
            await conn.close()
        except Exception as error:
            if not is_lost_connection(error):
                raise

    def _close_all(self, _: Engine) -> None:
        # Called inside AsyncEngine.dispose's greenlet, after the pool closed its idle ones:
        # these are checked out, so they are closed here (the driver's close is awaited).
        kept, self._kept = self._kept, []
        for conn, _since in kept:
            sync = conn.sync_connection
            if sync is None:
                continue
            try:
                sync.invalidate()
                sync.close()
            except Exception as error:
                if not is_lost_connection(error):
                    raise


def read_connections(engine: AsyncEngine) -> ReadConnections | None:
    """The connections kept for this engine's read-only units of work (None: not kept, as
    for an engine not made by create_engine or with a pool of one)."""
    reads: ReadConnections | None = engine.sync_engine.get_execution_options().get(
        _READ_CONNECTIONS
    )
    return reads
