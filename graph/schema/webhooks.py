"""GraphQL types, queries and mutations for webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.errors import NotFound
from domain.events import EventType
from domain.ports import UrlGuard
from domain.services import webhooks
from domain.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from graph.ids import page_request, required_id, to_global_id
from graph.schema.declarations import ReferenceOnly, declared, reference_only
from graph.schema.nodes import AppInfo, Connection, Node, connection

strawberry.enum(DeliveryStatus, name="DeliveryStatus")


@strawberry.enum(name="EventType")
class WebhookEventType(Enum):
    """The events a webhook endpoint can subscribe to (the domain has internal ones too)."""

    SUBMISSION_CREATED = "SUBMISSION_CREATED"
    SUBMISSION_SUCCEEDED = "SUBMISSION_SUCCEEDED"
    SUBMISSION_FAILED = "SUBMISSION_FAILED"
    RESULT_CREATED = "RESULT_CREATED"
    ASSET_AVAILABLE = "ASSET_AVAILABLE"
    ASSET_DELETED = "ASSET_DELETED"
    BATCH_COMPLETED = "BATCH_COMPLETED"

    @property
    def domain(self) -> EventType:
        return EventType(self.value)

    @classmethod
    def of(cls, event_type: EventType) -> WebhookEventType:
        return cls(event_type.value)


def _domain_events(events: list[WebhookEventType] | None) -> list[EventType] | None:
    return None if events is None else [e.domain for e in events]


_WEBHOOKS = "webhooks: owner-scoped reads, not yet declared"


@reference_only(_WEBHOOKS)
@strawberry.type(name="WebhookEndpoint")
class WebhookEndpointType(Node):
    url: str
    events: list[WebhookEventType]
    description: str
    is_active: bool
    created_at: datetime
    entity: strawberry.Private[WebhookEndpoint]

    @classmethod
    def from_entity(cls, endpoint: WebhookEndpoint) -> WebhookEndpointType:
        # The secret is deliberately not a field: it is shown once, in create and rotate payloads.
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", endpoint.id)),
            url=endpoint.url,
            events=[WebhookEventType.of(e) for e in endpoint.events],
            description=endpoint.description,
            is_active=endpoint.is_active,
            created_at=endpoint.created_at,
            entity=endpoint,
        )

    @strawberry.field(description="Deliveries to this endpoint, oldest first.")
    async def deliveries(
        self, info: AppInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[WebhookDeliveryType]:
        loaders, endpoint = info.context.loaders, self.entity
        request = page_request(first, after)
        page = await loaders.delivery_page_by_endpoint.load((endpoint.id, request))
        return connection(
            page,
            lambda d: WebhookDeliveryType.from_entity(d, endpoint),
            lambda: loaders.delivery_count_by_endpoint.load((endpoint.id, None)),
        )


@reference_only(_WEBHOOKS)
@strawberry.type(name="WebhookDelivery")
class WebhookDeliveryType(Node):
    event_type: WebhookEventType
    event_id: str
    payload: JSON
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    entity: strawberry.Private[WebhookDelivery]
    known_endpoint: strawberry.Private[WebhookEndpoint | None]

    @classmethod
    def from_entity(
        cls, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None = None
    ) -> WebhookDeliveryType:
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", delivery.id)),
            event_type=WebhookEventType.of(delivery.event_type),
            event_id=delivery.webhook_id,
            payload=JSON(delivery.payload),
            status=delivery.status,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
            entity=delivery,
            known_endpoint=endpoint,
        )

    @strawberry.field
    async def endpoint(self, info: AppInfo) -> WebhookEndpointType:
        endpoint = self.known_endpoint
        if endpoint is None:
            endpoint = await _endpoint(info, self.entity.endpoint_id)
        if endpoint is None:
            raise NotFound("WebhookEndpoint", self.entity.endpoint_id)
        return WebhookEndpointType.from_entity(endpoint)


async def _endpoint(info: AppInfo, ident: UUID) -> WebhookEndpoint | None:
    ctx = info.context
    [endpoint] = await webhooks.get_endpoints(ctx.uow(), ctx.principal, [ident])
    return endpoint


async def load_webhook_endpoint(info: AppInfo, ident: UUID) -> WebhookEndpointType | None:
    """For node lookups: the endpoint if the viewer owns it."""
    endpoint = await _endpoint(info, ident)
    return WebhookEndpointType.from_entity(endpoint) if endpoint else None


async def load_webhook_delivery(info: AppInfo, ident: UUID) -> WebhookDeliveryType | None:
    """For node lookups: the delivery if the viewer owns its endpoint."""
    ctx = info.context
    [delivery] = await webhooks.get_deliveries(ctx.uow(), ctx.principal, [ident])
    return WebhookDeliveryType.from_entity(delivery) if delivery else None


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    events: list[WebhookEventType]
    description: str | None = ""


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    events: list[WebhookEventType] | None = None
    description: str | None = None
    is_active: bool | None = None


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpointType
    secret: str = strawberry.field(description='Shown once: "whsec_" + base64 key.')


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpointType


@strawberry.type
class RotateWebhookSecretPayload:
    endpoint: WebhookEndpointType
    secret: str = strawberry.field(description="The new secret; the old one signs for 24 hours.")


@strawberry.type
class WebhookDeliveryPayload:
    delivery: WebhookDeliveryType


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID


def _guard(info: AppInfo) -> UrlGuard:
    policy = info.context.webhooks
    if policy is None:
        raise RuntimeError("webhooks are not configured: AppDependencies.webhooks is missing")
    return policy.guard


def _max_endpoints(info: AppInfo) -> int:
    policy = info.context.webhooks
    return policy.max_endpoints_per_user if policy is not None else 10


@strawberry.type
class WebhookQueries:
    @declared(ReferenceOnly(_WEBHOOKS), description="The viewer's webhook endpoints.")
    async def webhook_endpoints(self, info: AppInfo) -> list[WebhookEndpointType]:
        ctx = info.context
        found = await webhooks.list_endpoints(ctx.uow(), ctx.principal)
        return [WebhookEndpointType.from_entity(e) for e in found]


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description="Register a URL for signed event deliveries.")
    async def create_webhook_endpoint(
        self, info: AppInfo, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        ctx = info.context
        endpoint = await webhooks.create_endpoint(
            ctx.uow(),
            _guard(info),
            ctx.principal,
            url=input.url,
            events=[e.domain for e in input.events],
            description=input.description or "",
            clock=ctx.clock,
            max_endpoints=_max_endpoints(info),
        )
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpointType.from_entity(endpoint), secret=endpoint.secret
        )

    @strawberry.mutation(description="Change an endpoint's URL, events, description or state.")
    async def update_webhook_endpoint(
        self, info: AppInfo, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload:
        ctx = info.context
        endpoint = await webhooks.update_endpoint(
            ctx.uow(),
            _guard(info),
            ctx.principal,
            required_id(input.id, "WebhookEndpoint"),
            url=input.url,
            events=_domain_events(input.events),
            description=input.description,
            is_active=input.is_active,
            clock=ctx.clock,
        )
        return WebhookEndpointPayload(endpoint=WebhookEndpointType.from_entity(endpoint))

    @strawberry.mutation(description="Delete an endpoint and its deliveries.")
    async def delete_webhook_endpoint(self, info: AppInfo, id: strawberry.ID) -> DeletePayload:
        ctx = info.context
        await webhooks.delete_endpoint(ctx.uow(), ctx.principal, required_id(id, "WebhookEndpoint"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(description="A new signing secret; the old one still signs for 24 h.")
    async def rotate_webhook_secret(
        self, info: AppInfo, id: strawberry.ID
    ) -> RotateWebhookSecretPayload:
        ctx = info.context
        endpoint = await webhooks.rotate_secret(
            ctx.uow(), ctx.principal, required_id(id, "WebhookEndpoint"), clock=ctx.clock
        )
        return RotateWebhookSecretPayload(
            endpoint=WebhookEndpointType.from_entity(endpoint), secret=endpoint.secret
        )

    @strawberry.mutation(description="FAILED or DEAD -> PENDING, due now; CONFLICT otherwise.")
    async def redeliver_webhook(
        self, info: AppInfo, delivery_id: strawberry.ID
    ) -> WebhookDeliveryPayload:
        ctx = info.context
        delivery = await webhooks.redeliver(
            ctx.uow(), ctx.principal, required_id(delivery_id, "WebhookDelivery"), clock=ctx.clock
        )
        return WebhookDeliveryPayload(delivery=WebhookDeliveryType.from_entity(delivery))
