"""Batches: the submissions of one batchInference, followed as one object with exact counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.errors import Conflict
from domain.ids import to_global_id
from domain.models import JSONValue


class BatchStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


FINISHED_BATCH = frozenset({BatchStatus.COMPLETED, BatchStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class BatchCounts:
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def unfinished(self) -> int:
        return self.pending + self.running

    @property
    def total(self) -> int:
        return self.unfinished + self.succeeded + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as stored, with its submissions' counts as read in the same statement."""

    id: UUID
    owner_id: UUID
    model_id: UUID
    size: int
    callback_url: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    cancelled_at: datetime | None
    counts: BatchCounts

    @property
    def status(self) -> BatchStatus:
        """COMPLETED once every submission is finished; CANCELLED once cancelBatch ran (what
        was RUNNING then still finishes); before that PENDING until one is picked up."""
        if self.cancelled_at is not None:
            return BatchStatus.CANCELLED
        if self.completed_at is not None:
            return BatchStatus.COMPLETED
        if self.counts.pending == self.size:
            return BatchStatus.PENDING
        return BatchStatus.RUNNING

    @property
    def is_finished(self) -> bool:
        """Every submission is finished (the BATCH_COMPLETED event has been written)."""
        return self.completed_at is not None

    def check_cancellable(self) -> None:
        if self.cancelled_at is not None or self.completed_at is not None:
            raise Conflict(f"only an unfinished batch can be cancelled; this one is {self.status}")


@dataclass(frozen=True, slots=True)
class Throughput:
    """What the estimate is made from: work queued ahead of the batch on its model, and how
    many of that model's submissions finished over the recent window."""

    queued_ahead: int
    finished_recently: int
    window: timedelta


def estimated_completion(batch: Batch, throughput: Throughput, now: datetime) -> datetime | None:
    """now + (work ahead + the batch's unfinished work) / the model's recent rate; None when
    the batch is finished or nothing of the model finished recently (no rate to go by)."""
    if batch.is_finished or batch.counts.unfinished == 0:
        return None
    if throughput.finished_recently <= 0:
        return None
    per_second = throughput.finished_recently / throughput.window.total_seconds()
    remaining = throughput.queued_ahead + batch.counts.unfinished
    return now + timedelta(seconds=remaining / per_second)


def batch_payload(batch: Batch) -> dict[str, JSONValue]:
    """The batch as an event records it: the webhook's and the callback's `data`."""
    counts = batch.counts
    return {
        "batchId": to_global_id("Batch", batch.id),
        "modelId": to_global_id("Model", batch.model_id),
        "status": batch.status.value,
        "size": batch.size,
        "counts": {
            "pending": counts.pending,
            "running": counts.running,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
        },
        "createdAt": batch.created_at.isoformat(),
        "completedAt": None if batch.completed_at is None else batch.completed_at.isoformat(),
    }
