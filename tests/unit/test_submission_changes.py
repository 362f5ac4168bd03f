"""A SubmissionChange stands for its events: each submission's, then its result's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.event_payloads import SubmissionChange, events_of, result_payload, submission_payload
from domain.events import EventType
from domain.submissions import Result, Submission, SubmissionStatus

NOW = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)


def _submission() -> Submission:
    return Submission(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        input={"x": 1},
        status=SubmissionStatus.SUCCEEDED,
        error=None,
        attempts=1,
        idempotency_key=None,
        created_at=NOW,
        updated_at=NOW,
    )


def _result(of: Submission) -> Result:
    return Result(
        id=uuid.uuid4(),
        submission_id=of.id,
        owner_id=of.owner_id,
        prediction={"label": "a"},
        confidence=0.5,
        alternatives=(),
        model_version="1",
        processing_time_ms=1,
        created_at=NOW,
    )


def test_a_change_stands_for_its_status_then_its_results_creation_when_it_announces_it() -> None:
    first, second = _submission(), _submission()
    result = _result(first)
    told = events_of(
        [
            SubmissionChange(EventType.SUBMISSION_SUCCEEDED, first, result, announces_result=True),
            SubmissionChange(EventType.SUBMISSION_UPDATED, second),
        ]
    )
    assert [(e.type, e.subject_id) for e in told] == [
        (EventType.SUBMISSION_SUCCEEDED, first.id),
        (EventType.RESULT_CREATED, result.id),
        (EventType.SUBMISSION_UPDATED, second.id),
    ]
    assert told[0].payload == submission_payload(first, result)
    assert told[1].payload == result_payload(result)
    assert told[2].payload == submission_payload(second)


def test_a_change_whose_result_is_another_submissions_is_refused() -> None:
    with pytest.raises(ValueError, match="its submission's"):
        SubmissionChange(EventType.SUBMISSION_SUCCEEDED, _submission(), _result(_submission()))
