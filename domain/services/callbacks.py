"""Use cases for callbacks: the viewer's callback secret, checking a callbackUrl, and sending
the callbacks the webhook fan-out queued (one per finished submission or batch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from domain.callbacks import CallbackDelivery, DueCallback
from domain.errors import InvalidInput
from domain.ports import Clock, UnitOfWork, UrlGuard, WebhookSender
from domain.principal import Principal
from domain.services.webhooks import record_outcome, url_problem
from domain.webhooks import DeliveryOutcome, DeliveryStatus, RetrySchedule, new_secret

# A message about a secret, not one.
NO_SECRET = (
    "needs a callback secret to sign callbacks with: run the rotateCallbackSecret mutation "  # noqa: S105
    "once and keep the secret it shows"
)


async def rotate_secret(uow: UnitOfWork, principal: Principal, *, clock: Clock) -> str:
    """A new callback secret for the viewer (the first one, or a replacement); shown once.
    Callbacks not yet sent are signed with it: they are signed when sent. Not with an API
    key: the secret signs every callback of the user, so its holder could forge them."""
    principal.require_person("rotate the callback secret")
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
    return await record_outcome(
        uow,
        due.delivery,
        outcome,
        schedule,
        clock=clock,
        finish=lambda updated: uow.callbacks.finish_attempt(due.delivery, updated),
    )


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
