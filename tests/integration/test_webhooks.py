"""Webhooks end to end in one process: the GraphQL API, real PostgreSQL, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from domain.events import EventType, NewEvent
from domain.ports import BlobStore, UnitOfWork
from domain.principal import Identity
from domain.services import webhooks
from domain.services.webhooks import WebhookPolicy
from domain.webhooks import DeliveryStatus, RetrySchedule
from graph.dependencies import AppDependencies
from graph.transport.app import create_app
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from persistence import tables
from persistence.unit_of_work import SqlUnitOfWork
from server.webhook_dispatcher import WebhookDispatcher
from tests.integration.paging import walk
from tests.integration.webhook_receiver import Receiver, running

pytestmark = pytest.mark.integration


def utc_now() -> datetime:
    return datetime.now(UTC)


class NameIsTokenVerifier:
    """The bearer token is the user's subject: enough to be two different people in a test."""

    async def verify(self, token: str) -> Identity:
        return Identity(
            subject=token,
            email=f"{token}@example.com",
            name=token,
            groups=(),
            expires_at=utc_now() + timedelta(hours=1),
        )


class NoBlobs:
    """Webhook tests touch no assets; any call on this store is a test bug."""

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(name)


async def no_failures() -> dict[str, str]:
    return {}


class Api:
    def __init__(self, engine: AsyncEngine, *, allow_private_networks: bool) -> None:
        def uow() -> UnitOfWork:
            return SqlUnitOfWork(engine)

        guard = DnsUrlGuard(allow_private_networks=allow_private_networks)
        app = create_app(
            AppDependencies(
                uow=uow,
                verifier=NameIsTokenVerifier(),
                blobs=cast(BlobStore, NoBlobs()),
                clock=utc_now,
                readiness=no_failures,
                webhooks=WebhookPolicy(guard=guard),
            )
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://assay.test"
        )

    async def __call__(
        self, user: str, query: str, **variables: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {user}"},
        )
        body = response.json()
        return body.get("data") or {}, body.get("errors") or []

    async def ok(self, user: str, query: str, **variables: Any) -> dict[str, Any]:
        data, errors = await self(user, query, **variables)
        assert not errors, errors
        return data


CREATE = """
mutation($url: String!, $events: [EventType!]!) {
  createWebhookEndpoint(input: {url: $url, events: $events, description: "test"}) {
    secret
    endpoint { id url events isActive description }
  }
}"""

ENDPOINTS = """
{ webhookEndpoints { id url deliveries(first: 10) { totalCount edges { node {
    id status attempts lastStatusCode eventId eventType payload endpoint { id }
} } } } }"""

REDELIVER = """
mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { delivery { status attempts } } }"""


@pytest.fixture
async def api(db: AsyncEngine) -> AsyncIterator[Api]:
    api = Api(db, allow_private_networks=True)
    yield api
    await api.client.aclose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running(Receiver()) as started:
        yield started


@pytest.fixture
async def dispatcher(db: AsyncEngine) -> AsyncIterator[WebhookDispatcher]:
    sender = HttpWebhookSender(DnsUrlGuard(allow_private_networks=True), timeout_seconds=5)
    yield WebhookDispatcher(
        uow=lambda: SqlUnitOfWork(db),
        sender=sender,
        schedule=RetrySchedule((0.1, 0.1, 0.1)),
        clock=utc_now,
        lease_seconds=10,
    )
    await sender.aclose()


async def user_id(engine: AsyncEngine, subject: str) -> UUID:
    async with engine.connect() as conn:
        found: UUID = (
            await conn.execute(
                sa.select(tables.users.c.id).where(tables.users.c.subject == subject)
            )
        ).scalar_one()
    return found


async def append_event(engine: AsyncEngine, owner_id: UUID, kind: EventType) -> None:
    subject = uuid.uuid4()
    async with SqlUnitOfWork(engine) as uow:
        await uow.events.append(
            [NewEvent(kind, owner_id, subject, {"submissionId": str(subject), "status": "X"})]
        )
        await uow.commit()


async def delivery_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.select(tables.webhook_deliveries)))


async def attempt_codes(engine: AsyncEngine) -> list[int | None]:
    attempts = tables.webhook_delivery_attempts
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(attempts.c.status_code).order_by(attempts.c.attempt))
        return [row[0] for row in rows]


async def run_until(
    engine: AsyncEngine, dispatcher: WebhookDispatcher, status: DeliveryStatus
) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await dispatcher.fan_out_step()
        await dispatcher.delivery_step()
        rows = await delivery_rows(engine)
        if rows and all(r.status == status.value for r in rows):
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries never reached {status}: {await delivery_rows(engine)}")


async def test_event_is_delivered_signed_and_retried_until_it_succeeds(
    db: AsyncEngine, api: Api, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    receiver.failures = 2
    created = (await api.ok("alice", CREATE, url=receiver.url, events=["SUBMISSION_SUCCEEDED"]))[
        "createWebhookEndpoint"
    ]
    assert created["secret"].startswith("whsec_")
    assert created["endpoint"]["events"] == ["SUBMISSION_SUCCEEDED"]
    alice = await user_id(db, "alice")
    await append_event(db, alice, EventType.ASSET_DELETED)  # not subscribed: no delivery
    await append_event(db, alice, EventType.SUBMISSION_SUCCEEDED)

    row = await run_until(db, dispatcher, DeliveryStatus.SUCCEEDED)

    assert row.attempts == 3
    assert await attempt_codes(db) == [500, 500, 200]
    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"evt_2"}
    for request in receiver.requests:
        body = Webhook(created["secret"]).verify(request.body, request.headers)
        assert body["type"] == "submission.succeeded"
        assert body["data"]["status"] == "X"
    [endpoint] = (await api.ok("alice", ENDPOINTS))["webhookEndpoints"]
    assert endpoint["deliveries"]["totalCount"] == 1
    [edge] = endpoint["deliveries"]["edges"]
    assert edge["node"]["status"] == "SUCCEEDED"
    assert edge["node"]["attempts"] == 3
    assert edge["node"]["lastStatusCode"] == 200
    assert edge["node"]["eventId"] == "evt_2"
    assert edge["node"]["eventType"] == "SUBMISSION_SUCCEEDED"
    assert edge["node"]["endpoint"]["id"] == endpoint["id"]


async def test_a_receiver_that_always_fails_ends_dead_and_redelivery_requeues_it(
    db: AsyncEngine, api: Api, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    receiver.failures = -1
    await api.ok("alice", CREATE, url=receiver.url, events=["SUBMISSION_SUCCEEDED"])
    await append_event(db, await user_id(db, "alice"), EventType.SUBMISSION_SUCCEEDED)

    row = await run_until(db, dispatcher, DeliveryStatus.DEAD)
    assert row.attempts == 4  # the first attempt and one per schedule step
    assert await attempt_codes(db) == [500, 500, 500, 500]
    [endpoint] = (await api.ok("alice", ENDPOINTS))["webhookEndpoints"]
    delivery_id = endpoint["deliveries"]["edges"][0]["node"]["id"]

    _, errors = await api("bob", REDELIVER, id=delivery_id)
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    requeued = (await api.ok("alice", REDELIVER, id=delivery_id))["redeliverWebhook"]
    assert requeued["delivery"]["status"] == "PENDING"

    receiver.failures = 0
    await run_until(db, dispatcher, DeliveryStatus.SUCCEEDED)
    assert len(receiver.requests) == 5
    _, errors = await api("alice", REDELIVER, id=delivery_id)
    assert errors[0]["extensions"]["code"] == "CONFLICT"


async def test_only_the_owner_sees_or_changes_an_endpoint(api: Api) -> None:
    created = await api.ok("alice", CREATE, url="http://127.0.0.1:9/h", events=["ASSET_DELETED"])
    endpoint_id = created["createWebhookEndpoint"]["endpoint"]["id"]
    attempts = [
        ("mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }", {"id": endpoint_id}),
        (
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId } }",
            {"id": endpoint_id},
        ),
        (
            "mutation($id: ID!) { updateWebhookEndpoint(input: {id: $id, isActive: false})"
            " { endpoint { id } } }",
            {"id": endpoint_id},
        ),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": endpoint_id}),
    ]
    for query, variables in attempts:
        _, errors = await api("bob", query, **variables)
        assert errors[0]["extensions"]["code"] == "NOT_FOUND", query
    assert (await api.ok("bob", "{ webhookEndpoints { id } }"))["webhookEndpoints"] == []

    node = await api.ok(
        "alice",
        "query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { url } } }",
        id=endpoint_id,
    )
    assert node["node"]["url"] == "http://127.0.0.1:9/h"
    rotated = await api.ok(
        "alice", "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }", id=endpoint_id
    )
    assert rotated["rotateWebhookSecret"]["secret"] != created["createWebhookEndpoint"]["secret"]
    deleted = await api.ok(
        "alice",
        "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId } }",
        id=endpoint_id,
    )
    assert deleted["deleteWebhookEndpoint"]["deletedId"] == endpoint_id
    assert (await api.ok("alice", "{ webhookEndpoints { id } }"))["webhookEndpoints"] == []


async def test_a_private_url_is_bad_input_when_private_networks_are_not_allowed(
    db: AsyncEngine,
) -> None:
    strict = Api(db, allow_private_networks=False)
    try:
        _, errors = await strict(
            "alice", CREATE, url="http://127.0.0.1:8080/h", events=["ASSET_DELETED"]
        )
    finally:
        await strict.client.aclose()
    [error] = errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "loopback" in error["extensions"]["fields"]["input.url"]


async def test_inactive_endpoints_get_no_deliveries(
    db: AsyncEngine, api: Api, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    created = await api.ok("alice", CREATE, url=receiver.url, events=["ASSET_DELETED"])
    endpoint_id = created["createWebhookEndpoint"]["endpoint"]["id"]
    await api.ok(
        "alice",
        "mutation($id: ID!) { updateWebhookEndpoint(input: {id: $id, isActive: false})"
        " { endpoint { isActive } } }",
        id=endpoint_id,
    )
    await append_event(db, await user_id(db, "alice"), EventType.ASSET_DELETED)
    assert await dispatcher.fan_out_step() == 1
    assert await dispatcher.delivery_step() == 0
    assert await delivery_rows(db) == []
    assert receiver.requests == []


async def test_claims_take_turns_across_owners_and_payloads_carry_a_sequence(
    db: AsyncEngine, api: Api, dispatcher: WebhookDispatcher
) -> None:
    for n in range(3):
        url = f"http://127.0.0.1:9/alice/{n}"
        await api.ok("alice", CREATE, url=url, events=["SUBMISSION_SUCCEEDED"])
    await api.ok("bob", CREATE, url="http://127.0.0.1:9/bob", events=["ASSET_DELETED"])
    alice, bob = await user_id(db, "alice"), await user_id(db, "bob")
    for _ in range(100):
        await append_event(db, alice, EventType.SUBMISSION_SUCCEEDED)
    assert await dispatcher.fan_out_step() == 100  # 300 deliveries, due before bob's
    await asyncio.sleep(0.01)
    await append_event(db, bob, EventType.ASSET_DELETED)
    assert await dispatcher.fan_out_step() == 1

    claimed = await webhooks.claim_due_deliveries(
        SqlUnitOfWork(db), limit=20, lease_seconds=30, clock=utc_now
    )

    assert len(claimed) == 20
    assert bob in {due.delivery.owner_id for due in claimed}, "bob waits behind alice's backlog"
    for due in claimed:
        assert due.delivery.payload["sequence"] == due.delivery.event_id


DELIVERIES_BOTH_WAYS = """
query($first: Int, $after: String, $last: Int, $before: String) {
  webhookEndpoints { deliveries(first: $first, after: $after, last: $last, before: $before) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } } }
}"""


async def test_deliveries_page_both_ways(
    db: AsyncEngine, api: Api, dispatcher: WebhookDispatcher
) -> None:
    await api.ok("alice", CREATE, url="http://127.0.0.1:9/alice", events=["ASSET_DELETED"])
    alice = await user_id(db, "alice")
    for _ in range(5):
        await append_event(db, alice, EventType.ASSET_DELETED)
    assert await dispatcher.fan_out_step() == 5

    async def fetch(variables: dict[str, Any]) -> dict[str, Any]:
        [endpoint] = (await api.ok("alice", DELIVERIES_BOTH_WAYS, **variables))["webhookEndpoints"]
        deliveries: dict[str, Any] = endpoint["deliveries"]
        return deliveries

    oldest_first = [e["node"]["id"] for e in (await fetch({"first": 10}))["edges"]]
    assert len(oldest_first) == 5
    assert await walk(fetch, {"first": 2}) == oldest_first
    assert await walk(fetch, {"last": 2}) == oldest_first
    _, errors = await api("alice", DELIVERIES_BOTH_WAYS, first=2, last=2)
    assert [e["extensions"]["fields"] for e in errors] == [
        {"last": "cannot be given with first: page one way at a time"}
    ]
