"""A 1,000-input batch through a real `assay serve`: followed over batchUpdated, finished with
exactly one signed callback to a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from tests.e2e.conftest import Launcher, agql, model_id, token, truncate_all, wait_for
from tests.e2e.test_inference_e2e import iris_inputs
from tests.e2e.test_subscriptions import connection, next_message, subscribe
from tests.integration.webhook_receiver import Receiver, running

pytestmark = pytest.mark.e2e

ISSUER = "http://assay.test"
BATCH = """
mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { batch { id size status } }
}"""
FOLLOW = """
subscription($id: ID!) {
  batchUpdated(id: $id) { id status completedAt counts { pending running succeeded failed } }
}"""
BATCH_OF = "query($id: ID!) { batch(id: $id) { status counts { succeeded } completedAt } }"
SIZE = 1000
# The batch takes many seconds; messages are merged to at most 4 a second (0.25 s apart).
MESSAGES_PER_SECOND = 4


async def follow(ws: Any, started: float, within: float) -> tuple[list[dict[str, Any]], float]:
    """batchUpdated's messages until the subscription completes; and how long it ran."""
    messages: list[dict[str, Any]] = []
    while True:
        message = await next_message(ws, within)
        if message["type"] == "complete":
            return messages, time.monotonic() - started
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        messages.append(message["payload"]["data"]["batchUpdated"])


async def test_a_1000_input_batch_ends_in_one_verified_callback(
    launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> None:
    await truncate_all(engine)
    env = {
        "ASSAY_MODEL_DIR": str(shared_models),
        "ASSAY_PUBLIC_URL": ISSUER,
        "ASSAY_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on 127.0.0.1
        "ASSAY_WEBHOOK_POLL_SECONDS": "0.1",
    }
    data_dir = launcher.new_data_dir("batch")
    server = launcher.serve(data_dir=data_dir, database_url=postgres_url, env=env)
    ada = token(data_dir, "ada@example.com", public_url=ISSUER)
    iris = model_id(server.base_url, ada)
    with running(Receiver()) as receiver:
        rotated = await agql(
            server.base_url, "mutation { rotateCallbackSecret { secret } }", token=ada
        )
        secret = rotated["rotateCallbackSecret"]["secret"]
        request = {
            "modelId": iris,
            "inputs": iris_inputs(SIZE, seed=17),
            "callbackUrl": receiver.url,
        }
        async with connection(server, ada) as ws:
            made = await agql(server.base_url, BATCH, {"input": request}, ada, http_timeout=120)
            batch = made["batchInference"]["batch"]
            assert batch["size"] == SIZE
            started = time.monotonic()  # before the subscription exists, so an upper bound
            await subscribe(ws, "b", FOLLOW, id=batch["id"])
            messages, seconds = await follow(ws, started, within=240)
        print(f"[batch] {SIZE} inputs: {len(messages)} batchUpdated messages in {seconds:.1f} s")

        last = messages[-1]
        assert last["status"] == "COMPLETED"
        assert last["completedAt"] is not None
        assert last["counts"] == {"pending": 0, "running": 0, "succeeded": SIZE, "failed": 0}
        succeeded = [m["counts"]["succeeded"] for m in messages]
        assert succeeded == sorted(succeeded), "counts went backwards"
        assert len(messages) <= seconds * MESSAGES_PER_SECOND + 2, (len(messages), seconds)

        async def called_back() -> bool:
            return bool(receiver.requests)

        await wait_for(called_back, within=60, message="the batch's callback")
        await asyncio.sleep(2)  # 20 dispatcher polls: time for a second callback to show
        [callback] = receiver.requests
        body = Webhook(secret).verify(callback.body, callback.headers)
        assert body["type"] == "batch.completed"
        assert body["data"]["batchId"] == batch["id"]
        assert body["data"]["status"] == "COMPLETED"
        assert body["data"]["counts"]["succeeded"] == SIZE
        assert body["data"]["size"] == SIZE
        assert json.loads(callback.body)["data"]["batchId"] == batch["id"]
        final = await agql(server.base_url, BATCH_OF, {"id": batch["id"]}, ada)
        assert final["batch"]["counts"]["succeeded"] == SIZE
