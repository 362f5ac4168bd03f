"""The unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import Unavailable
from domain.ports import LocalWorkers
from persistence.accounts import SqlAccountRepository, SqlBlobDeletionRepository
from persistence.alongside import ResultsAlongside
from persistence.api_keys import SqlApiKeyRepository
from persistence.assets import SqlAssetRepository
from persistence.batches import SqlBatchRepository
from persistence.callbacks import SqlCallbackRepository
from persistence.database import read_connections
from persistence.events import SqlEventRepository
from persistence.feedback import SqlFeedbackRepository
from persistence.model_alerts import SqlModelAlertRepository
from persistence.models import SqlModelRepository
from persistence.monitoring import SqlMonitoringRepository
from persistence.outages import is_lost_connection, is_unreachable, unavailable
from persistence.projections import SqlProjectionReader
from persistence.submissions import SqlResultRepository, SqlSubmissionRepository
from persistence.users import SqlUserRepository
from persistence.webhooks import SqlWebhookRepository

R = TypeVar("R")


class _Repository(Generic[R]):
    """A repository on the unit of work's connection, made when first used: a request
    uses one or two of them, and making all thirteen on every entry was measurable."""

    names: ClassVar[set[str]] = set()

    def __init__(self, factory: Callable[[AsyncConnection], R]) -> None:
        self.factory = factory

    def make(self, unit: SqlUnitOfWork) -> R:
        return self.factory(unit.connection)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        _Repository.names.add(name)

    @overload
    def __get__(self, unit: None, owner: type) -> Self: ...
    @overload
    def __get__(self, unit: SqlUnitOfWork, owner: type) -> R: ...
    def __get__(self, unit: SqlUnitOfWork | None, owner: type) -> R | Self:
        if unit is None:
            return self
        # Kept in the instance, which a non-data descriptor lets win until exit removes it.
        repository: R = self.make(unit)
        unit.__dict__[self.name] = repository
        return repository


class _Submissions(_Repository[SqlSubmissionRepository]):
    """Submissions, which may write a batch's results alongside (persistence/alongside.py)."""

    def make(self, unit: SqlUnitOfWork) -> SqlSubmissionRepository:
        repository = super().make(unit)
        repository.alongside = unit.results_alongside  # made when a batch first asks
        return repository


class SqlUnitOfWork:
    """Takes a pooled connection on enter; rolls back on exit unless committed.

    Entering it again while it is entered shares the connection and the transaction: the
    compiled query path runs several read use cases on one connection that way. Only the
    outermost exit rolls back and returns the connection. A read-only unit of work runs its
    statements in autocommit mode and refuses to commit. An `autocommit` one runs each
    statement as its own transaction from the start (for a use case that writes one
    statement, atomic on its own: runInference's group). Both take a connection kept between
    units of work (persistence.database.ReadConnections) rather than the pool's.
    """

    users = _Repository(SqlUserRepository)
    assets = _Repository(SqlAssetRepository)
    models = _Repository(SqlModelRepository)
    submissions = _Submissions(SqlSubmissionRepository)
    results = _Repository(SqlResultRepository)
    events = _Repository(SqlEventRepository)
    webhooks = _Repository(SqlWebhookRepository)
    batches = _Repository(SqlBatchRepository)
    callbacks = _Repository(SqlCallbackRepository)
    api_keys = _Repository(SqlApiKeyRepository)
    accounts = _Repository(SqlAccountRepository)
    blob_deletions = _Repository(SqlBlobDeletionRepository)
    projections = _Repository(SqlProjectionReader)
    monitoring = _Repository(SqlMonitoringRepository)
    feedback = _Repository(SqlFeedbackRepository)
    model_alerts = _Repository(SqlModelAlertRepository)

    def __init__(
        self,
        engine: AsyncEngine,
        on_events_committed: Callable[[bool], None] | None = None,
        *,
        read_only: bool = False,
        autocommit: bool = False,
        on_work_committed: Callable[[], None] | None = None,
        local_workers: LocalWorkers | None = None,
    ) -> None:
        self._engine = engine
        self._local_workers = local_workers
        self._on_events_committed = on_events_committed
        self._on_work_committed = on_work_committed
        self._read_only = read_only
        # Autocommit connections are kept for these (see the class's docstring).
        self._kept = read_only or autocommit
        self._conn: AsyncConnection | None = None
        self._depth = 0
        self._alongside: ResultsAlongside | None = None

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            self._depth += 1
            return self
        self._conn = await self._connect()
        return self

    async def _connect(self) -> AsyncConnection:
        reads = read_connections(self._engine)
        try:
            if reads is not None and self._kept:
                return await reads.take()
            if reads is not None:
                await reads.make_room()
            conn = await (self._engine.connect() if reads is None else reads.checkout())
            if self._kept:
                # Each statement on its own, no BEGIN/ROLLBACK round trips.
                _autocommit(conn)
            # Otherwise the first statement begins the transaction (SQLAlchemy's autobegin;
            # asyncpg's adapter sends BEGIN with it either way), so autocommit() may still
            # be chosen until then.
        except Exception as error:
            if is_unreachable(error):
                raise unavailable(error) from error
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
        alongside, self._alongside = self._alongside, None
        for name in _Repository.names & self.__dict__.keys():
            del self.__dict__[name]  # they belong to the connection given back
        reads = read_connections(self._engine) if self._kept else None
        if reads is not None and exc is None:
            await reads.give_back(conn)  # kept for the next read, or closed if it failed
            return
        is_lost = exc is not None and is_lost_connection(exc)
        try:
            try:
                if is_lost:
                    # No rollback on a connection that is gone or not answering (it would
                    # wait out the command timeout again): drop it; the server rolls back.
                    await conn.invalidate(exc if isinstance(exc, Exception) else None)
                elif conn.in_transaction():
                    await conn.rollback()
            finally:
                await conn.close()
        except Exception as error:
            # A dead connection needs no rollback: what was not committed is gone with it.
            if not is_lost_connection(error):
                raise
        finally:
            if alongside is not None and alongside.pending:
                # Not committed: what was written alongside goes (after the rollback, which
                # frees the row its confirmation locked).
                await alongside.undo()
        # One place turns a lost database into the domain's error, whatever statement of the
        # block met it (the caller answers UNAVAILABLE, not an internal error).
        if is_lost and exc is not None and not isinstance(exc, Unavailable):
            raise unavailable(exc) from exc

    def results_alongside(self) -> ResultsAlongside | None:
        """Where this transaction's results may be written alongside it (None for a unit
        of work that writes no transaction of its own: read-only or autocommit)."""
        if self._kept:
            return None
        if self._alongside is None:
            self._alongside = ResultsAlongside(self._engine)
        return self._alongside

    @property
    def local_workers(self) -> LocalWorkers | None:
        return None if self._read_only else self._local_workers

    @property
    def connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered")
        return self._conn

    def autocommit(self) -> None:
        """Each statement from here on commits as it runs: no BEGIN and COMMIT round trips,
        for a use case that writes one statement (atomic on its own). Only before the first
        statement; commit() then only tells the listeners."""
        if self.connection.in_transaction():
            raise RuntimeError("autocommit() must come before the unit of work's first statement")
        _autocommit(self.connection)

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        alongside = self._alongside
        if alongside is not None and alongside.pending:
            await alongside.confirm(self.connection)
        await self.connection.commit()
        if alongside is not None:
            alongside.committed()
        # Only a repository this transaction used can have queued work (see _Repository).
        submissions: SqlSubmissionRepository | None = self.__dict__.get("submissions")
        appended = submissions is not None and submissions.has_events
        if submissions is not None:
            submissions.has_events = False
        if (appended or self.events.appended) and self._on_events_committed is not None:
            revokes = self.events.revokes
            self.events.appended = self.events.revokes = False
            self._on_events_committed(revokes)
        if submissions is not None and submissions.has_enqueued:
            submissions.has_enqueued = False
            if self._on_work_committed is not None:
                self._on_work_committed()

    async def rollback(self) -> None:
        await self.connection.rollback()


def _autocommit(conn: AsyncConnection) -> None:
    # Set on the sync connection: asyncpg's adapter only records the level (no I/O), so the
    # greenlet hand-off of the async call is not needed. The pool resets it on check-in.
    assert conn.sync_connection is not None
    conn.sync_connection.execution_options(isolation_level="AUTOCOMMIT")
