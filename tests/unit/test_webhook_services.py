"""Webhook use cases against in-memory fakes: validation, ownership, rotation, retries."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from uuid import UUID

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import EventType
from domain.ids import to_global_id
from domain.principal import Principal
from domain.services import webhooks
from domain.webhooks import (
    DeliveryOutcome,
    DeliveryStatus,
    RetrySchedule,
    WebhookDelivery,
    WebhookEndpoint,
    new_secret,
)
from tests.unit.webhook_fakes import FakeUnitOfWork, FakeUrlGuard, FixedClock

ALICE = Principal(user_id=uuid.uuid4(), subject="alice", groups=(), is_admin=False)
BOB = Principal(user_id=uuid.uuid4(), subject="bob", groups=(), is_admin=True)
URL = "https://hooks.example.com/assay"


async def create(
    uow: FakeUnitOfWork,
    *,
    url: str = URL,
    events: tuple[EventType, ...] = (EventType.SUBMISSION_SUCCEEDED,),
    description: str = "",
    guard: FakeUrlGuard | None = None,
    clock: FixedClock | None = None,
) -> WebhookEndpoint:
    return await webhooks.create_endpoint(
        uow.as_port(),
        guard or FakeUrlGuard(),
        ALICE,
        url=url,
        events=events,
        description=description,
        clock=clock or FixedClock(),
    )


def make_delivery(endpoint: WebhookEndpoint, **changes: object) -> WebhookDelivery:
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        endpoint_id=endpoint.id,
        owner_id=endpoint.owner_id,
        event_id=7,
        event_type=EventType.SUBMISSION_SUCCEEDED,
        payload={"submissionId": "s"},
        status=DeliveryStatus.PENDING,
        attempts=1,
        last_status_code=None,
        last_error=None,
        next_attempt_at=None,
        created_at=FixedClock()(),
    )
    return replace(delivery, **changes)  # type: ignore[arg-type]  # test overrides by name


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != new_secret()


async def test_create_endpoint_stores_an_active_endpoint_after_the_guard_check() -> None:
    uow, guard = FakeUnitOfWork(), FakeUrlGuard()
    endpoint = await create(uow, guard=guard, description="ci")
    assert guard.checked == [URL]
    assert endpoint.is_active
    assert endpoint.owner_id == ALICE.user_id
    assert uow.webhooks.endpoints[endpoint.id] == endpoint
    assert endpoint.secret.startswith("whsec_")


@pytest.mark.parametrize(
    ("url", "events", "description", "path"),
    [
        ("ftp://hooks.example.com/x", (EventType.ASSET_DELETED,), "", "input.url"),
        ("https://" + "a" * 2048, (EventType.ASSET_DELETED,), "", "input.url"),
        ("https:///no-host", (EventType.ASSET_DELETED,), "", "input.url"),
        (URL, (), "", "input.events"),
        (URL, (EventType.SUBMISSION_UPDATED,), "", "input.events"),
        (URL, (EventType.ASSET_DELETED,), "x" * 501, "input.description"),
    ],
)
async def test_create_endpoint_rejects_invalid_input(
    url: str, events: tuple[EventType, ...], description: str, path: str
) -> None:
    uow, guard = FakeUnitOfWork(), FakeUrlGuard()
    with pytest.raises(InvalidInput) as caught:
        await create(uow, url=url, events=events, description=description, guard=guard)
    assert path in caught.value.fields
    assert guard.checked == []  # the network is not asked about input that is wrong anyway
    assert not uow.webhooks.endpoints


async def test_create_endpoint_refused_by_the_guard_is_bad_input_on_url() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidInput) as caught:
        await create(uow, guard=FakeUrlGuard(refused={URL}))
    assert set(caught.value.fields) == {"input.url"}


async def test_update_changes_only_what_is_given_and_checks_a_new_url() -> None:
    uow, guard = FakeUnitOfWork(), FakeUrlGuard()
    endpoint = await create(uow)
    updated = await webhooks.update_endpoint(
        uow.as_port(), guard, ALICE, endpoint.id, is_active=False, clock=FixedClock()
    )
    assert not updated.is_active
    assert updated.url == endpoint.url
    assert guard.checked == []
    moved = await webhooks.update_endpoint(
        uow.as_port(), guard, ALICE, endpoint.id, url="https://other.example/h", clock=FixedClock()
    )
    assert moved.url == "https://other.example/h"
    assert guard.checked == ["https://other.example/h"]


async def test_another_user_gets_not_found_even_an_admin() -> None:
    uow = FakeUnitOfWork()
    endpoint = await create(uow)
    port, guard, clock = uow.as_port(), FakeUrlGuard(), FixedClock()
    with pytest.raises(NotFound):
        await webhooks.update_endpoint(port, guard, BOB, endpoint.id, is_active=False, clock=clock)
    with pytest.raises(NotFound):
        await webhooks.rotate_secret(port, BOB, endpoint.id, clock=clock)
    with pytest.raises(NotFound):
        await webhooks.delete_endpoint(port, BOB, endpoint.id)
    assert await webhooks.get_endpoints(port, BOB, [endpoint.id]) == [None]
    assert await webhooks.list_endpoints(port, BOB) == []
    assert endpoint.id in uow.webhooks.endpoints


async def test_rotation_keeps_the_previous_secret_signing_for_24_hours() -> None:
    uow, clock = FakeUnitOfWork(), FixedClock()
    endpoint = await create(uow, clock=clock)
    rotated = await webhooks.rotate_secret(uow.as_port(), ALICE, endpoint.id, clock=clock)
    assert rotated.secret != endpoint.secret
    assert rotated.signing_secrets(clock()) == (rotated.secret, endpoint.secret)
    clock.advance(24 * 3600 - 1)
    assert rotated.signing_secrets(clock()) == (rotated.secret, endpoint.secret)
    clock.advance(1)
    assert rotated.signing_secrets(clock()) == (rotated.secret,)


async def test_delete_removes_the_endpoint() -> None:
    uow = FakeUnitOfWork()
    endpoint = await create(uow)
    assert await webhooks.delete_endpoint(uow.as_port(), ALICE, endpoint.id) == endpoint.id
    assert not uow.webhooks.endpoints


@pytest.mark.parametrize("status", [DeliveryStatus.DEAD, DeliveryStatus.FAILED])
async def test_redeliver_requeues_dead_or_failed_due_now(status: DeliveryStatus) -> None:
    uow, clock = FakeUnitOfWork(), FixedClock()
    endpoint = await create(uow)
    delivery = make_delivery(endpoint, status=status)
    uow.webhooks.deliveries[delivery.id] = delivery
    again = await webhooks.redeliver(uow.as_port(), ALICE, delivery.id, clock=clock)
    assert again.status is DeliveryStatus.PENDING
    assert again.next_attempt_at == clock()


@pytest.mark.parametrize("status", [DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED])
async def test_redeliver_of_pending_or_succeeded_is_conflict(status: DeliveryStatus) -> None:
    uow = FakeUnitOfWork()
    endpoint = await create(uow)
    delivery = make_delivery(endpoint, status=status)
    uow.webhooks.deliveries[delivery.id] = delivery
    with pytest.raises(Conflict):
        await webhooks.redeliver(uow.as_port(), ALICE, delivery.id, clock=FixedClock())


async def test_redeliver_of_another_users_delivery_is_not_found() -> None:
    uow = FakeUnitOfWork()
    delivery = make_delivery(await create(uow), status=DeliveryStatus.DEAD)
    uow.webhooks.deliveries[delivery.id] = delivery
    with pytest.raises(NotFound):
        await webhooks.redeliver(uow.as_port(), BOB, delivery.id, clock=FixedClock())


def outcome(status_code: int | None, error: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(status_code=status_code, error=error, duration_ms=12)


SCHEDULE = RetrySchedule((10, 100))


def test_a_2xx_answer_succeeds() -> None:
    endpoint = WebhookEndpointFactory.make()
    done = webhooks.after_attempt(
        make_delivery(endpoint), outcome(204), SCHEDULE, clock=FixedClock()
    )
    assert done.status is DeliveryStatus.SUCCEEDED
    assert done.next_attempt_at is None
    assert done.last_status_code == 204


@pytest.mark.parametrize(("attempts", "base"), [(1, 10), (2, 100)])
def test_a_failure_is_retried_after_the_schedule_step_with_jitter(attempts: int, base: int) -> None:
    clock = FixedClock()
    delivery = make_delivery(WebhookEndpointFactory.make(), attempts=attempts)
    low = webhooks.after_attempt(
        delivery, outcome(500, "HTTP 500"), SCHEDULE, clock=clock, uniform=lambda a, b: a
    )
    high = webhooks.after_attempt(
        delivery, outcome(None, "timeout"), SCHEDULE, clock=clock, uniform=lambda a, b: b
    )
    assert low.status is DeliveryStatus.FAILED
    assert low.last_error == "HTTP 500"
    assert low.next_attempt_at is not None
    assert high.next_attempt_at is not None
    assert (low.next_attempt_at - clock()).total_seconds() == pytest.approx(base * 0.9)
    assert (high.next_attempt_at - clock()).total_seconds() == pytest.approx(base * 1.1)


def test_a_failure_after_the_last_step_is_dead() -> None:
    delivery = make_delivery(WebhookEndpointFactory.make(), attempts=3)
    dead = webhooks.after_attempt(delivery, outcome(503), SCHEDULE, clock=FixedClock())
    assert dead.status is DeliveryStatus.DEAD
    assert dead.next_attempt_at is None
    assert SCHEDULE.max_attempts == 3


async def test_record_attempt_records_every_attempt_and_respects_the_fence() -> None:
    uow = FakeUnitOfWork()
    endpoint = await create(uow)
    delivery = make_delivery(endpoint)
    uow.webhooks.deliveries[delivery.id] = delivery
    port, clock = uow.as_port(), FixedClock()
    failed = await webhooks.record_attempt(port, delivery, outcome(500), SCHEDULE, clock=clock)
    assert failed is not None
    assert failed.status is DeliveryStatus.FAILED
    # A stale claim (another dispatcher took the row since) records history but not state.
    uow.webhooks.deliveries[delivery.id] = replace(failed, attempts=2)
    assert (
        await webhooks.record_attempt(port, delivery, outcome(200), SCHEDULE, clock=clock) is None
    )
    assert [a.status_code for a in uow.webhooks.attempts] == [500, 200]
    assert uow.webhooks.deliveries[delivery.id].status is DeliveryStatus.FAILED


def test_endpoint_wants_only_subscribed_webhook_events_while_active() -> None:
    endpoint = WebhookEndpointFactory.make(events=(EventType.ASSET_DELETED,))
    assert endpoint.wants(EventType.ASSET_DELETED)
    assert not endpoint.wants(EventType.ASSET_AVAILABLE)
    assert not endpoint.wants(EventType.SUBMISSION_UPDATED)
    assert not replace(endpoint, is_active=False).wants(EventType.ASSET_DELETED)


class WebhookEndpointFactory:
    @staticmethod
    def make(
        owner_id: UUID = ALICE.user_id,
        events: tuple[EventType, ...] = (EventType.SUBMISSION_SUCCEEDED,),
    ) -> WebhookEndpoint:
        now = FixedClock()()
        return WebhookEndpoint(
            id=uuid.uuid4(),
            owner_id=owner_id,
            url=URL,
            events=events,
            description="",
            is_active=True,
            secret=new_secret(),
            previous_secret=None,
            previous_secret_expires_at=None,
            created_at=now,
            updated_at=now,
        )


async def test_endpoints_per_user_are_capped_and_the_cap_is_bad_input() -> None:
    uow = FakeUnitOfWork()
    for n in range(3):
        await webhooks.create_endpoint(
            uow.as_port(),
            FakeUrlGuard(),
            ALICE,
            url=f"{URL}/{n}",
            events=(EventType.SUBMISSION_SUCCEEDED,),
            description="",
            clock=FixedClock(),
            max_endpoints=3,
        )
    with pytest.raises(InvalidInput) as refused:
        await webhooks.create_endpoint(
            uow.as_port(),
            FakeUrlGuard(),
            ALICE,
            url=URL,
            events=(EventType.SUBMISSION_SUCCEEDED,),
            description="",
            clock=FixedClock(),
            max_endpoints=3,
        )
    assert refused.value.fields == {"input": "at most 3 webhook endpoints per user"}
    assert len(await webhooks.list_endpoints(uow.as_port(), ALICE)) == 3


def test_a_not_found_message_names_the_api_id_not_the_raw_uuid() -> None:
    ident = uuid.uuid4()
    message = str(NotFound("Submission", ident))
    assert str(ident) not in message
    assert message == f"Submission {to_global_id('Submission', ident)} not found"
