"""Use cases for batches: read them, page their submissions, estimate them, cancel them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from domain.batches import Batch, estimated_completion
from domain.errors import Conflict, NotFound
from domain.events import EventType
from domain.pagination import Page, PageRequest
from domain.ports import Clock, UnitOfWork
from domain.principal import Principal, require_owner, visible_only
from domain.services.batch_settlement import batch_event, settle
from domain.services.submissions import submission_event
from domain.submissions import Submission, SubmissionStatus


async def get_batches(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[Batch | None]:
    async with uow:
        return visible_only(principal, await uow.batches.get_many(ids))


async def list_batches(
    uow: UnitOfWork, principal: Principal, owner_id: UUID, request: PageRequest
) -> Page[Batch]:
    """An owner's batches, newest first: the viewer's own, or anyone's for administrators."""
    if not principal.can_read_owned_by(owner_id):
        return Page.empty()
    async with uow:
        return await uow.batches.list_for_owner(owner_id, request)


async def count_batches(uow: UnitOfWork, principal: Principal, owner_id: UUID) -> int:
    if not principal.can_read_owned_by(owner_id):
        return 0
    async with uow:
        return await uow.batches.count_for_owner(owner_id)


async def list_submissions(
    uow: UnitOfWork,
    principal: Principal,
    batch_ids: Sequence[UUID],
    request: PageRequest,
    status: SubmissionStatus | None,
) -> list[Page[Submission]]:
    """A page of each batch's submissions in input order; empty for batches not visible."""
    async with uow:
        visible = [
            b.id for b in visible_only(principal, await uow.batches.get_many(batch_ids)) if b
        ]
        pages = await uow.batches.list_submissions(visible, request, status) if visible else []
    by_batch = dict(zip(visible, pages, strict=True))
    return [by_batch.get(i, Page.empty()) for i in batch_ids]


async def count_submissions(
    uow: UnitOfWork,
    principal: Principal,
    batch_ids: Sequence[UUID],
    status: SubmissionStatus | None,
) -> list[int]:
    async with uow:
        visible = [
            b.id for b in visible_only(principal, await uow.batches.get_many(batch_ids)) if b
        ]
        counts = await uow.batches.count_submissions(visible, status) if visible else []
    by_batch = dict(zip(visible, counts, strict=True))
    return [by_batch.get(i, 0) for i in batch_ids]


async def estimate_completion(uow: UnitOfWork, batch: Batch, *, clock: Clock) -> datetime | None:
    """See domain.batches.estimated_completion: queue ahead and the model's measured timings."""
    if batch.is_finished:
        return None
    async with uow:
        throughput = await uow.batches.throughput(batch)
    return estimated_completion(batch, throughput, clock())


async def cancel_batch(
    uow: UnitOfWork, principal: Principal, batch_id: UUID, *, clock: Clock
) -> Batch:
    """Cancel what is still PENDING; what is RUNNING finishes. CONFLICT once finished."""
    async with uow:
        [found] = visible_only(principal, await uow.batches.get_many([batch_id]))
        if found is None:
            raise NotFound("Batch", batch_id)
        require_owner(principal, found, "batch")
        found.check_cancellable()
        now = clock()
        cancelled = await uow.batches.cancel(found, now)
        if cancelled is None:
            raise Conflict("the batch changed meanwhile; read it and try again")
        await uow.events.append(
            [submission_event(EventType.SUBMISSION_UPDATED, s) for s in cancelled]
        )
        await settle(uow, [batch_id], now)
        [after] = await uow.batches.get_many([batch_id])
        if after is None:  # pragma: no cover - the row is locked by settle
            raise Conflict("the batch changed meanwhile; read it and try again")
        if not after.is_finished:
            await uow.events.append([batch_event(EventType.BATCH_UPDATED, after)])
        await uow.commit()
    return after
