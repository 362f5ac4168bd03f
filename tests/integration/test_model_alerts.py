"""Model alerts against PostgreSQL: an accuracy drop raises one MODEL_ALERT per active
administrator, which their webhook endpoints subscribed to it receive, and no one else."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.events import EventType
from domain.model_alerts import AlertKind, AlertPolicy, AlertState, ModelAlert
from domain.quality import Feedback
from domain.services.model_alerts import AlertSettings, check_alerts
from domain.services.monitoring import MonitoringPolicy
from graph.ids import from_global_id
from persistence import tables
from persistence.unit_of_work import SqlUnitOfWork
from server.settings import Settings
from tests.factories import insert, make_model, make_result, make_submission, make_user
from tests.integration.conftest import TokenFactory
from tests.integration.test_subscription_memory import _serving

IRIS_OUTPUT = {
    "type": "object",
    "properties": {"species": {"enum": ["setosa", "versicolor", "virginica"]}},
}


async def _endpoint(db: AsyncEngine, owner: uuid.UUID) -> uuid.UUID:
    return await insert(
        db,
        tables.webhook_endpoints,
        owner_id=owner,
        url="https://hooks.example.com/assay",
        events=["MODEL_ALERT"],
        secret="whsec_c2VjcmV0",
    )


async def test_an_accuracy_drop_is_told_once_to_each_administrators_webhook(
    db: AsyncEngine,
) -> None:
    admin = await make_user(db, groups=["admin"])
    await make_user(db, groups=["admin"], is_active=False)
    owner = await make_user(db)
    admin_endpoint, owner_endpoint = await _endpoint(db, admin), await _endpoint(db, owner)
    model = await make_model(db, output_schema=IRIS_OUTPUT)
    now = datetime.now(UTC)
    async with SqlUnitOfWork(db) as uow:
        await uow.model_alerts.save_policy(AlertPolicy(model, min_accuracy=0.9), now)
        for n in range(10):
            result = await make_result(db, await make_submission(db, owner, model))
            truth = "setosa" if n < 5 else "virginica"
            await uow.feedback.record(
                Feedback(result, model, truth, "setosa", truth, None, None, now, now)
            )
        await uow.commit()
    settings = AlertSettings(MonitoringPolicy())

    def clock() -> datetime:
        return now + timedelta(seconds=1)

    raised = await check_alerts(SqlUnitOfWork(db), SqlUnitOfWork(db), settings, clock=clock)
    again = await check_alerts(SqlUnitOfWork(db), SqlUnitOfWork(db), settings, clock=clock)
    assert [(a.state, a.value) for a in raised] == [(AlertState.RAISED, 0.5)]
    assert again == []

    async with db.connect() as conn:
        told = (
            await conn.execute(
                sa.select(tables.events.c.owner_id).where(
                    tables.events.c.type == EventType.MODEL_ALERT.value
                )
            )
        ).all()
    assert [row.owner_id for row in told] == [admin]
    async with SqlUnitOfWork(db) as uow:
        await uow.webhooks.fan_out(100, clock(), timedelta(seconds=0))
        await uow.commit()
    async with db.connect() as conn:
        deliveries = (
            await conn.execute(
                sa.select(
                    tables.webhook_deliveries.c.endpoint_id, tables.webhook_deliveries.c.payload
                )
            )
        ).all()
    assert [d.endpoint_id for d in deliveries] == [admin_endpoint]
    assert owner_endpoint not in [d.endpoint_id for d in deliveries]
    assert deliveries[0].payload["state"] == "RAISED"
    assert deliveries[0].payload["kind"] == "QUALITY"


SUBSCRIBE = """subscription($m: ID) { modelAlertRaised(modelId: $m) {
  id kind state value threshold model { id } } }"""


async def _subscribe(address: str, bearer: str, model: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"ws://{address}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": bearer}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": SUBSCRIBE, "variables": {"m": model}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def test_admins_follow_model_alerts_and_others_are_forbidden(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    default_models: dict[str, str],
) -> None:
    iris = default_models["iris-species"]
    _, model = from_global_id(iris)
    admin_token = token("root@example.com", ["admin"])
    async with _serving(settings, postgres_url) as address:
        refused = await _subscribe(address, f"Bearer {token('ada@example.com')}", iris)
        answer = json.loads(await asyncio.wait_for(refused.recv(), timeout=10))
        errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
        await refused.close()
        ws = await _subscribe(address, f"Bearer {admin_token}", iris)
        await asyncio.sleep(0.5)  # the subscription is listening; the admin user exists
        now = datetime.now(UTC)
        async with SqlUnitOfWork(db) as uow:
            await uow.model_alerts.save_policy(AlertPolicy(model, min_accuracy=0.9), now)
            owner = await make_user(db)
            for n in range(4):
                result = await make_result(db, await make_submission(db, owner, model))
                truth = "setosa" if n < 2 else "virginica"
                await uow.feedback.record(
                    Feedback(result, model, truth, "setosa", truth, None, None, now, now)
                )
            await uow.commit()
        settings_ = AlertSettings(MonitoringPolicy())
        later = now + timedelta(seconds=1)
        await check_alerts(SqlUnitOfWork(db), SqlUnitOfWork(db), settings_, clock=lambda: later)
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
        await ws.close()
    alert = message["payload"]["data"]["modelAlertRaised"]
    assert (alert["kind"], alert["state"], alert["value"]) == ("QUALITY", "RAISED", 0.5)
    assert alert["model"]["id"] == iris


async def test_a_second_checker_waits_for_the_first_and_sees_its_alert(db: AsyncEngine) -> None:
    model = await make_model(db, output_schema=IRIS_OUTPUT)
    now = datetime.now(UTC)
    raised = ModelAlert(uuid.uuid4(), model, AlertKind.QUALITY, AlertState.RAISED, 0.5, 0.9, now)
    first, second = SqlUnitOfWork(db), SqlUnitOfWork(db)
    async with first:
        assert await first.model_alerts.latest(model) == {}
        async with second:
            waiting = asyncio.create_task(second.model_alerts.latest(model))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # the first checker holds the model's alert state
            await first.model_alerts.add([raised])
            await first.commit()
            seen = await asyncio.wait_for(waiting, timeout=10)
    assert seen == {AlertKind.QUALITY: raised}
