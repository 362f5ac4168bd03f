"""The batches repository: batch rows with their submissions' counts, settling and cancelling."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.batches import Batch, BatchCounts, Throughput, WorkTimings
from domain.pagination import Page, PageRequest
from domain.submissions import Submission, SubmissionStatus
from persistence.batching import (
    Row,
    any_of,
    keyset_bounds,
    page_per_parent,
    rows_in_key_order,
    scan_order,
)
from persistence.submissions import _SUBMISSION_COLUMNS, _submission
from persistence.tables import batches, model_timings, submissions

_UNFINISHED = (SubmissionStatus.PENDING.value, SubmissionStatus.RUNNING.value)
# The columns WorkTimings is made of, in its fields' order.
_TIMINGS = (
    model_timings.c.chunks,
    model_timings.c.rows,
    model_timings.c.seconds,
    model_timings.c.rows_squared,
    model_timings.c.rows_seconds,
    model_timings.c.largest_chunk,
)


def _count(status: SubmissionStatus) -> sa.Label[int]:
    return sa.func.count().filter(submissions.c.status == status.value).label(status.value.lower())


# Exact counts by status, per batch row: one index range scan of the batch's submissions.
_counts = (
    sa.select(*(_count(s) for s in SubmissionStatus))
    .where(submissions.c.batch_id == batches.c.id)
    .lateral("counts")
)
_with_counts = sa.select(batches, _counts).select_from(batches.join(_counts, sa.true()))


def _batch(row: Row) -> Batch:
    m = row._mapping
    return Batch(
        id=m["id"],
        owner_id=m["owner_id"],
        model_id=m["model_id"],
        size=m["size"],
        callback_url=m["callback_url"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        cancelled_at=m["cancelled_at"],
        counts=BatchCounts(
            pending=m["pending"],
            running=m["running"],
            succeeded=m["succeeded"],
            failed=m["failed"],
            cancelled=m["cancelled"],
        ),
    )


def _by_status(status: SubmissionStatus | None) -> list[sa.ColumnElement[bool]]:
    return [] if status is None else [submissions.c.status == status.value]


class SqlBatchReads:
    """Reads of batches and their submissions; mixed into the repository."""

    _conn: AsyncConnection

    async def get_many(self, ids: Sequence[UUID]) -> list[Batch | None]:
        return await rows_in_key_order(
            self._conn, _with_counts.where(any_of(batches.c.id, ids)), ids, _batch
        )

    async def list_for_owner(self, owner_id: UUID, request: PageRequest) -> Page[Batch]:
        statement = (
            _with_counts.where(batches.c.owner_id == owner_id, *keyset_bounds(batches, request))
            .order_by(*scan_order(batches, request))
            .limit(request.first + 1)
        )
        rows = [_batch(row) for row in await self._conn.execute(statement)]
        return Page.from_overfetch(rows, request)

    async def count_for_owner(self, owner_id: UUID) -> int:
        statement = sa.select(sa.func.count()).where(batches.c.owner_id == owner_id)
        counted: int = (await self._conn.execute(statement)).scalar_one()
        return counted

    async def list_submissions(
        self, batch_ids: Sequence[UUID], request: PageRequest, status: SubmissionStatus | None
    ) -> list[Page[Submission]]:
        rows = sa.select(*_SUBMISSION_COLUMNS).where(*_by_status(status))
        return await page_per_parent(
            self._conn, rows, submissions.c.batch_id, batch_ids, request, _submission
        )

    async def count_submissions(
        self, batch_ids: Sequence[UUID], status: SubmissionStatus | None
    ) -> list[int]:
        statement = (
            sa.select(submissions.c.batch_id, sa.func.count())
            .where(any_of(submissions.c.batch_id, batch_ids), *_by_status(status))
            .group_by(submissions.c.batch_id)
        )
        counts = {row[0]: row[1] for row in await self._conn.execute(statement)}
        return [counts.get(i, 0) for i in batch_ids]

    async def throughput(self, batch: Batch) -> Throughput:
        ahead = (
            sa.select(sa.func.count())
            .where(
                submissions.c.model_id == batch.model_id,
                submissions.c.status == SubmissionStatus.PENDING.value,
                submissions.c.created_at < batch.created_at,
                sa.or_(submissions.c.batch_id.is_(None), submissions.c.batch_id != batch.id),
            )
            .scalar_subquery()
        )
        # One row whether or not the model has timings yet.
        one = sa.select(sa.literal(1).label("one")).subquery("one")
        statement = sa.select(ahead, *_TIMINGS).select_from(
            one.outerjoin(model_timings, model_timings.c.model_id == batch.model_id)
        )
        queued_ahead, *sums = (await self._conn.execute(statement)).one()
        if sums[0] is None:
            return Throughput(queued_ahead=queued_ahead, timings=None)
        return Throughput(queued_ahead=queued_ahead, timings=WorkTimings(*sums))


class SqlBatchRepository(SqlBatchReads):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, batch: Batch) -> None:
        await self._conn.execute(
            sa.insert(batches).values(
                id=batch.id,
                owner_id=batch.owner_id,
                model_id=batch.model_id,
                size=batch.size,
                callback_url=batch.callback_url,
                created_at=batch.created_at,
                updated_at=batch.updated_at,
                completed_at=batch.completed_at,  # a batch run at accept is stored completed
            )
        )

    async def settle(self, batch_ids: Sequence[UUID], now: datetime) -> list[Batch]:
        # The lock first, in a statement of its own: the count below then starts after any
        # transaction that held it committed, and sees that transaction's submissions.
        locked = (
            sa.select(batches.c.id)
            .where(any_of(batches.c.id, batch_ids), batches.c.completed_at.is_(None))
            .order_by(batches.c.id)
            .with_for_update()
        )
        ids = list((await self._conn.execute(locked)).scalars())
        if not ids:
            return []
        unfinished = sa.exists().where(
            submissions.c.batch_id == batches.c.id, submissions.c.status.in_(_UNFINISHED)
        )
        statement = (
            sa.update(batches)
            .where(any_of(batches.c.id, ids), ~unfinished)
            .values(completed_at=now, updated_at=now)
            .returning(batches.c.id)
        )
        completed = list((await self._conn.execute(statement)).scalars())
        return [b for b in await self.get_many(completed) if b is not None]

    async def cancel(self, batch: Batch, now: datetime) -> list[Submission] | None:
        # Submissions before the batch row: the same lock order as workers (which lock their
        # submissions, then the batch in settle), so the two never deadlock.
        cancelled = (
            sa.update(submissions)
            .where(
                submissions.c.batch_id == batch.id,
                submissions.c.status == SubmissionStatus.PENDING.value,
            )
            .values(
                status=SubmissionStatus.CANCELLED.value,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(*_SUBMISSION_COLUMNS)
        )
        rows = [_submission(row) for row in await self._conn.execute(cancelled)]
        marked = (
            sa.update(batches)
            .where(
                batches.c.id == batch.id,
                batches.c.cancelled_at.is_(None),
                batches.c.completed_at.is_(None),
            )
            .values(cancelled_at=now, updated_at=now)
            .returning(batches.c.id)
        )
        if (await self._conn.execute(marked)).first() is None:
            return None
        return sorted(rows, key=lambda s: (s.created_at, s.id))

    async def reopen(self, batch_id: UUID, now: datetime) -> None:
        await self._conn.execute(
            sa.update(batches)
            .where(batches.c.id == batch_id)
            .values(completed_at=None, updated_at=now)
        )
