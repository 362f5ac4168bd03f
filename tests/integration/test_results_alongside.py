"""A batch's results written alongside its transaction (persistence/alongside.py), on
PostgreSQL: committed on a connection of their own while the transaction writes the rest,
confirmed by its commit, undone when it does not commit, and undone by undo_unconfirmed when
the process that wrote them died; results named by no stored submission are refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.event_payloads import SubmissionChange
from persistence.alongside import NotConfirmed, undo_unconfirmed
from persistence.database import create_engine
from persistence.tables import results, submissions, unconfirmed_results
from persistence.unit_of_work import SqlUnitOfWork
from tests.integration.test_finished_rows import _finished


def _result_ids(changes: list[SubmissionChange]) -> set[UUID]:
    return {c.result.id for c in changes if c.result is not None}


async def _counts(db: AsyncEngine, changes: list[SubmissionChange]) -> tuple[int, int, int]:
    """(submissions, results, unconfirmed rows) as another connection sees them now."""
    ids = [c.submission.id for c in changes]
    async with db.connect() as conn:
        stored = await conn.scalar(
            sa.select(sa.func.count()).where(submissions.c.id.in_(ids)).select_from(submissions)
        )
        written = await conn.scalar(
            sa.select(sa.func.count()).where(results.c.submission_id.in_(ids)).select_from(results)
        )
        waiting = await conn.scalar(sa.select(sa.func.count()).select_from(unconfirmed_results))
    return int(stored or 0), int(written or 0), int(waiting or 0)


async def _idle_connection(db: AsyncEngine) -> None:
    """A connection idle in the pool besides the unit of work's, as a serving process has:
    the writes go alongside."""
    async with db.connect() as first, db.connect() as second:
        await first.execute(sa.text("SELECT 1"))
        await second.execute(sa.text("SELECT 1"))


async def _written_alongside(db: AsyncEngine, changes: list[SubmissionChange]) -> None:
    """Wait (bounded) until the results are committed alongside, their batch not yet."""
    for _ in range(500):
        if await _counts(db, changes) == (0, len(_result_ids(changes)), 1):
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"the results were not committed alongside: {await _counts(db, changes)}")


async def test_the_results_commit_alongside_and_the_transaction_confirms_them(
    db: AsyncEngine,
) -> None:
    changes = await _finished(db)
    await _idle_connection(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.submissions.add_finished(changes)
        # Committed on their own connection; no read reaches them without their submission.
        await _written_alongside(db, changes)
        await uow.commit()
    assert await _counts(db, changes) == (len(changes), len(_result_ids(changes)), 0)


async def test_a_transaction_that_does_not_commit_takes_its_results_alongside_with_it(
    db: AsyncEngine,
) -> None:
    changes = await _finished(db)
    await _idle_connection(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.submissions.add_finished(changes)
        await _written_alongside(db, changes)
        # Leaves without committing (an error later in the use case does the same).
    assert await _counts(db, changes) == (0, 0, 0)


async def test_results_no_transaction_confirmed_are_undone_after_a_while(db: AsyncEngine) -> None:
    """What a process that died between the two commits leaves: undone once older than the
    bound, not before; a transaction confirming them then fails, storing nothing."""
    changes = await _finished(db)
    await _idle_connection(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.submissions.add_finished(changes)
        await _written_alongside(db, changes)
        assert await undo_unconfirmed(db, older_than=timedelta(minutes=5)) == 0
        assert await undo_unconfirmed(db, older_than=timedelta(0)) == 1
        assert await _counts(db, changes) == (0, 0, 0)
        with pytest.raises(NotConfirmed):
            await uow.commit()
    assert await _counts(db, changes) == (0, 0, 0)


async def test_results_a_confirming_transaction_holds_are_not_undone(db: AsyncEngine) -> None:
    changes = await _finished(db)
    await _idle_connection(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.submissions.add_finished(changes)
        await _written_alongside(db, changes)
        # The confirmation (deleting the row) is this transaction's, not yet committed.
        alongside = uow.results_alongside()
        assert alongside is not None
        await alongside.confirm(uow.connection)
        assert await undo_unconfirmed(db, older_than=timedelta(0)) == 0
        await uow.commit()
    assert await _counts(db, changes) == (len(changes), len(_result_ids(changes)), 0)


async def test_with_no_connection_idle_the_results_go_in_the_transaction(
    db: AsyncEngine, postgres_url: str
) -> None:
    changes = await _finished(db)
    single = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        async with SqlUnitOfWork(single) as uow:
            await uow.submissions.add_finished(changes)
            assert await _counts(db, changes) == (0, 0, 0)  # nothing committed alongside
            await uow.commit()
    finally:
        await single.dispose()
    assert await _counts(db, changes) == (len(changes), len(_result_ids(changes)), 0)


async def test_a_result_must_name_a_stored_or_unconfirmed_submission(db: AsyncEngine) -> None:
    changes = await _finished(db)
    async with SqlUnitOfWork(db) as uow:
        written = [c.result for c in changes if c.result is not None]
        with pytest.raises(IntegrityError, match="fk_results_submission_id_submissions"):
            await uow.results.add_many(written)  # their submissions are not stored
    assert await _counts(db, changes) == (0, 0, 0)


async def test_deleting_submissions_deletes_their_results_and_their_ids_never_change(
    db: AsyncEngine,
) -> None:
    changes = await _finished(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.submissions.add_finished(changes)
        await uow.commit()
    first = changes[0].submission.id
    async with db.begin() as conn:
        with pytest.raises(IntegrityError, match="id never changes"):
            async with conn.begin_nested():
                await conn.execute(
                    sa.update(submissions)
                    .where(submissions.c.id == first)
                    .values(id=sa.func.gen_random_uuid())
                )
        await conn.execute(sa.delete(submissions))
    assert await _counts(db, changes) == (0, 0, 0)
