"""Use cases for callbacks: the viewer's callback secret, checking a callbackUrl, and sending
the callbacks the webhook fan-out queued (one per finished submission or batch)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from domain.callbacks import CallbackDelivery, DueCallback
from domain.errors import InvalidInput
from domain.ports import Clock, UnitOfWork, UrlGuard, WebhookSender
from domain.principal import Principal
from domain.services.webhooks import next_state, url_problem
from domain.webhooks import DeliveryOutcome, DeliveryStatus, Jitter, RetrySchedule, new_secret

# A message about a secret, not one.
NO_SECRET = (
    "needs a callback secret to sign callbacks with: run the rotateCallbackSecret mutation "  # noqa: S105
    "once and keep the secret it shows"
)


async def rotate_secret(uow: UnitOfWork, principal: Principal, *, clock: Clock) -> str:
    """A new callback secret for the viewer (the first one, or a replacement); shown once.
    Callbacks not yet sent are signed with it: they are signed when sent."""
    secret = new_secret()
    async with uow:
        await uow.callbacks.set_secret(principal.user_id, secret, clock())
        await uow.commit()
    return secret


async def check_callback_url(
    uow: UnitOfWork, guard: UrlGuard, principal: Principal, url: str | None, path: str
) -> None:
    """BAD_USER_INPUT at `path` unless the URL is well formed, passes the SSRF guard and
    the viewer has a callback secret to sign with."""
    if url is None:
        return
    if problem := url_problem(url):
        raise InvalidInput({path: problem})
    async with uow:
        has_secret = await uow.callbacks.has_secret(principal.user_id)
    if not has_secret:
        raise InvalidInput({path: NO_SECRET})
    try:
        await guard.check(url)
    except InvalidInput as refused:
        raise InvalidInput({path: "; ".join(refused.fields.values())}) from None


async def claim_due(
    uow: UnitOfWork, *, limit: int, lease_seconds: float, clock: Clock
) -> list[DueCallback]:
    now = clock()
    async with uow:
        claimed = await uow.callbacks.claim(limit, now, now + timedelta(seconds=lease_seconds))
        await uow.commit()
    return claimed


def after_attempt(
    delivery: CallbackDelivery,
    outcome: DeliveryOutcome,
    schedule: RetrySchedule,
    *,
    clock: Clock,
    uniform: Jitter = random.uniform,
) -> CallbackDelivery:
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


async def deliver(
    uow: UnitOfWork,
    sender: WebhookSender,
    due: DueCallback,
    schedule: RetrySchedule,
    *,
    clock: Clock,
) -> CallbackDelivery | None:
    """Send one claimed callback and record the outcome; None when the claim was lost."""
    if due.secret is None:
        outcome = DeliveryOutcome(None, "the owner has no callback secret any more", 0)
    else:
        outcome = await sender.send(due.message())
    updated = after_attempt(due.delivery, outcome, schedule, clock=clock)
    async with uow:
        held = await uow.callbacks.finish_attempt(due.delivery, updated)
        await uow.commit()
    return updated if held else None


async def release(uow: UnitOfWork, claimed: Sequence[DueCallback]) -> None:
    async with uow:
        for due in claimed:
            await uow.callbacks.release(due.delivery)
        await uow.commit()


async def delivery_counts(uow: UnitOfWork) -> dict[DeliveryStatus, int]:
    """Callbacks in each status, every status present (for /metrics)."""
    async with uow:
        counts = await uow.callbacks.count_by_status()
    return {status: counts.get(status, 0) for status in DeliveryStatus}
