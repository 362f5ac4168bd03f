"""A batch's results written alongside its transaction: on a connection of their own,
committed first, confirmed by the batch's transaction as it commits.

PostgreSQL runs one statement at a time per connection, on one core. A 1,000-input batch
stored at accept writes 1,000 submissions, 1,000 results and 4,000 events in one
transaction: ~90 ms of statements after the model's run, one after another, while the
machine's other core waits (B1, docs/performance.md). Results are the rows that can go
elsewhere: every read reaches a result through its submission (persistence/submissions.py,
persistence/projections.py), so a result whose submission is not stored is a row no read
returns. They are written on a second connection while the batch's transaction writes the
rest:

1. `start`: if the pool has a connection idle (else the caller writes them in its own
   transaction), a task inserts an unconfirmed_results row (a key of its own and the
   submissions' ids: what an undo needs) and the results, and commits.
2. `confirm`, in the batch's transaction just before its COMMIT: waits for 1 (its failure
   fails the batch) and deletes that row, which commits with the batch. No row found: an undo
   (4) took it, and the batch fails: nothing of it is stored.
3. `undo`, when the batch's transaction ends without committing: deletes those results and
   the row, on a connection of its own.
4. `undo_unconfirmed`, every minute in every serving process (server/bootstrap.py): rows older
   than UNCONFIRMED_AFTER that no confirming transaction holds are undone: what a process that
   died between 1 and 2 left behind.

A result that is stored therefore has its submission stored, or is about to go; migration
0015 checks each inserted result's submission (or its unconfirmed row) once per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from persistence.bulk import Statement
from persistence.tables import results, submissions, unconfirmed_results

logger = logging.getLogger(__name__)

# How long a batch's transaction may take to confirm its results before an undo may take
# them (it confirms within milliseconds of their commit; only a process that died does not).
UNCONFIRMED_AFTER = timedelta(seconds=60)
# Rows undone per undo_unconfirmed statement.
_UNDO_LIMIT = 20


class NotConfirmed(Exception):
    """The results written alongside were undone before the batch's transaction confirmed
    them: it must not commit."""


class ResultsAlongside:
    """One unit of work's results written alongside its transaction (see the module)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writes: list[tuple[UUID, list[UUID], asyncio.Future[None]]] = []
        self._confirmed: list[tuple[UUID, list[UUID], asyncio.Future[None]]] = []

    def start(self, key: UUID, named: Sequence[UUID], insert: Statement) -> bool:
        """Begin `insert` (the INSERT of results naming the submissions `named`), under
        `key`, on a connection of its own; False, with nothing begun, when the pool has no
        connection idle: the caller writes them itself."""
        pool = self._engine.sync_engine.pool
        if not named or not isinstance(pool, QueuePool) or pool.checkedin() == 0:
            return False
        task = asyncio.ensure_future(self._write(key, list(named), insert))
        self._writes.append((key, list(named), task))
        return True

    async def _write(self, key: UUID, named: list[UUID], insert: Statement) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.insert(unconfirmed_results).values(id=key, submission_ids=named))
            await conn.execute(*insert)
            await conn.commit()

    async def confirm(self, conn: AsyncConnection) -> None:
        """In the batch's transaction (`conn`), just before it commits: every write has
        committed, and its row is deleted by this transaction (NotConfirmed if one is gone).
        The writes stay pending until `committed`: a COMMIT that fails leaves them to undo."""
        for _, _, task in self._writes:
            await task
        keys = [key for key, _, _ in self._writes]
        deleted = await conn.execute(
            sa.delete(unconfirmed_results)
            .where(unconfirmed_results.c.id.in_(keys))
            .returning(unconfirmed_results.c.id)
        )
        if len(deleted.all()) != len(keys):
            raise NotConfirmed("results written alongside were undone before they were confirmed")
        self._confirmed += self._writes
        self._writes = []

    def committed(self) -> None:
        """The transaction that confirmed the writes committed: nothing is left to undo."""
        self._writes, self._confirmed = [], []

    @property
    def pending(self) -> bool:
        """Whether writes were begun that no commit has confirmed yet."""
        return bool(self._writes or self._confirmed)

    async def undo(self) -> None:
        """The batch's transaction did not commit (or its COMMIT's outcome is unknown): its
        results written alongside go where their submissions are not stored (best effort;
        undo_unconfirmed takes what this cannot)."""
        writes = self._confirmed + self._writes
        self._writes, self._confirmed = [], []
        for key, named, task in writes:
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
            if not task.done() or task.cancelled() or task.exception() is not None:
                continue  # nothing committed (or it still runs: undo_unconfirmed takes it)
            try:
                async with self._engine.connect() as conn:
                    # Skipped when gone (its transaction committed after all) or still held
                    # (a confirmation on a connection not yet ended): undo_unconfirmed's then.
                    held = await conn.execute(
                        sa.select(unconfirmed_results.c.id)
                        .where(unconfirmed_results.c.id == key)
                        .with_for_update(skip_locked=True)
                    )
                    if held.first() is not None:
                        await _undo(conn, key, named)
                    await conn.commit()
            except Exception:
                logger.warning(
                    "undoing the results written alongside as %s failed; undone within %s",
                    key,
                    UNCONFIRMED_AFTER,
                    exc_info=True,
                )


async def _undo(conn: AsyncConnection, key: UUID, named: Sequence[UUID]) -> None:
    """Delete the results of `named` that have no submission, and the row of `key`."""
    await conn.execute(
        sa.delete(results).where(
            results.c.submission_id.in_(named),
            ~sa.exists().where(submissions.c.id == results.c.submission_id),
        )
    )
    await conn.execute(sa.delete(unconfirmed_results).where(unconfirmed_results.c.id == key))


async def undo_unconfirmed(engine: AsyncEngine, older_than: timedelta = UNCONFIRMED_AFTER) -> int:
    """Undo the writes no transaction confirmed within `older_than` (a row a confirming
    transaction holds is skipped: it is about to go with that transaction's commit). Returns
    how many were undone."""
    undone = 0
    while True:
        async with engine.connect() as conn:
            due = (
                await conn.execute(
                    sa.select(unconfirmed_results.c.id, unconfirmed_results.c.submission_ids)
                    .where(unconfirmed_results.c.created_at < sa.func.now() - older_than)
                    .order_by(unconfirmed_results.c.created_at)
                    .limit(_UNDO_LIMIT)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for key, named in due:
                await _undo(conn, key, named)
            await conn.commit()
        undone += len(due)
        if len(due) < _UNDO_LIMIT:
            return undone
