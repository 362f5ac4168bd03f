"""Callbacks: the callback secret, checking a callbackUrl, and one delivery's retry schedule."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime

import pytest

from domain.callbacks import CallbackDelivery, callback_id
from domain.errors import InvalidInput
from domain.events import Event, EventType
from domain.services import callbacks
from domain.webhooks import DeliveryOutcome, DeliveryStatus, RetrySchedule, WebhookMessage
from graph.schema.batches import _next_burst
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork
from tests.unit.test_submission_services import principal
from tests.unit.webhook_fakes import FakeUrlGuard

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://example.com/hook"


class RecordingSender:
    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.sent: list[WebhookMessage] = []

    async def send(self, message: WebhookMessage) -> DeliveryOutcome:
        self.sent.append(message)
        return DeliveryOutcome(self.codes.pop(0), None, 1)


def queued(data: FakeData, owner: uuid.UUID) -> CallbackDelivery:
    delivery = CallbackDelivery(
        id=uuid.uuid4(),
        owner_id=owner,
        subject_id=uuid.uuid4(),
        url=URL,
        event_id=7,
        event_type="batch.completed",
        payload={"batchId": "b"},
        status=DeliveryStatus.PENDING,
        attempts=0,
        last_status_code=None,
        last_error=None,
        next_attempt_at=NOW,
        created_at=NOW,
    )
    data.callbacks[delivery.id] = delivery
    return delivery


async def test_rotate_makes_a_standard_webhooks_secret_and_replaces_it_after() -> None:
    data = FakeData()
    viewer = principal()
    first = await callbacks.rotate_secret(FakeUnitOfWork(data), viewer, clock=FakeClock())
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    second = await callbacks.rotate_secret(FakeUnitOfWork(data), viewer, clock=FakeClock())
    assert second != first
    assert data.callback_secrets == {viewer.user_id: second}


async def test_a_callback_url_without_a_secret_says_how_to_make_one() -> None:
    with pytest.raises(InvalidInput) as refused:
        await callbacks.check_callback_url(
            FakeUnitOfWork(), FakeUrlGuard(), principal(), URL, "input.callbackUrl"
        )
    assert refused.value.fields == {"input.callbackUrl": callbacks.NO_SECRET}
    assert "rotateCallbackSecret" in callbacks.NO_SECRET


async def test_a_callback_url_is_checked_by_the_ssrf_guard_at_its_own_path() -> None:
    data = FakeData()
    viewer = principal()
    await callbacks.rotate_secret(FakeUnitOfWork(data), viewer, clock=FakeClock())
    guard = FakeUrlGuard(refused={URL})
    with pytest.raises(InvalidInput) as refused:
        await callbacks.check_callback_url(
            FakeUnitOfWork(data), guard, viewer, URL, "input.callbackUrl"
        )
    assert refused.value.fields == {"input.callbackUrl": "resolves to a private address"}
    await callbacks.check_callback_url(
        FakeUnitOfWork(data), FakeUrlGuard(), viewer, URL, "input.callbackUrl"
    )


async def test_a_callback_is_retried_on_the_schedule_with_one_id_then_dead() -> None:
    data = FakeData()
    viewer = principal()
    secret = await callbacks.rotate_secret(FakeUnitOfWork(data), viewer, clock=FakeClock(NOW))
    delivery = queued(data, viewer.user_id)
    sender = RecordingSender(500, 500, 500)
    schedule = RetrySchedule((0.0, 0.0))
    for _ in range(3):
        [due] = await callbacks.claim_due(
            FakeUnitOfWork(data), limit=5, lease_seconds=0, clock=FakeClock(NOW)
        )
        await callbacks.deliver(FakeUnitOfWork(data), sender, due, schedule, clock=FakeClock(NOW))
    assert data.callbacks[delivery.id].status is DeliveryStatus.DEAD
    assert {m.webhook_id for m in sender.sent} == {callback_id(7)}
    assert {m.secrets for m in sender.sent} == {(secret,)}
    assert (
        await callbacks.claim_due(
            FakeUnitOfWork(data), limit=5, lease_seconds=0, clock=FakeClock(NOW)
        )
        == []
    )


async def test_a_callback_whose_owner_lost_the_secret_fails_without_sending() -> None:
    data = FakeData()
    delivery = queued(data, uuid.uuid4())
    sender = RecordingSender()
    [due] = await callbacks.claim_due(
        FakeUnitOfWork(data), limit=5, lease_seconds=0, clock=FakeClock(NOW)
    )
    assert due.secret is None
    updated = await callbacks.deliver(
        FakeUnitOfWork(data), sender, due, RetrySchedule((1.0,)), clock=FakeClock(NOW)
    )
    assert updated is not None
    assert updated.status is DeliveryStatus.FAILED
    assert sender.sent == []
    assert data.callbacks[delivery.id].status is DeliveryStatus.FAILED


def event(kind: EventType, n: int) -> Event:
    return Event(n, kind, uuid.uuid4(), uuid.uuid4(), {}, NOW)


async def test_batch_messages_merge_the_events_of_a_window_but_never_hold_the_end() -> None:
    queue: asyncio.Queue[Event | Exception] = asyncio.Queue()
    for n in range(50):
        queue.put_nowait(event(EventType.SUBMISSION_SUCCEEDED, n))
    loop = asyncio.get_running_loop()
    burst = await _next_burst(queue, loop.time() + 0.05)
    assert len(burst) == 50  # one message for fifty changes
    queue.put_nowait(event(EventType.SUBMISSION_SUCCEEDED, 51))
    queue.put_nowait(event(EventType.BATCH_COMPLETED, 52))
    queue.put_nowait(event(EventType.SUBMISSION_SUCCEEDED, 53))
    # Far from the window's end, the terminal event still closes the burst at once.
    burst = await _next_burst(queue, loop.time() + 3600)
    assert [e.id for e in burst] == [51, 52]


async def test_a_failure_of_the_event_stream_reaches_the_subscriber() -> None:
    queue: asyncio.Queue[Event | Exception] = asyncio.Queue()
    queue.put_nowait(RuntimeError("listener gone"))
    with pytest.raises(RuntimeError, match="listener gone"):
        await _next_burst(queue, 0.0)
