"""In-memory fakes of the webhook ports, for service tests without I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self, cast
from uuid import UUID

from domain.errors import InvalidInput
from domain.pagination import Page, PageRequest
from domain.ports import UnitOfWork
from domain.webhooks import (
    DeliveryAttempt,
    DeliveryStatus,
    DueDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)


@dataclass
class FakeWebhookRepository:
    endpoints: dict[UUID, WebhookEndpoint] = field(default_factory=dict)
    deliveries: dict[UUID, WebhookDelivery] = field(default_factory=dict)
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    async def get_endpoints(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookEndpoint | None]:
        found = [self.endpoints.get(i) for i in ids]
        return [e if e is not None and e.owner_id == owner_id else None for e in found]

    async def list_endpoints(self, owner_id: UUID) -> list[WebhookEndpoint]:
        return [e for e in self.endpoints.values() if e.owner_id == owner_id]

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self.endpoints[endpoint.id] = endpoint

    async def save_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None:
        if endpoint.id not in self.endpoints:
            return None
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    async def delete_endpoint(self, owner_id: UUID, endpoint_id: UUID) -> bool:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.owner_id != owner_id:
            return False
        del self.endpoints[endpoint_id]
        return True

    async def get_deliveries(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookDelivery | None]:
        found = [self.deliveries.get(i) for i in ids]
        return [d if d is not None and d.owner_id == owner_id else None for d in found]

    async def list_deliveries_for_endpoints(
        self, endpoint_ids: Sequence[UUID], request: PageRequest
    ) -> list[Page[WebhookDelivery]]:
        return [
            Page.from_overfetch(
                [d for d in self.deliveries.values() if d.endpoint_id == i], request
            )
            for i in endpoint_ids
        ]

    async def count_deliveries_for_endpoints(self, endpoint_ids: Sequence[UUID]) -> list[int]:
        return [
            sum(1 for d in self.deliveries.values() if d.endpoint_id == i) for i in endpoint_ids
        ]

    async def requeue_delivery(
        self, delivery: WebhookDelivery, *, expected: DeliveryStatus, now: datetime
    ) -> WebhookDelivery | None:
        if self.deliveries[delivery.id].status is not expected:
            return None
        self.deliveries[delivery.id] = delivery
        return delivery

    async def fan_out(self, limit: int, now: datetime, gap_grace: timedelta) -> int:
        return 0

    async def claim_deliveries(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[DueDelivery]:
        return []

    async def finish_attempt(
        self, claimed: WebhookDelivery, updated: WebhookDelivery, attempt: DeliveryAttempt
    ) -> bool:
        self.attempts.append(attempt)
        current = self.deliveries.get(claimed.id)
        if current is None or current.attempts != claimed.attempts:
            return False
        self.deliveries[claimed.id] = updated
        return True

    async def release(self, claimed: WebhookDelivery) -> None:
        current = self.deliveries[claimed.id]
        self.deliveries[claimed.id] = replace(current, attempts=current.attempts - 1)

    async def attempts_for(self, delivery_id: UUID) -> list[DeliveryAttempt]:
        return [a for a in self.attempts if a.delivery_id == delivery_id]

    async def count_deliveries_by_status(self) -> dict[DeliveryStatus, int]:
        counts = dict.fromkeys(DeliveryStatus, 0)
        for delivery in self.deliveries.values():
            counts[delivery.status] += 1
        return counts


class FakeUnitOfWork:
    def __init__(self, webhooks: FakeWebhookRepository | None = None) -> None:
        self.webhooks = webhooks or FakeWebhookRepository()
        self.commits = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        return None

    def as_port(self) -> UnitOfWork:
        return cast(UnitOfWork, self)


@dataclass
class FakeUrlGuard:
    refused: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    async def check(self, url: str) -> None:
        self.checked.append(url)
        if url in self.refused:
            raise InvalidInput({"input.url": "resolves to a private address"})


class FixedClock:
    def __init__(self, now: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
