"""A dispatcher killed with SIGKILL mid-delivery loses nothing: another one delivers it, once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from domain.events import EventType, NewEvent
from domain.webhooks import DeliveryStatus, RetrySchedule, WebhookEndpoint, new_secret
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from persistence import tables
from persistence.unit_of_work import SqlUnitOfWork
from server.webhook_dispatcher import WebhookDispatcher
from tests.factories import make_user
from tests.integration.webhook_receiver import Receiver, running

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHILD_LEASE_SECONDS = 1.5

# The child: the real dispatcher runnables under BackgroundTasks, with a short lease.
DISPATCHER_SCRIPT = """
import asyncio, sys
from datetime import UTC, datetime
from domain.webhooks import RetrySchedule
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from persistence.database import create_engine
from persistence.unit_of_work import SqlUnitOfWork
from server.webhook_dispatcher import WebhookDispatcher
from server.workers import BackgroundTasks

async def main() -> None:
    engine = create_engine(sys.argv[1], pool_size=2)
    dispatcher = WebhookDispatcher(
        uow=lambda: SqlUnitOfWork(engine),
        sender=HttpWebhookSender(DnsUrlGuard(allow_private_networks=True), timeout_seconds=30),
        schedule=RetrySchedule((0.1, 0.1, 0.1)),
        clock=lambda: datetime.now(UTC),
        lease_seconds=float(sys.argv[2]),
    )
    await BackgroundTasks(dispatcher.runnables(0.05)).start()
    await asyncio.sleep(120)

asyncio.run(main())
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


async def add_endpoint_and_event(engine: AsyncEngine, url: str) -> WebhookEndpoint:
    owner = await make_user(engine)
    now = utc_now()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        owner_id=owner,
        url=url,
        events=(EventType.SUBMISSION_SUCCEEDED,),
        description="",
        is_active=True,
        secret=new_secret(),
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=now,
        updated_at=now,
    )
    async with SqlUnitOfWork(engine) as uow:
        await uow.webhooks.add_endpoint(endpoint)
        await uow.events.append(
            [NewEvent(EventType.SUBMISSION_SUCCEEDED, owner, uuid.uuid4(), {"status": "ok"})]
        )
        await uow.commit()
    return endpoint


async def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_delivery_loses_no_delivery(db: AsyncEngine, postgres_url: str) -> None:
    with running(Receiver(delay_seconds=2.0)) as receiver:
        endpoint = await add_endpoint_and_event(db, receiver.url)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            DISPATCHER_SCRIPT,
            postgres_url,
            str(CHILD_LEASE_SECONDS),
            cwd=REPO,
        )
        try:
            await wait_for(lambda: len(receiver.requests) == 1, 30)  # in flight now
        finally:
            os.kill(child.pid, signal.SIGKILL)
            await asyncio.wait_for(child.wait(), timeout=10)
        assert child.returncode == -signal.SIGKILL

        async with db.connect() as conn:
            [row] = list(await conn.execute(sa.select(tables.webhook_deliveries)))
        assert row.status == DeliveryStatus.PENDING.value  # claimed, never recorded
        assert row.lease_expires_at is not None

        sender = HttpWebhookSender(DnsUrlGuard(allow_private_networks=True), timeout_seconds=10)
        survivor = WebhookDispatcher(
            uow=lambda: SqlUnitOfWork(db),
            sender=sender,
            schedule=RetrySchedule((0.1, 0.1, 0.1)),
            clock=utc_now,
            lease_seconds=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await survivor.fan_out_step()
            if await survivor.delivery_step():
                break
            await asyncio.sleep(0.1)
        await sender.aclose()

    async with db.connect() as conn:
        [row] = list(await conn.execute(sa.select(tables.webhook_deliveries)))
        codes = [
            r.status_code for r in await conn.execute(sa.select(tables.webhook_delivery_attempts))
        ]
    assert row.status == DeliveryStatus.SUCCEEDED.value
    assert codes == [200]  # the killed attempt left no record; the survivor's one succeeded
    # At least once: the receiver may see it twice, but always as the same message.
    assert len(receiver.requests) == 2
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"evt_1"}
    for request in receiver.requests:
        Webhook(endpoint.secret).verify(request.body, request.headers)
