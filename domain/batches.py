"""Batches: the submissions of one batchInference, followed as one object with exact counts."""

from __future__ import annotations

import math
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


# A chunk's weight in a model's timings shrinks by this factor with each newer chunk: the
# timings follow the last few dozen chunks, however long ago they ran.
KEEP_PER_CHUNK = 1 - 1 / 64
# Chunk sizes must spread at least this much (relative to their mean) to tell a chunk's fixed
# cost from its cost per row.
_MIN_SPREAD = 0.1


@dataclass(frozen=True, slots=True)
class WorkTimings:
    """A model's measured work on this deployment: weighted sums over the chunks the workers
    ran (rows in one `predict` call and one write; seconds from when its work began until it
    was written), enough to fit seconds = per_chunk + per_row x rows by least squares."""

    chunks: float
    rows: float
    seconds: float
    rows_squared: float
    rows_seconds: float
    largest_chunk: int

    @classmethod
    def of_chunk(cls, rows: int, seconds: float) -> WorkTimings:
        return cls(1.0, rows, seconds, rows * rows, rows * seconds, rows)

    def add(self, rows: int, seconds: float) -> WorkTimings:
        """These timings with one more chunk (the rollup's upsert does the same in SQL)."""
        k = KEEP_PER_CHUNK
        return WorkTimings(
            chunks=self.chunks * k + 1,
            rows=self.rows * k + rows,
            seconds=self.seconds * k + seconds,
            rows_squared=self.rows_squared * k + rows * rows,
            rows_seconds=self.rows_seconds * k + rows * seconds,
            largest_chunk=max(self.largest_chunk, rows),
        )

    def costs(self) -> tuple[float, float]:
        """(seconds per chunk, seconds per row); with chunks all of about one size, the
        whole time is taken as per row (exact for that size)."""
        if self.chunks <= 0 or self.rows <= 0:
            return 0.0, 0.0
        mean_rows, mean_seconds = self.rows / self.chunks, self.seconds / self.chunks
        spread = self.rows_squared / self.chunks - mean_rows**2
        if spread <= (mean_rows * _MIN_SPREAD) ** 2:
            return 0.0, self.seconds / self.rows
        per_row = (self.rows_seconds / self.chunks - mean_rows * mean_seconds) / spread
        per_chunk = mean_seconds - per_row * mean_rows
        if per_row < 0:  # no cost grows with rows: it is all per chunk
            return mean_seconds, 0.0
        if per_chunk < 0:  # no fixed cost: the line through the origin
            return 0.0, self.rows_seconds / self.rows_squared
        return per_chunk, per_row

    def seconds_for(self, rows: int) -> float:
        """How long `rows` of this model's submissions take, in chunks as large as measured."""
        per_chunk, per_row = self.costs()
        return math.ceil(rows / max(1, self.largest_chunk)) * per_chunk + rows * per_row


@dataclass(frozen=True, slots=True)
class Throughput:
    """What the estimate is made from: work queued ahead of the batch on its model, and the
    model's measured timings (None until a worker of this deployment has run it)."""

    queued_ahead: int
    timings: WorkTimings | None


def estimated_completion(batch: Batch, throughput: Throughput, now: datetime) -> datetime | None:
    """now + the time the model's measured timings give for the work queued ahead and the
    batch's unfinished work; None when the batch is finished or the model was never run."""
    if batch.is_finished or batch.counts.unfinished == 0 or throughput.timings is None:
        return None
    remaining = throughput.queued_ahead + batch.counts.unfinished
    return now + timedelta(seconds=throughput.timings.seconds_for(remaining))


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
