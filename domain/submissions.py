"""Submissions (inference requests) and their results, with the state machine that guards them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.errors import Conflict, InvalidInput
from domain.events import NewEvent
from domain.models import JSONValue

# Submission metadata: a client's own labels (an order number, a device), bounded so a
# submission's row stays small.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    key: str
    value: str


Metadata = tuple[MetadataEntry, ...]  # sorted by key, keys distinct


def checked_metadata(pairs: Sequence[tuple[str, str]], path: str) -> Metadata:
    """Key/value pairs as stored (sorted by key); InvalidInput naming each bad one: more
    than 16 pairs, a key of 0 or more than 64 characters or with control characters, a
    value of more than 256 characters, a key given twice."""
    if len(pairs) > MAX_METADATA_PAIRS:
        raise InvalidInput({path: f"at most {MAX_METADATA_PAIRS} pairs, got {len(pairs)}"})
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for n, (key, value) in enumerate(pairs):
        key_problem = metadata_key_problem(key)
        if key_problem is None and key in seen:
            key_problem = "names a key given before"
        if key_problem is not None:
            problems[f"{path}.{n}.key"] = key_problem
        if len(value) > MAX_METADATA_VALUE:
            problems[f"{path}.{n}.value"] = f"must be at most {MAX_METADATA_VALUE} characters"
        seen.add(key)
    if problems:
        raise InvalidInput(problems)
    return tuple(MetadataEntry(k, v) for k, v in sorted(pairs))


def metadata_key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= MAX_METADATA_KEY:
        return f"must be 1 to {MAX_METADATA_KEY} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "must not contain control characters"
    return None


class SubmissionStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Submission:
    id: UUID
    owner_id: UUID
    model_id: UUID
    input: JSONValue
    status: SubmissionStatus
    error: str | None
    attempts: int
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    batch_id: UUID | None = None  # set when made by batchInference
    callback_url: str | None = None  # POSTed once, when the submission finishes
    metadata: Metadata = ()

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def moved(
        self, status: SubmissionStatus, error: str | None, attempts: int, updated_at: datetime
    ) -> Submission:
        """This submission in another state: dataclasses.replace without its look at every
        field (a third of the cost; a batch moves thousands)."""
        return Submission(
            id=self.id,
            owner_id=self.owner_id,
            model_id=self.model_id,
            input=self.input,
            status=status,
            error=error,
            attempts=attempts,
            idempotency_key=self.idempotency_key,
            created_at=self.created_at,
            updated_at=updated_at,
            batch_id=self.batch_id,
            callback_url=self.callback_url,
            metadata=self.metadata,
        )

    def cancelled(self, now: datetime) -> Submission:
        if self.status is not SubmissionStatus.PENDING:
            raise Conflict(f"only a PENDING submission can be cancelled; this one is {self.status}")
        return self.moved(SubmissionStatus.CANCELLED, self.error, self.attempts, now)

    def retried(self, now: datetime) -> Submission:
        if self.status is not SubmissionStatus.FAILED:
            raise Conflict(f"only a FAILED submission can be retried; this one is {self.status}")
        return self.moved(SubmissionStatus.PENDING, None, 0, now)


@dataclass(frozen=True, slots=True)
class ClaimEnd:
    """How a claimed submission leaves RUNNING: finished (SUCCEEDED or FAILED), or PENDING
    again from `available_at` (a transient failure, retried after a backoff)."""

    claimed: Submission
    status: SubmissionStatus
    error: str | None = None
    available_at: datetime | None = None


FINISHED = frozenset(
    {SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED}
)


@dataclass(frozen=True, slots=True)
class Alternative:
    value: JSONValue
    confidence: float


@dataclass(frozen=True, slots=True)
class Result:
    id: UUID
    submission_id: UUID
    owner_id: UUID
    prediction: JSONValue
    confidence: float | None
    alternatives: tuple[Alternative, ...]
    model_version: str
    processing_time_ms: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a model runtime returns for one input."""

    prediction: JSONValue
    confidence: float | None
    alternatives: tuple[Alternative, ...]
    processing_time_ms: int


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A submission that ran before it was stored (runInference): as it ended, its result
    (None when it failed) and its events, in order."""

    submission: Submission
    result: Result | None
    events: Sequence[NewEvent]
