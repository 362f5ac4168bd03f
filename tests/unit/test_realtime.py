"""Events as they happened, the socket registry, and revocation, without I/O."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain.event_payloads import result_payload, submission_as_of, submission_payload
from domain.events import EventType
from domain.ids import to_global_id
from domain.services import users
from domain.submissions import Result, Submission, SubmissionStatus
from graph.realtime.sockets import SocketRegistry
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork
from tests.unit.test_user_services import identity, sign_in

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def a_submission(status: SubmissionStatus, at: datetime = NOW) -> Submission:
    return Submission(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        input={"x": 1},
        status=status,
        error=None,
        attempts=1,
        idempotency_key=None,
        created_at=NOW,
        updated_at=at,
    )


def a_result(submission: Submission) -> Result:
    return Result(
        id=uuid.uuid4(),
        submission_id=submission.id,
        owner_id=submission.owner_id,
        prediction="virginica",
        confidence=0.9,
        alternatives=(),
        model_version="1.0.0",
        processing_time_ms=3,
        created_at=NOW,
    )


def test_a_success_payload_names_global_ids_and_carries_the_prediction() -> None:
    done = a_submission(SubmissionStatus.SUCCEEDED)
    result = a_result(done)
    payload = submission_payload(done, result)
    assert payload["submissionId"] == to_global_id("Submission", done.id)
    assert payload["resultId"] == to_global_id("Result", result.id)
    assert (payload["prediction"], payload["confidence"], payload["modelVersion"]) == (
        "virginica",
        0.9,
        "1.0.0",
    )
    assert result_payload(result)["submissionId"] == payload["submissionId"]
    assert str(done.id) not in str(payload)


def test_a_message_shows_the_state_its_event_recorded_not_the_rows_later_one() -> None:
    running = a_submission(SubmissionStatus.RUNNING)
    read_later = replace(
        running, status=SubmissionStatus.SUCCEEDED, updated_at=NOW + timedelta(seconds=1)
    )
    shown = submission_as_of(read_later, submission_payload(running))
    assert shown.status is SubmissionStatus.RUNNING
    assert shown.updated_at == NOW
    assert shown.input == read_later.input


async def test_revoking_a_user_closes_each_of_their_sockets_with_4403() -> None:
    sockets = SocketRegistry()
    closed: list[tuple[str, int]] = []
    ann, bob = uuid.uuid4(), uuid.uuid4()

    def closer(name: str) -> Callable[[int, str], Awaitable[None]]:
        async def close(code: int, reason: str) -> None:
            closed.append((name, code))

        return close

    for name, user in (("ann-1", ann), ("ann-2", ann), ("bob", bob)):
        slot = await sockets.admit("127.0.0.1", closer(name))
        assert slot is not None
        sockets.signed_in(slot, user, closer(name))
    assert await sockets.revoke([ann]) == 2
    assert sorted(closed) == [("ann-1", 4403), ("ann-2", 4403)]


async def test_deactivating_a_user_records_a_principal_revoked_event() -> None:
    data = FakeData()
    admin = await sign_in(data, identity("root@example.com", "admin", subject="root"))
    ann = await sign_in(data, identity())
    await users.deactivate_user(FakeUnitOfWork(data), admin, ann.user_id, clock=FakeClock())
    [event] = [e for e in data.events if e.type is EventType.PRINCIPAL_REVOKED]
    assert event.subject_id == ann.user_id
    assert not event.type.is_webhook_event
