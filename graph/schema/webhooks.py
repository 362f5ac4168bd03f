"""GraphQL types, queries and mutations for webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.errors import NotFound
from domain.events import EventType
from domain.ports import UrlGuard
from domain.services import webhooks
from domain.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from graph.execution.declarations import ReferenceOnly, declared, reference_only
from graph.ids import required_id, to_global_id
from graph.schema.nodes import (
    After,
    AppInfo,
    Before,
    Connection,
    First,
    Last,
    Node,
    Paging,
    connection,
    described_enum,
)

described_enum(
    DeliveryStatus,
    name="DeliveryStatus",
    description="Where a webhook delivery is: sent until a 2xx answer or the retry schedule ends.",
    values={
        "PENDING": "Waiting to be sent: its first attempt, or after redeliverWebhook.",
        "SUCCEEDED": "The endpoint answered 2xx.",
        "FAILED": "The last attempt failed; it is tried again at `nextAttemptAt`.",
        "DEAD": "Every attempt of the retry schedule failed; redeliverWebhook can send it again.",
    },
)
EndpointId = Annotated[
    strawberry.ID, strawberry.argument(description="The webhook endpoint's global id.")
]


class WebhookEventType(Enum):
    """The events a webhook endpoint can subscribe to (the domain has internal ones too)."""

    SUBMISSION_CREATED = "SUBMISSION_CREATED"
    SUBMISSION_SUCCEEDED = "SUBMISSION_SUCCEEDED"
    SUBMISSION_FAILED = "SUBMISSION_FAILED"
    RESULT_CREATED = "RESULT_CREATED"
    ASSET_AVAILABLE = "ASSET_AVAILABLE"
    ASSET_DELETED = "ASSET_DELETED"
    BATCH_COMPLETED = "BATCH_COMPLETED"
    MODEL_ALERT = "MODEL_ALERT"

    @property
    def domain(self) -> EventType:
        return EventType(self.value)

    @classmethod
    def of(cls, event_type: EventType) -> WebhookEventType:
        return cls(event_type.value)


described_enum(
    WebhookEventType,
    name="EventType",
    description="What happened: the kinds of webhook event.",
    values={
        "SUBMISSION_CREATED": "A submission was queued (createSubmission, runInference, "
        "batchInference).",
        "SUBMISSION_SUCCEEDED": "A submission finished with a result.",
        "SUBMISSION_FAILED": "A submission failed after its last attempt.",
        "RESULT_CREATED": "A result was recorded for a submission.",
        "ASSET_AVAILABLE": "An asset's upload was completed.",
        "ASSET_DELETED": "An asset was deleted, by its owner or by retention.",
        "BATCH_COMPLETED": "Every submission of a batch finished.",
        "MODEL_ALERT": "A model's alert was raised or cleared (sent to administrators only).",
    },
)


def _domain_events(events: list[WebhookEventType] | None) -> list[EventType] | None:
    return None if events is None else [e.domain for e in events]


_WEBHOOKS = "webhooks: owner-scoped reads, not yet declared"


@reference_only(_WEBHOOKS)
@strawberry.type(
    name="WebhookEndpoint",
    description="A URL that receives the viewer's events as signed POSTs (Standard "
    "Webhooks). Its owner's alone, also for administrators.",
)
class WebhookEndpointType(Node):
    url: str = strawberry.field(description="Where deliveries are POSTed.")
    events: list[WebhookEventType] = strawberry.field(
        description="The event types delivered to it."
    )
    description: str = strawberry.field(description="The owner's note about it; may be empty.")
    is_active: bool = strawberry.field(
        description="Whether events are delivered to it; false pauses it."
    )
    created_at: datetime = strawberry.field(description="When it was registered.")
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
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[WebhookDeliveryType]:
        loaders, endpoint = info.context.loaders, self.entity
        request = Paging(first, after, last, before).request("WebhookDelivery")
        page = await loaders.delivery_page_by_endpoint.load((endpoint.id, request))
        return connection(
            page,
            lambda d: WebhookDeliveryType.from_entity(d, endpoint),
            lambda: loaders.delivery_count_by_endpoint.load((endpoint.id, None)),
            "WebhookDelivery",
        )


@reference_only(_WEBHOOKS)
@strawberry.type(
    name="WebhookDelivery",
    description="One event sent to one webhook endpoint, with the state of its attempts.",
)
class WebhookDeliveryType(Node):
    event_type: WebhookEventType = strawberry.field(description="What happened.")
    event_id: str = strawberry.field(
        description="The `webhook-id` header (`evt_<n>`), the same on every attempt: "
        "receivers drop repeats by it."
    )
    payload: JSON = strawberry.field(
        description="The JSON body POSTed, with global ids and the event's `sequence`."
    )
    status: DeliveryStatus = strawberry.field(description="Where the delivery is.")
    attempts: int = strawberry.field(description="How many attempts were made so far.")
    last_status_code: int | None = strawberry.field(
        description="The HTTP status of the last attempt; null before one, or when no answer came."
    )
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed, when it did (at most 1,000 characters)."
    )
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due; null once SUCCEEDED or DEAD."
    )
    created_at: datetime = strawberry.field(description="When the event was queued for it.")
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

    @strawberry.field(description="The endpoint it is sent to.")
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


URL = "An http or https URL of at most 2,048 characters on a public host; BAD_USER_INPUT otherwise."
EVENTS = "The event types to deliver, at least one; BAD_USER_INPUT for none."
DESCRIPTION = "A note for the owner, at most 500 characters; BAD_USER_INPUT beyond."


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description=URL)
    events: list[WebhookEventType] = strawberry.field(description=EVENTS)
    description: str | None = strawberry.field(default="", description=DESCRIPTION)


@strawberry.input(description="Changes to an endpoint; a field left null is unchanged.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's global id.")
    url: str | None = strawberry.field(default=None, description=URL)
    events: list[WebhookEventType] | None = strawberry.field(default=None, description=EVENTS)
    description: str | None = strawberry.field(default=None, description=DESCRIPTION)
    is_active: bool | None = strawberry.field(
        default=None, description="False pauses deliveries, true resumes them."
    )


@strawberry.type(description="The new endpoint and its signing secret.")
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpointType = strawberry.field(description="The endpoint, active.")
    secret: str = strawberry.field(
        description='Shown once: "whsec_" + base64 key; verify delivery signatures with it.'
    )


@strawberry.type(description="The endpoint a mutation changed.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpointType = strawberry.field(description="The endpoint as it is now.")


@strawberry.type(description="The endpoint and its new signing secret.")
class RotateWebhookSecretPayload:
    endpoint: WebhookEndpointType = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(description="The new secret; the old one signs for 24 hours.")


@strawberry.type(description="The delivery a mutation changed.")
class WebhookDeliveryPayload:
    delivery: WebhookDeliveryType = strawberry.field(description="The delivery as it is now.")


@strawberry.type(description="What a deletion removed.")
class DeletePayload:
    deleted_id: strawberry.ID = strawberry.field(
        description="The global id of what was deleted; it names nothing any more."
    )


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
    @declared(ReferenceOnly(_WEBHOOKS), description="The viewer's webhook endpoints, oldest first.")
    async def webhook_endpoints(self, info: AppInfo) -> list[WebhookEndpointType]:
        ctx = info.context
        found = await webhooks.list_endpoints(ctx.uow(), ctx.principal)
        return [WebhookEndpointType.from_entity(e) for e in found]


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Register a URL for signed event deliveries; at most 10 endpoints per "
        "user by default. BAD_USER_INPUT for a bad field or one endpoint too many."
    )
    async def create_webhook_endpoint(
        self,
        info: AppInfo,
        input: Annotated[
            CreateWebhookEndpointInput, strawberry.argument(description="The endpoint.")
        ],
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

    @strawberry.mutation(
        description="Change an endpoint's URL, events, description or state. BAD_USER_INPUT "
        "for a bad field; NOT_FOUND unless it is the viewer's."
    )
    async def update_webhook_endpoint(
        self,
        info: AppInfo,
        input: Annotated[
            UpdateWebhookEndpointInput, strawberry.argument(description="The changes.")
        ],
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

    @strawberry.mutation(
        description="Delete an endpoint and its deliveries. NOT_FOUND unless it is the viewer's."
    )
    async def delete_webhook_endpoint(self, info: AppInfo, id: EndpointId) -> DeletePayload:
        ctx = info.context
        await webhooks.delete_endpoint(ctx.uow(), ctx.principal, required_id(id, "WebhookEndpoint"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(
        description="A new signing secret; the old one still signs for 24 hours. NOT_FOUND "
        "unless it is the viewer's."
    )
    async def rotate_webhook_secret(
        self, info: AppInfo, id: EndpointId
    ) -> RotateWebhookSecretPayload:
        ctx = info.context
        endpoint = await webhooks.rotate_secret(
            ctx.uow(), ctx.principal, required_id(id, "WebhookEndpoint"), clock=ctx.clock
        )
        return RotateWebhookSecretPayload(
            endpoint=WebhookEndpointType.from_entity(endpoint), secret=endpoint.secret
        )

    @strawberry.mutation(
        description="FAILED or DEAD -> PENDING, due now; CONFLICT in any other status. "
        "NOT_FOUND unless it is a delivery to one of the viewer's endpoints."
    )
    async def redeliver_webhook(
        self,
        info: AppInfo,
        delivery_id: Annotated[
            strawberry.ID, strawberry.argument(description="The delivery's global id.")
        ],
    ) -> WebhookDeliveryPayload:
        ctx = info.context
        delivery = await webhooks.redeliver(
            ctx.uow(), ctx.principal, required_id(delivery_id, "WebhookDelivery"), clock=ctx.clock
        )
        return WebhookDeliveryPayload(delivery=WebhookDeliveryType.from_entity(delivery))
