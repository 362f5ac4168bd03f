"""Completing a batch: in the transaction that finished its last submission, exactly once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from domain.batches import Batch, batch_payload
from domain.events import EventType, NewEvent
from domain.ports import UnitOfWork


def batch_event(kind: EventType, batch: Batch) -> NewEvent:
    return NewEvent(
        type=kind, owner_id=batch.owner_id, subject_id=batch.id, payload=batch_payload(batch)
    )


async def settle(uow: UnitOfWork, batch_ids: Iterable[UUID | None], now: datetime) -> None:
    """Call after the submissions changed, in the same transaction: the batches whose every
    submission is now finished are completed, each with one BATCH_COMPLETED event.

    The repository locks the batch rows (in id order, so two settlers never deadlock) before
    counting, so of two transactions finishing a batch's last two submissions the second to
    lock sees the first's commit: the batch is completed once, never zero or two times."""
    distinct = sorted({i for i in batch_ids if i is not None})
    if not distinct:
        return
    completed = await uow.batches.settle(distinct, now)
    await uow.events.append([batch_event(EventType.BATCH_COMPLETED, b) for b in completed])
