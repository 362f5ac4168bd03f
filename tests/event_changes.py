"""Submission changes of every shape an event payload takes (a batch or none, an error with
characters JSON escapes, results of every JSON kind, announced or not), for the tests that
hold the store's payloads to the domain's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from domain.event_payloads import SubmissionChange
from domain.events import EventType
from domain.models import JSONValue
from domain.submissions import Result, Submission, SubmissionStatus


def _submission(owner: UUID, n: int, **changes: object) -> Submission:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "owner_id": owner,
        "model_id": uuid.uuid4(),
        "input": {"n": n},
        "status": SubmissionStatus.PENDING,
        "error": None,
        "attempts": 0,
        "idempotency_key": None,
        "created_at": datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        "updated_at": datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        "batch_id": None,
    }
    return Submission(**(values | changes))  # type: ignore[arg-type]  # a test's mixed values


def _result(of: Submission, prediction: JSONValue, confidence: float | None) -> Result:
    return Result(
        id=uuid.uuid4(),
        submission_id=of.id,
        owner_id=of.owner_id,
        prediction=prediction,
        confidence=confidence,
        alternatives=(),
        model_version="1.0.0",
        processing_time_ms=3,
        created_at=of.updated_at,
    )


def varied_changes(owner: UUID) -> list[SubmissionChange]:
    batch = uuid.uuid4()
    whole_second = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)  # isoformat drops .000000
    plain = _submission(owner, 0)
    batched = _submission(owner, 1, batch_id=batch, status=SubmissionStatus.RUNNING, attempts=1)
    failed = _submission(
        owner,
        2,
        status=SubmissionStatus.FAILED,
        error='model said "no"\n\\ café ✓ \t',
        attempts=3,
        updated_at=whole_second,
    )
    changes = [
        SubmissionChange(EventType.SUBMISSION_CREATED, plain),
        SubmissionChange(EventType.SUBMISSION_UPDATED, batched),
        SubmissionChange(EventType.SUBMISSION_FAILED, failed),
    ]
    predictions: list[tuple[JSONValue, float | None]] = [
        ({"species": "setosa", "scores": [0.1, 1.0, 2]}, 0.9666666666666667),
        ("versicolor", 1.0),
        (152.25, None),
        ({"ünï": None, "n": -0.0, "big": 1e300, "small": 1e-05}, 0.0),
        ([True, False, {"a": []}], 1e-05),
    ]
    for n, (prediction, confidence) in enumerate(predictions):
        done = _submission(
            owner, 3 + n, batch_id=batch if n % 2 else None, status=SubmissionStatus.SUCCEEDED
        )
        result = _result(done, prediction, confidence)
        changes.append(SubmissionChange(EventType.SUBMISSION_SUCCEEDED, done, result, n != 2))
    return changes
