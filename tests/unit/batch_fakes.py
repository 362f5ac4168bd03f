"""In-memory fakes of the batches and callbacks repositories, over the shared FakeData."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.batches import Batch, BatchCounts, Throughput
from domain.callbacks import CallbackDelivery, DueCallback
from domain.pagination import Page, PageRequest, keyset_of
from domain.submissions import FINISHED, Submission, SubmissionStatus
from domain.webhooks import DeliveryStatus
from tests.unit.fake_pages import page_in_order

if TYPE_CHECKING:
    from tests.unit.fakes import FakeData

_RETRYABLE = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class FakeBatchRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    def _members(self, batch_id: UUID) -> list[Submission]:
        rows = self._data.submissions.values()
        members = [r.submission for r in rows if r.submission.batch_id == batch_id]
        return sorted(members, key=keyset_of)

    def _counted(self, batch: Batch) -> Batch:
        statuses = [s.status for s in self._members(batch.id)]
        counts = BatchCounts(*(statuses.count(s) for s in SubmissionStatus))
        return replace(batch, counts=counts)

    async def add(self, batch: Batch) -> None:
        self._data.batches[batch.id] = batch

    async def get_many(self, ids: Sequence[UUID]) -> list[Batch | None]:
        found = [self._data.batches.get(i) for i in ids]
        return [self._counted(b) if b else None for b in found]

    async def list_for_owner(self, owner_id: UUID, request: PageRequest) -> Page[Batch]:
        owned = [b for b in self._data.batches.values() if b.owner_id == owner_id]
        page = page_in_order(sorted(owned, key=keyset_of), request)
        return replace(page, items=[self._counted(b) for b in page.items])

    async def count_for_owner(self, owner_id: UUID) -> int:
        return sum(b.owner_id == owner_id for b in self._data.batches.values())

    def _filtered(self, batch_id: UUID, status: SubmissionStatus | None) -> list[Submission]:
        return [s for s in self._members(batch_id) if status is None or s.status is status]

    async def list_submissions(
        self, batch_ids: Sequence[UUID], request: PageRequest, status: SubmissionStatus | None
    ) -> list[Page[Submission]]:
        pages = []
        for batch_id in batch_ids:
            pages.append(page_in_order(self._filtered(batch_id, status), request))
        return pages

    async def count_submissions(
        self, batch_ids: Sequence[UUID], status: SubmissionStatus | None
    ) -> list[int]:
        return [len(self._filtered(b, status)) for b in batch_ids]

    async def cancel(self, batch: Batch, now: datetime) -> list[Submission] | None:
        stored = self._data.batches[batch.id]
        if stored.cancelled_at is not None or stored.completed_at is not None:
            return None
        cancelled = []
        for s in self._members(batch.id):
            if s.status is SubmissionStatus.PENDING:
                done = replace(s, status=SubmissionStatus.CANCELLED, updated_at=now)
                self._data.submissions[s.id].submission = done
                cancelled.append(done)
        self._data.batches[batch.id] = replace(stored, cancelled_at=now, updated_at=now)
        return cancelled

    async def settle(self, batch_ids: Sequence[UUID], now: datetime) -> list[Batch]:
        completed = []
        for batch_id in batch_ids:
            stored = self._data.batches.get(batch_id)
            if stored is None or stored.completed_at is not None:
                continue
            if all(s.status in FINISHED for s in self._members(batch_id)):
                done = replace(stored, completed_at=now, updated_at=now)
                self._data.batches[batch_id] = done
                completed.append(self._counted(done))
        return completed

    async def reopen(self, batch_id: UUID, now: datetime) -> None:
        stored = self._data.batches[batch_id]
        self._data.batches[batch_id] = replace(stored, completed_at=None, updated_at=now)

    async def throughput(self, batch: Batch) -> Throughput:
        rows = [r.submission for r in self._data.submissions.values()]
        ahead = [
            s
            for s in rows
            if s.model_id == batch.model_id
            and s.status is SubmissionStatus.PENDING
            and s.batch_id != batch.id
            and s.created_at < batch.created_at
        ]
        timings = self._data.timings.get(batch.model_id)
        return Throughput(queued_ahead=len(ahead), timings=timings)


class FakeCallbackRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def has_secret(self, user_id: UUID) -> bool:
        return user_id in self._data.callback_secrets

    async def set_secret(self, user_id: UUID, secret: str, now: datetime) -> None:
        self._data.callback_secrets[user_id] = secret

    async def for_subject(self, subject_id: UUID) -> list[CallbackDelivery]:
        return [c for c in self._data.callbacks.values() if c.subject_id == subject_id]

    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[DueCallback]:
        due = [
            c
            for c in self._data.callbacks.values()
            if c.status in _RETRYABLE and c.next_attempt_at is not None and c.next_attempt_at <= now
        ][:limit]
        claimed = []
        for c in due:
            taken = replace(c, attempts=c.attempts + 1, next_attempt_at=lease_until)
            self._data.callbacks[c.id] = taken
            secret = self._data.callback_secrets.get(c.owner_id)
            claimed.append(DueCallback(taken, secret, c.created_at))
        return claimed

    async def finish_attempt(self, claimed: CallbackDelivery, updated: CallbackDelivery) -> bool:
        current = self._data.callbacks.get(claimed.id)
        if current is None or current.attempts != claimed.attempts:
            return False
        self._data.callbacks[claimed.id] = updated
        return True

    async def release(self, claimed: CallbackDelivery) -> None:
        current = self._data.callbacks[claimed.id]
        self._data.callbacks[claimed.id] = replace(current, attempts=current.attempts - 1)

    async def count_by_status(self) -> dict[DeliveryStatus, int]:
        statuses = [c.status for c in self._data.callbacks.values()]
        return {s: statuses.count(s) for s in set(statuses)}
