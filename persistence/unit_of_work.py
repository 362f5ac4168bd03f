"""The unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import Unavailable
from persistence.accounts import SqlAccountRepository, SqlBlobDeletionRepository
from persistence.api_keys import SqlApiKeyRepository
from persistence.assets import SqlAssetRepository
from persistence.batches import SqlBatchRepository
from persistence.callbacks import SqlCallbackRepository
from persistence.events import SqlEventRepository
from persistence.models import SqlModelRepository
from persistence.outages import is_lost_connection, is_unreachable
from persistence.projections import SqlProjectionReader
from persistence.submissions import SqlResultRepository, SqlSubmissionRepository
from persistence.users import SqlUserRepository
from persistence.webhooks import SqlWebhookRepository


class SqlUnitOfWork:
    """Takes a pooled connection on enter; rolls back on exit unless committed.

    Entering it again while it is entered shares the connection and the transaction: the
    compiled query path runs several read use cases on one connection that way. Only the
    outermost exit rolls back and returns the connection. A read-only unit of work runs its
    statements in autocommit mode and refuses to commit.
    """

    users: SqlUserRepository
    assets: SqlAssetRepository
    models: SqlModelRepository
    submissions: SqlSubmissionRepository
    results: SqlResultRepository
    events: SqlEventRepository
    webhooks: SqlWebhookRepository
    batches: SqlBatchRepository
    callbacks: SqlCallbackRepository
    api_keys: SqlApiKeyRepository
    accounts: SqlAccountRepository
    blob_deletions: SqlBlobDeletionRepository
    projections: SqlProjectionReader

    def __init__(
        self,
        engine: AsyncEngine,
        on_events_committed: Callable[[], None] | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._on_events_committed = on_events_committed
        self._read_only = read_only
        self._conn: AsyncConnection | None = None
        self._depth = 0

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            self._depth += 1
            return self
        conn = await self._connect()
        self._conn = conn
        self.users = SqlUserRepository(conn)
        self.assets = SqlAssetRepository(conn)
        self.models = SqlModelRepository(conn)
        self.submissions = SqlSubmissionRepository(conn)
        self.results = SqlResultRepository(conn)
        self.events = SqlEventRepository(conn)
        self.webhooks = SqlWebhookRepository(conn)
        self.batches = SqlBatchRepository(conn)
        self.callbacks = SqlCallbackRepository(conn)
        self.api_keys = SqlApiKeyRepository(conn)
        self.accounts = SqlAccountRepository(conn)
        self.blob_deletions = SqlBlobDeletionRepository(conn)
        self.projections = SqlProjectionReader(conn)
        return self

    async def _connect(self) -> AsyncConnection:
        try:
            conn = await self._engine.connect()
            if self._read_only:
                # Reads only: each statement on its own, no BEGIN/ROLLBACK round trips.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                await conn.begin()
        except Exception as error:
            if is_unreachable(error):
                raise Unavailable() from error
            raise
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._depth:
            self._depth -= 1
            return
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            try:
                if conn.in_transaction():
                    await conn.rollback()
            finally:
                await conn.close()
        except Exception as error:
            # A dead connection needs no rollback: what was not committed is gone with it.
            if not is_lost_connection(error):
                raise
        # One place turns a lost database into the domain's error, whatever statement of the
        # block met it (the caller answers UNAVAILABLE, not an internal error).
        if exc is not None and not isinstance(exc, Unavailable) and is_lost_connection(exc):
            raise Unavailable() from exc

    @property
    def connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered")
        return self._conn

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        await self.connection.commit()
        if self.events.appended and self._on_events_committed is not None:
            self.events.appended = False
            self._on_events_committed()

    async def rollback(self) -> None:
        await self.connection.rollback()
