"""Use cases for webhooks: manage endpoints, list and redeliver deliveries, and dispatch them."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit
from uuid import UUID

from domain.callbacks import CallbackDelivery
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import EventType
from domain.ids import new_id
from domain.pagination import Page, PageRequest
from domain.ports import Clock, UnitOfWork, UrlGuard, WebhookSender
from domain.principal import Principal
from domain.webhooks import (
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    DueDelivery,
    Jitter,
    RetrySchedule,
    WebhookDelivery,
    WebhookEndpoint,
    new_secret,
)

# What a delivery queue holds: the two kinds share the retry schedule and recording.
AnyDelivery = TypeVar("AnyDelivery", WebhookDelivery, CallbackDelivery)

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
MAX_ERROR_LENGTH = 1000
# How long the fan-out waits for a gap in event ids (a transaction still in flight) to fill
# before taking it for a rolled-back one.
EVENT_GAP_GRACE = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """What the graph layer needs for webhook mutations: the SSRF guard for endpoint URLs."""

    guard: UrlGuard
    max_endpoints_per_user: int = 10


def url_problem(url: str) -> str | None:
    if not 1 <= len(url) <= MAX_URL_LENGTH:
        return f"must be 1 to {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in {"http", "https"}:
        return "must be an http or https URL"
    if not parts.hostname:
        return "must name a host"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain whitespace or control characters"
    return None


def _events_problem(events: Sequence[EventType]) -> str | None:
    if not events:
        return "must name at least one event type"
    if any(not e.is_webhook_event for e in events):
        return "contains an event type that webhooks do not carry"
    return None


def _distinct(events: Sequence[EventType]) -> tuple[EventType, ...]:
    return tuple(dict.fromkeys(events))


async def _validate(
    guard: UrlGuard,
    url: str | None,
    events: Sequence[EventType] | None,
    description: str | None,
) -> None:
    problems: dict[str, str] = {}
    if url is not None and (problem := url_problem(url)):
        problems["input.url"] = problem
    if events is not None and (problem := _events_problem(events)):
        problems["input.events"] = problem
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        problems["input.description"] = f"must be at most {MAX_DESCRIPTION_LENGTH} characters"
    if problems:
        raise InvalidInput(problems)
    if url is not None:
        await guard.check(url)


async def create_endpoint(
    uow: UnitOfWork,
    guard: UrlGuard,
    principal: Principal,
    *,
    url: str,
    events: Sequence[EventType],
    description: str,
    clock: Clock,
    max_endpoints: int = 10,
) -> WebhookEndpoint:
    """A new active endpoint with a fresh secret (the caller shows it once)."""
    await _validate(guard, url, events, description)
    now = clock()
    endpoint = WebhookEndpoint(
        id=new_id(),
        owner_id=principal.user_id,
        url=url,
        events=_distinct(events),
        description=description,
        is_active=True,
        secret=new_secret(),
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=now,
        updated_at=now,
    )
    async with uow:
        # Each endpoint multiplies every event into a delivery: a cap bounds the fan-out.
        if len(await uow.webhooks.list_endpoints(principal.user_id)) >= max_endpoints:
            raise InvalidInput({"input": f"at most {max_endpoints} webhook endpoints per user"})
        await uow.webhooks.add_endpoint(endpoint)
        await uow.commit()
    return endpoint


async def _owned_endpoint(
    uow: UnitOfWork, principal: Principal, endpoint_id: UUID
) -> WebhookEndpoint:
    [endpoint] = await uow.webhooks.get_endpoints(principal.user_id, [endpoint_id])
    if endpoint is None:
        raise NotFound("WebhookEndpoint", endpoint_id)
    return endpoint


async def _save(uow: UnitOfWork, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    saved = await uow.webhooks.save_endpoint(endpoint)
    if saved is None:  # deleted meanwhile
        raise NotFound("WebhookEndpoint", endpoint.id)
    await uow.commit()
    return saved


async def update_endpoint(
    uow: UnitOfWork,
    guard: UrlGuard,
    principal: Principal,
    endpoint_id: UUID,
    *,
    url: str | None = None,
    events: Sequence[EventType] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
    clock: Clock,
) -> WebhookEndpoint:
    """Change what is given; leave the rest."""
    async with uow:
        endpoint = await _owned_endpoint(uow, principal, endpoint_id)
        await _validate(guard, url, events, description)
        changed = replace(
            endpoint,
            url=endpoint.url if url is None else url,
            events=endpoint.events if events is None else _distinct(events),
            description=endpoint.description if description is None else description,
            is_active=endpoint.is_active if is_active is None else is_active,
            updated_at=clock(),
        )
        return await _save(uow, changed)


async def delete_endpoint(uow: UnitOfWork, principal: Principal, endpoint_id: UUID) -> UUID:
    """Delete the endpoint and, with it, its deliveries."""
    async with uow:
        if not await uow.webhooks.delete_endpoint(principal.user_id, endpoint_id):
            raise NotFound("WebhookEndpoint", endpoint_id)
        await uow.commit()
    return endpoint_id


async def rotate_secret(
    uow: UnitOfWork, principal: Principal, endpoint_id: UUID, *, clock: Clock
) -> WebhookEndpoint:
    """A new secret; the previous one keeps signing (as a second signature) for 24 hours.
    Not with an API key: its holder could forge deliveries to an endpoint the user set up."""
    principal.require_person("rotate a webhook secret")
    async with uow:
        endpoint = await _owned_endpoint(uow, principal, endpoint_id)
        return await _save(uow, endpoint.rotated(new_secret(), clock()))


async def list_endpoints(uow: UnitOfWork, principal: Principal) -> list[WebhookEndpoint]:
    """The viewer's endpoints, oldest first."""
    async with uow:
        return await uow.webhooks.list_endpoints(principal.user_id)


async def get_endpoints(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[WebhookEndpoint | None]:
    """Endpoints by id; None for those the principal does not own."""
    async with uow:
        return await uow.webhooks.get_endpoints(principal.user_id, ids)


async def get_deliveries(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[WebhookDelivery | None]:
    async with uow:
        return await uow.webhooks.get_deliveries(principal.user_id, ids)


async def _owned_endpoint_ids(
    uow: UnitOfWork, principal: Principal, endpoint_ids: Sequence[UUID]
) -> list[UUID]:
    found = await uow.webhooks.get_endpoints(principal.user_id, endpoint_ids)
    return [e.id for e in found if e is not None]


async def list_deliveries(
    uow: UnitOfWork, principal: Principal, endpoint_ids: Sequence[UUID], request: PageRequest
) -> list[Page[WebhookDelivery]]:
    """A page of deliveries per endpoint, oldest first; empty for endpoints not owned."""
    async with uow:
        owned = await _owned_endpoint_ids(uow, principal, endpoint_ids)
        pages = await uow.webhooks.list_deliveries_for_endpoints(owned, request) if owned else []
    by_endpoint = dict(zip(owned, pages, strict=True))
    return [by_endpoint.get(i, Page.empty()) for i in endpoint_ids]


async def count_deliveries(
    uow: UnitOfWork, principal: Principal, endpoint_ids: Sequence[UUID]
) -> list[int]:
    async with uow:
        owned = await _owned_endpoint_ids(uow, principal, endpoint_ids)
        counts = await uow.webhooks.count_deliveries_for_endpoints(owned) if owned else []
    by_endpoint = dict(zip(owned, counts, strict=True))
    return [by_endpoint.get(i, 0) for i in endpoint_ids]


async def redeliver(
    uow: UnitOfWork, principal: Principal, delivery_id: UUID, *, clock: Clock
) -> WebhookDelivery:
    """DEAD or FAILED -> PENDING, due now; CONFLICT otherwise."""
    async with uow:
        [delivery] = await uow.webhooks.get_deliveries(principal.user_id, [delivery_id])
        if delivery is None:
            raise NotFound("WebhookDelivery", delivery_id)
        now = clock()
        requeued = await uow.webhooks.requeue_delivery(
            delivery.requeued(now), expected=delivery.status, now=now
        )
        if requeued is None:
            raise Conflict("the delivery changed state meanwhile; read it and try again")
        await uow.commit()
    return requeued


# ------------------------------------------------------------------- the dispatcher's use cases


async def fan_out(uow: UnitOfWork, *, clock: Clock, limit: int = 500) -> int:
    """Turn new events into deliveries for the owner's active, subscribed endpoints.

    Returns how many events were looked at; the cursor moves in the same transaction as the
    inserts, so every event is fanned out once even when a process dies between steps.
    """
    async with uow:
        seen = await uow.webhooks.fan_out(limit, clock(), EVENT_GAP_GRACE)
        await uow.commit()
    return seen


async def claim_due_deliveries(
    uow: UnitOfWork, *, limit: int, lease_seconds: float, clock: Clock
) -> list[DueDelivery]:
    now = clock()
    async with uow:
        claimed = await uow.webhooks.claim_deliveries(
            limit, now, now + timedelta(seconds=lease_seconds)
        )
        await uow.commit()
    return claimed


def next_state(
    attempts: int,
    outcome: DeliveryOutcome,
    schedule: RetrySchedule,
    *,
    now: datetime,
    uniform: Jitter,
) -> tuple[DeliveryStatus, datetime | None, str | None]:
    """Status, next attempt time and error after `attempts` attempts ended in `outcome`
    (shared by webhooks and callbacks)."""
    error = None if outcome.error is None else outcome.error[:MAX_ERROR_LENGTH]
    if outcome.is_success:
        return DeliveryStatus.SUCCEEDED, None, error
    if (delay := schedule.delay_after(attempts, uniform)) is not None:
        return DeliveryStatus.FAILED, now + timedelta(seconds=delay), error
    return DeliveryStatus.DEAD, None, error


def after_attempt(
    delivery: AnyDelivery,
    outcome: DeliveryOutcome,
    schedule: RetrySchedule,
    *,
    clock: Clock,
    uniform: Jitter = random.uniform,
) -> AnyDelivery:
    """2xx SUCCEEDED; else FAILED due again after the schedule's next step, or DEAD after it
    (shared by webhooks and callbacks)."""
    status, next_attempt_at, error = next_state(
        delivery.attempts, outcome, schedule, now=clock(), uniform=uniform
    )
    return replace(
        delivery,
        status=status,
        last_status_code=outcome.status_code,
        last_error=error,
        next_attempt_at=next_attempt_at,
    )


async def record_attempt(
    uow: UnitOfWork,
    delivery: WebhookDelivery,
    outcome: DeliveryOutcome,
    schedule: RetrySchedule,
    *,
    clock: Clock,
    uniform: Jitter = random.uniform,
) -> WebhookDelivery | None:
    """Record the attempt and the delivery's next state; None when the claim was lost."""

    def attempt(updated: WebhookDelivery) -> DeliveryAttempt:
        return DeliveryAttempt(
            id=new_id(),
            delivery_id=delivery.id,
            attempt=delivery.attempts,
            status_code=outcome.status_code,
            error=updated.last_error,
            duration_ms=outcome.duration_ms,
            created_at=clock(),
        )

    return await record_outcome(
        uow,
        delivery,
        outcome,
        schedule,
        clock=clock,
        uniform=uniform,
        finish=lambda updated: uow.webhooks.finish_attempt(delivery, updated, attempt(updated)),
    )


async def record_outcome(
    uow: UnitOfWork,
    delivery: AnyDelivery,
    outcome: DeliveryOutcome,
    schedule: RetrySchedule,
    *,
    clock: Clock,
    finish: Callable[[AnyDelivery], Awaitable[bool]],
    uniform: Jitter = random.uniform,
) -> AnyDelivery | None:
    """Write a claimed delivery's next state with `finish` (run inside the unit of work, it says
    whether the claim still held); None when the claim was lost. Shared by webhooks and
    callbacks."""
    updated = after_attempt(delivery, outcome, schedule, clock=clock, uniform=uniform)
    async with uow:
        held = await finish(updated)
        await uow.commit()
    return updated if held else None


async def deliver(
    uow: UnitOfWork,
    sender: WebhookSender,
    due: DueDelivery,
    schedule: RetrySchedule,
    *,
    clock: Clock,
) -> WebhookDelivery | None:
    """Send one claimed delivery and record what happened."""
    outcome = await sender.send(due.message(clock()))
    return await record_attempt(uow, due.delivery, outcome, schedule, clock=clock)


async def release(uow: UnitOfWork, claimed: Sequence[DueDelivery]) -> None:
    async with uow:
        for due in claimed:
            await uow.webhooks.release(due.delivery)
        await uow.commit()


async def delivery_counts(uow: UnitOfWork) -> dict[DeliveryStatus, int]:
    """Deliveries in each status, every status present (for /metrics)."""
    async with uow:
        counts = await uow.webhooks.count_deliveries_by_status()
    return {status: counts.get(status, 0) for status in DeliveryStatus}
